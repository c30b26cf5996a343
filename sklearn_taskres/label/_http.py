"""The routes of the labelling server: requests in, session calls, JSON out. No logic here."""

from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ._guard import Guard
from ._session import IMAGE_SIZE, THUMBNAIL_SIZE, SessionError

STATIC = Path(__file__).parent / "static"
_NO_STORE = {"cache-control": "no-store"}


def _json(content, status_code=200):
    return JSONResponse(content, status_code=status_code, headers=_NO_STORE)


async def _body(request):
    try:
        body = await request.json()
    except ValueError:
        raise SessionError("expected a JSON object; got a body that is not JSON") from None
    if not isinstance(body, dict):
        raise SessionError(f"expected a JSON object; got {type(body).__name__}")
    return body


def _int(text, low, high):
    """A query parameter as an int, clipped to ``[low, high]``."""
    try:
        return min(max(int(text), low), high)
    except ValueError:
        raise SessionError(f"expected a whole number; got {text!r}") from None


def _int_list(text):
    try:
        return [int(part) for part in text.split(",") if part]
    except ValueError:
        raise SessionError(f"expected comma-separated image indices; got {text!r}") from None


def build_app(session, token, port):
    """The ASGI application of the labelling page of ``session``, behind its :class:`Guard`.

    Parameters
    ----------
    session : LabellingSession
    token : str
        The access token of this launch.
    port : int
        The port the server listens on (the Host and Origin checks need it).
    """

    async def index(request):
        return FileResponse(STATIC / "index.html", headers=_NO_STORE)

    async def state(request):
        return _json(await run_in_threadpool(session.state))

    async def queue(request):
        n_images = _int(request.query_params.get("n", "6"), 0, 50)
        hold = _int_list(request.query_params.get("hold", ""))[:50]
        return _json(await run_in_threadpool(session.queue, n_images, hold))

    async def next_images(request):
        query = request.query_params
        n_ranked = _int(query.get("ranked", "6"), 0, 50)
        n_random = _int(query.get("random", "6"), 0, 50)
        hold = _int_list(query.get("hold", ""))[:500]
        pending = _int_list(query.get("pending", ""))[:500]
        after = _int(query["after"], 0, 2**62) if "after" in query else None
        return _json(await run_in_threadpool(session.next_images, n_ranked, n_random, hold,
                                             pending=pending, after=after))

    async def changes(request):
        body = await _body(request)
        results = await run_in_threadpool(session.apply, body.get("changes"))
        refused = [result for result in results if not result["ok"]]
        content = {"results": results, "state": await run_in_threadpool(session.state)}
        if refused:
            content["error"] = "; ".join(result["error"] for result in refused)
        return _json(content, status_code=400 if refused else 200)

    async def grid(request):
        label = request.query_params.get("label", "")
        n_images = _int(request.query_params.get("n", "24"), 1, 200)
        return _json(await run_in_threadpool(session.grid, label, n_images))

    async def confirm_grid(request):
        body = await _body(request)
        await run_in_threadpool(session.confirm_grid, body.get("label"),
                                list(body.get("accepted", [])), list(body.get("rejected", [])))
        return _json(await run_in_threadpool(session.state))

    async def image(request):
        size = THUMBNAIL_SIZE if request.query_params.get("size") == "thumbnail" else IMAGE_SIZE
        data = await run_in_threadpool(session.render, request.path_params["index"], size)
        if data is None:
            return Response("No such image, or it cannot be read.", status_code=404,
                            media_type="text/plain")
        return Response(data, media_type="image/jpeg",
                        headers={"cache-control": "private, max-age=3600"})

    async def decide(request):
        body = await _body(request)
        label = None if body.get("none") else body.get("label")
        if label is not None and not isinstance(label, str):
            raise SessionError(f"expected a class label as a string; got {label!r}")
        await run_in_threadpool(session.decide, body.get("index"), label)
        return _json(await run_in_threadpool(session.state))

    async def undo(request):
        await _body(request)
        return _json({"item": await run_in_threadpool(session.undo)})

    async def skip(request):
        body = await _body(request)
        await run_in_threadpool(session.skip, body.get("index"))
        return _json({"skipped": body.get("index")})

    async def add_class(request):
        body = await _body(request)
        label = await run_in_threadpool(session.add_class, str(body.get("name", "")))
        return _json({"label": label, "state": await run_in_threadpool(session.state)})

    async def refused(request, exc):
        return _json({"error": str(exc)}, status_code=400)

    async def not_found(request, exc):
        return Response("Not found.", status_code=404, media_type="text/plain")

    routes = [
        Route("/", index),
        Route("/api/state", state),
        Route("/api/queue", queue),
        Route("/api/next", next_images),
        Route("/api/changes", changes, methods=["POST"]),
        Route("/api/grid", grid, methods=["GET"]),
        Route("/api/grid", confirm_grid, methods=["POST"]),
        Route("/api/image/{index:int}", image),
        Route("/api/decide", decide, methods=["POST"]),
        Route("/api/undo", undo, methods=["POST"]),
        Route("/api/skip", skip, methods=["POST"]),
        Route("/api/classes", add_class, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={SessionError: refused, 404: not_found})
    return Guard(app, token, port)
