"""Who may talk to the labelling server: the ASGI middleware in front of every route.

Binding 127.0.0.1 is not a trust boundary: any web page the person visits can
send requests to it, and, through DNS rebinding, read the answers. So, as
Jupyter does:

- the ``Host`` header must be ``localhost``, ``127.0.0.1`` or ``[::1]`` with
  the server's port (a rebound DNS name is refused);
- every request needs the random token of this launch: in the first URL
  (``/?token=...``, answered with a cookie and a redirect that drops it from
  the address bar), then in that cookie (``HttpOnly``, ``SameSite=Strict``);
- a change is a ``POST`` with a JSON body whose ``Origin`` is the page's own:
  a form or a script of another site can send neither.
"""

import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse, RedirectResponse

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Sent with every response: the page runs only its own files, in no other site's frame.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
     b"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def new_token():
    """A random token for one launch (32 bytes, URL-safe)."""
    return secrets.token_urlsafe(32)


def cookie_name(port):
    # One cookie per port: two sessions on one machine do not log each other out.
    return f"sklearn_taskres_label_{port}"


class Guard:
    """ASGI middleware: the Host check, the token and the rules for changes.

    Parameters
    ----------
    app : ASGI application
    token : str
        The token of this launch.
    port : int
        The port the server listens on.
    """

    def __init__(self, app, token, port):
        self.app = app
        self.token = token
        self.port = port
        self.hosts = {f"{host}:{port}" for host in LOOPBACK_HOSTS}
        self.origins = {f"http://{host}" for host in self.hosts}
        self.cookie = cookie_name(port)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response = self.check(scope)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  *SECURITY_HEADERS]}
            await send(message)

        if response is None:
            await self.app(scope, receive, send_with_headers)
        else:
            await response(scope, receive, send_with_headers)

    def check(self, scope):
        """The response that refuses the request, or None to let it through."""
        headers = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        if headers.get("host", "").lower() not in self.hosts:
            return PlainTextResponse("Refused: unexpected Host header.", status_code=403)
        method, path = scope["method"], scope["path"]
        if method not in ("GET", "HEAD", "POST"):
            return PlainTextResponse("Method not allowed.", status_code=405)
        if not self._has_cookie(headers):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = query.get("token", [""])[0]
            if method == "GET" and path == "/" and secrets.compare_digest(
                    given.encode(), self.token.encode()):
                response = RedirectResponse("/", status_code=303)
                response.set_cookie(self.cookie, self.token, httponly=True, samesite="strict",
                                    path="/")
                return response
            return PlainTextResponse(
                "Forbidden: open the address with the token that sklearn-taskres label printed.",
                status_code=403)
        if method == "POST":
            if headers.get("origin", "") not in self.origins:
                return PlainTextResponse("Refused: unexpected Origin.", status_code=403)
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return PlainTextResponse("Expected a JSON body.", status_code=415)
        return None

    def _has_cookie(self, headers):
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return False
        morsel = cookie.get(self.cookie)
        return morsel is not None and secrets.compare_digest(
            morsel.value.encode(), self.token.encode())
