"""The trainer of the labelling page: refits TaskRes on the labelled features after each decision.

A thread of its own: the person is never blocked by training. Decisions made
during a refit are folded into the next one (the trainer always fits the
latest labels, never a queue of stale ones). Each refitted model is installed
in the session at once, and the model the page serves is written to the model
file atomically: a kill never leaves half a file.
"""

import os
import threading
import time
from pathlib import Path

import torch
from sklearn.base import clone

from .._head import TaskResHead
from .._persistence import save_model
from .._progress import logger


def refit(start_model, X, y, *, alpha="auto"):
    """A fitted copy of ``start_model`` whose residual is learned on features ``X``, labels ``y``.

    The base, the label space and the training parameters are the starting
    model's, but for ``alpha``: by default chosen from the labels
    (``alpha="auto"``, zero-shot among the candidates), so that a few labels
    do not make the page's model worse than the class names alone. The
    residual starts at zero, as in any fit.

    Parameters
    ----------
    start_model : TaskResClassifier
        A fitted classifier (a zero-shot one, for instance).
    X : ndarray of shape (n_samples, n_features)
        Image features of the labelled images.
    y : ndarray of shape (n_samples,)
        Their labels, from ``start_model.classes_``.
    alpha : float or "auto", default="auto"
        The residual's scale; the returned model's ``alpha`` parameter too.

    Returns
    -------
    model : TaskResClassifier
    """
    head = TaskResHead(
        start_model.base_weights_,
        classes=start_model.classes_,
        alpha=alpha,
        logit_scale=start_model.logit_scale_,
        learning_rate=start_model.learning_rate,
        max_iter=start_model.max_iter,
        batch_size=start_model.batch_size,
        weight_decay=start_model.weight_decay,
        class_weight=start_model.class_weight,
        device=start_model.device,
        random_state=start_model.random_state,
    ).fit(X, y)
    model = clone(start_model).set_params(alpha=alpha)
    model._set_fitted(head)
    return model


def write_atomically(model, path, save=save_model):
    """Write ``model`` to ``path`` with ``save(model, path)`` through a temporary file.

    The file at ``path`` is the old one or the new one, never a part of
    either: the new one is written beside it, synced, then renamed over it.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save(model, temporary)
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


#: With ``alpha="auto"``, the strength is chosen again once the labels have grown by this
#: factor since it was last chosen; the refits in between reuse it. A choice costs 1.5 to 4
#: fixed refits (4 on 2,000 labelled ViT-B-32 features: 3.5 s against 0.9 s), and a few
#: more labels rarely change it: so about 20 choices in 2,000 labels, not 2,000.
RESELECT_GROWTH = 1.25


class Trainer(threading.Thread):
    """Refits after every change of the session's labels, in the background.

    With the session's ``alpha="auto"``, a refit chooses the strength from the
    labels when their number has grown by :data:`RESELECT_GROWTH` since the last
    choice (or at the first refit), and reuses the last choice otherwise.

    Parameters
    ----------
    session : LabellingSession
    model_file : str or path, default=None
        Where the served model is written after each refit.
    save : callable, default=save_model
        ``save(model, path)``.
    """

    def __init__(self, session, model_file=None, save=save_model):
        super().__init__(name="sklearn-taskres-trainer", daemon=True)
        self.session = session
        self.model_file = model_file
        self.save = save
        self.stopping = threading.Event()
        self.n_refits = 0
        self.refit_seconds = []
        #: The session's version when the model file was last written (None: never).
        self.model_file_version = None
        #: ``(n_labels, alpha_)`` of the last refit that chose alpha (None: none yet).
        self.alpha_choice = None

    def stop(self):
        self.stopping.set()
        self.session.labels_changed.set()

    def run(self):
        # For this thread only (OpenMP's and MKL's thread count is per thread): a refit on
        # a few thousand features gains nothing from more threads, and on a busy 2-core
        # machine two threads beside the encoder's made it 10 times slower (2.6 s against
        # 0.28 s for 2,000 features, K = 10).
        torch.set_num_threads(1)
        session = self.session
        while not self.stopping.is_set():
            if not session.labels_changed.wait(timeout=0.5):
                continue
            session.labels_changed.clear()
            if self.stopping.is_set():
                break
            try:
                self.step()
            except Exception as exc:  # shown on the page; labelling goes on
                logger.exception("refit failed")
                session.error = f"refit failed: {type(exc).__name__}: {exc}"

    def step(self):
        """One refit on the current labels (or back to the starting model without any)."""
        session = self.session
        job = session.training_data()
        if job is None:
            session.install(None, session.version, 0)
        else:
            version, start_model, X, y = job
            session.refitting = True
            started = time.perf_counter()
            try:
                model = refit(start_model, X, y, alpha=self._alpha(len(y)))
            finally:
                session.refitting = False
            if model.alpha == "auto":
                self.alpha_choice = (len(y), float(model.alpha_))
            self.refit_seconds.append(time.perf_counter() - started)
            self.n_refits += 1
            session.install(model, version, len(y))
        if self.model_file is not None:
            version = session.trained_version
            write_atomically(session.serving_model(), self.model_file, self.save)
            self.model_file_version = version

    def _alpha(self, n_labels):
        """The refit's alpha: the session's, or the last choice while labels grow little."""
        alpha = self.session.alpha
        if alpha == "auto" and self.alpha_choice is not None:
            chosen_at, chosen = self.alpha_choice
            if chosen_at <= n_labels < RESELECT_GROWTH * chosen_at:
                return chosen
        return alpha
