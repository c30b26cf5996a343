"""The labelling server: the session, its encoder and trainer threads, and uvicorn on 127.0.0.1."""

import socket
import threading
import time

import uvicorn

from .._persistence import save_model
from ._encoding import Encoder
from ._guard import new_token
from ._http import build_app
from ._policy import AUDIT_SHARE
from ._session import LabellingSession
from ._trainer import Trainer, write_atomically

HOST = "127.0.0.1"


class LabellingServer:
    """The labelling page of a folder, served on 127.0.0.1 while TaskRes retrains.

    Building the server opens (or resumes) the labels file and binds the
    port; :meth:`start` runs it in a background thread (for a notebook or a
    script), :meth:`serve_forever` in this one until Ctrl+C. Either way
    :meth:`stop` (called by ``serve_forever`` on its way out, and by the
    ``with`` statement) stops the threads, writes the model of the last
    decisions and closes the labels file.

    Parameters
    ----------
    classifier : TaskResClassifier
        The fitted starting model, such as
        :func:`~sklearn_taskres.zero_shot_classifier` of the class names.
        Its classes are the buttons of the page; its encoder (``model``,
        ``pretrained``, ``precision``, ``cache_dir``) encodes the images;
        its training parameters are those of every refit.
    paths : sequence of str or path
        The image files to label.
    labels_file : str or path
        The labels file, a CSV log of every decision; an existing one is
        resumed: its decisions are kept and its images not shown again.
    model_file : str or path, default=None
        Where the served model is written after every refit (atomically).
    port : int, default=0
        The port on 127.0.0.1; 0 picks a free one.
    audit_share : float, default=0.25
        The share of images drawn uniformly at random to estimate accuracy.
    alpha : float or "auto", default="auto"
        The ``alpha`` of every refit: "auto" chooses it from the labels, the
        starting model among the candidates, and that model is served; with
        a number (0.5 is the paper's), the random images' audits decide
        whether the refitted or the starting model is served.
    random_state : int, RandomState instance or None, default=0
        Seeds the encoding order and the queue.
    save : callable, default=None
        ``save(model, path)`` writes the model file; None writes a skops
        file (:func:`~sklearn_taskres.save_model`).

    Attributes
    ----------
    url : str
        The address to open, with the access token.
    session : LabellingSession
        The state: decisions, models, estimates.
    """

    def __init__(self, classifier, paths, labels_file, model_file=None, *, port=0,
                 audit_share=AUDIT_SHARE, alpha="auto", random_state=0, save=None):
        self.session = LabellingSession(classifier, paths, labels_file, audit_share=audit_share,
                                        alpha=alpha, random_state=random_state)
        try:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((HOST, port))
            self._socket.listen(128)  # connections wait for uvicorn instead of being refused
        except OSError:
            self.session.close()
            raise
        self.port = self._socket.getsockname()[1]
        self.token = new_token()
        self.url = f"http://{HOST}:{self.port}/?token={self.token}"
        self.model_file = model_file
        self.save = save_model if save is None else save
        config = uvicorn.Config(build_app(self.session, self.token, self.port),
                                log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self.encoder = Encoder(self.session)
        self.trainer = Trainer(self.session, model_file, self.save)
        self._thread = None
        self._stopped = False

    def _start_workers(self):
        self.encoder.start()
        self.trainer.start()

    def start(self, timeout=30):
        """Serve in a background thread; return once the server accepts connections."""
        self._start_workers()
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]},
                                        name="sklearn-taskres-label-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the labelling server did not start")
            time.sleep(0.01)
        return self

    def serve_forever(self):
        """Serve in this thread until Ctrl+C (or :meth:`stop` from another thread), then stop."""
        self._start_workers()
        try:
            self._server.run(sockets=[self._socket])
        except KeyboardInterrupt:  # uvicorn raises the signal again once it has shut down
            pass
        finally:
            self.stop()

    def stop(self):
        """Stop serving, encoding and training; write the model of the last decisions."""
        if self._stopped:
            return
        self._stopped = True
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.encoder.stop()
        self.trainer.stop()
        for thread in (self.encoder, self.trainer):
            if thread.is_alive():
                thread.join(timeout=60)
        session = self.session
        try:
            if session.trained_version != session.version and not self.trainer.is_alive():
                self.trainer.step()  # the decisions made during the last refit
            elif self.model_file is not None and session.version:
                write_atomically(session.serving_model(), self.model_file, self.save)
        finally:
            session.close()
            self._socket.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()


def serve(classifier, paths, labels_file, model_file=None, *, port=0, open_browser=True,
          audit_share=AUDIT_SHARE, alpha="auto", random_state=0, save=None):
    """Serve the labelling page of ``paths`` until Ctrl+C; return the session.

    The page shows one image at a time with the classes as buttons (keys
    ``1``-``9``, ``0``), a grid for bulk work, and the state of the model.
    After every decision TaskRes is refitted on the labelled images in the
    background and written to ``model_file``; the labels go to
    ``labels_file``, one durable row per decision. Labelling starts while
    the images are still being encoded. In a notebook, use
    :class:`LabellingServer` and its ``start``/``stop`` instead.

    Parameters
    ----------
    classifier : TaskResClassifier
        The fitted starting model, such as
        :func:`~sklearn_taskres.zero_shot_classifier` of the class names.
    paths : sequence of str or path
        The image files to label.
    labels_file : str or path
        The labels file (CSV); an existing one is resumed.
    model_file : str or path, default=None
        Where the served model is written after every refit.
    port : int, default=0
        The port on 127.0.0.1; 0 picks a free one.
    open_browser : bool, default=True
        Open the page in the default web browser.
    audit_share : float, default=0.25
        The share of images drawn uniformly at random to estimate accuracy.
    alpha : float or "auto", default="auto"
        The ``alpha`` of every refit: "auto" chooses it from the labels, the
        starting model among the candidates, and that model is served; with
        a number (0.5 is the paper's), the random images' audits decide
        whether the refitted or the starting model is served.
    random_state : int, RandomState instance or None, default=0
        Seeds the encoding order and the queue.
    save : callable, default=None
        ``save(model, path)`` writes the model file; None writes skops.

    Returns
    -------
    session : LabellingSession
        The session, closed: its decisions, models and estimates.

    Examples
    --------
    >>> from sklearn_taskres import zero_shot_classifier
    >>> from sklearn_taskres.label import serve
    >>> classifier = zero_shot_classifier(["cat", "dog"])  # doctest: +SKIP
    >>> serve(classifier, ["photos/1.jpg", "photos/2.jpg"], "labels.csv",
    ...       "model.skops")  # doctest: +SKIP
    """
    import webbrowser

    server = LabellingServer(classifier, paths, labels_file, model_file, port=port,
                             audit_share=audit_share, alpha=alpha, random_state=random_state,
                             save=save)
    print(f"Labelling page: {server.url}", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    server.serve_forever()
    return server.session
