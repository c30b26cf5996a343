"""The state of a labelling session: the pool, the decisions, the models, behind one lock.

The pool is every image of the session, addressed by its index; its features
arrive from the encoder thread batch by batch. Decisions go to the labels
file (durable before they count) and wake the trainer; the trainer installs
each refitted model here. Every method holds the lock briefly and never
trains or encodes under it.
"""

import io
import os
import threading
from collections import OrderedDict

import numpy as np
from sklearn.utils import check_random_state

from .._labels_log import LabelsLog, session_classes
from .._open_set import NONE_LABEL
from ._estimate import WINDOW, audit_estimates, prefer_trained
from ._policy import (
    AUDIT_SHARE,
    COLD_START_PER_CLASS,
    coverage_clusters,
    coverage_images,
    next_images,
)

#: Longest side of the images sent to the page; the grid asks for thumbnails.
IMAGE_SIZE = 1024
THUMBNAIL_SIZE = 192
_RENDERED_CACHE = 256
#: The last decisions the page keeps visible, and changeable.
N_RECENT = 10
#: The cold start's clusters are computed again once the encoded pool has grown by this factor.
_RECLUSTER_GROWTH = 1.25
#: The longest a request for the next images waits for the refit of the latest decision.
REFIT_WAIT_SECONDS = 2.0


class SessionError(ValueError):
    """A request the session refuses: an unknown image or class, a name already taken."""


def _display_name(label):
    # As the command line reads labels: underscores as spaces, runs of spaces as one.
    return " ".join(label.replace("_", " ").split())


class LabellingSession:
    """The images, decisions and models of one labelling session.

    Parameters
    ----------
    classifier : TaskResClassifier
        The fitted starting model (a zero-shot classifier, or a model to
        improve): it names the classes, encodes the images, and is what every
        refit is compared with.
    paths : sequence of str or path
        The images to label.
    labels_file : str or path
        The labels file; an existing one is resumed.
    audit_share : float, default=0.25
        The share of images drawn uniformly at random (see :func:`next_images`).
    alpha : float or "auto", default="auto"
        The ``alpha`` of the refits (see :meth:`serving_model`).
    random_state : int, RandomState instance or None, default=None
        Seeds the encoding order and the queue.
    """

    def __init__(self, classifier, paths, labels_file, *, audit_share=AUDIT_SHARE,
                 alpha="auto", random_state=None):
        self._lock = threading.RLock()
        #: Notified whenever a refitted model is installed.
        self._installed = threading.Condition(self._lock)
        #: Set on every change the trainer must see; cleared by the trainer.
        self.labels_changed = threading.Event()
        self.start_model = classifier
        self.paths = list(dict.fromkeys(os.path.abspath(path) for path in paths))
        self._index_of = {path: index for index, path in enumerate(self.paths)}
        self.audit_share = audit_share
        #: The refits' ``alpha``: "auto" chooses it from the labels, zero-shot a candidate.
        self.alpha = alpha
        self._rng = check_random_state(random_state)
        n_images = len(self.paths)
        self.features = np.zeros((n_images, classifier.base_weights_.shape[1]), np.float32)
        self.encoded = np.zeros(n_images, dtype=bool)
        self.failed = {}  # index -> why it cannot be read
        self.decisions = {}  # index -> class label (str), or None for "none of these"
        self._recent = []  # decided indices, oldest first; undo pops the last
        self._audits = {}  # index -> (trained prediction, starting prediction), first audit
        self._issued_audits = set()
        self._skipped = set()
        self._priority = []  # images to show first: the ones a grid said were not its class
        self.trained_model = None
        self.trained_after = 0  # decisions the trained model was fitted on
        self.version = 0  # bumped by every decision
        self.trained_version = 0
        self.refitting = False
        self.error = None
        self.n_elsewhere = 0  # decisions of the labels file about images not in this session
        self._proba_cache = {}
        self._coverage = None  # (images clustered, clusters, typicality) of the cold start
        self._applied = {}  # operation id -> its result: a change sent twice is applied once
        self._rendered = OrderedDict()
        self._render_lock = threading.Lock()
        self.log = LabelsLog(labels_file)
        try:
            self._replay(self.log.rows)
        except BaseException:
            self.log.close()
            raise

    # ------------------------------------------------------------ classes and replay

    @property
    def classes(self):
        """The class labels as strings, in order."""
        return [str(label) for label in self.start_model.classes_]

    def _names(self):
        classnames = self.start_model.classnames
        if hasattr(classnames, "values"):
            return [str(name) for name in classnames.values()]
        return [str(name) for name in classnames]

    def _replay(self, rows):
        declared = session_classes(rows)
        classes = self.classes
        if not declared:
            for label, name in zip(classes, self._names(), strict=True):
                self.log.append("class", label=label, name=name)
        else:
            if list(declared)[: len(classes)] != classes:
                raise SessionError(
                    f"expected the labels file {str(self.log.path)!r} to be of the classes "
                    f"{classes}; got one of the classes {list(declared)}"
                )
            for label in list(declared)[len(classes):]:
                self._extend(label, declared[label])
        for row in rows:
            if row["event"] == "class":
                continue
            index = self._index_of.get(os.path.abspath(row["path"]))
            if index is None:
                self.n_elsewhere += 1
                continue
            if row["event"] == "undo":
                self.decisions.pop(index, None)
                if index in self._recent:
                    self._recent.remove(index)
                continue
            self._record(index, row["label"] if row["event"] == "label" else None)
            if row["audit"] == "1" and index not in self._audits:
                self._audits[index] = (row["predicted"], row["start_predicted"])
        self.version = len(rows)
        if self.decisions:
            self.labels_changed.set()

    def _record(self, index, label):
        self.decisions[index] = label
        if index in self._recent:
            self._recent.remove(index)
        self._recent.append(index)
        self._skipped.discard(index)

    def _extend(self, label, name):
        classnames = self.start_model.classnames
        new = {label: name} if hasattr(classnames, "keys") else [name]
        self.start_model = self.start_model.extend_classes(new)
        if self.trained_model is not None:
            self.trained_model = self.trained_model.extend_classes(new)
        self._proba_cache.clear()

    def add_class(self, label):
        """Add a class by its label (CLIP reads it with underscores as spaces)."""
        label = " ".join(str(label).split())
        if not label:
            raise SessionError("expected the name of the new class; got an empty name")
        name = _display_name(label)
        with self._lock:
            if label in self.classes or name in self._names():
                raise SessionError(f"expected a new class; got {label!r}, already a class")
            if not hasattr(self.start_model.classnames, "keys") and label != name:
                label = name  # the labels of a list of classnames are its names
            self._extend(label, name)
            self.log.append("class", label=label, name=name)
            self.version += 1
            self.labels_changed.set()
        return label

    # ------------------------------------------------------------ the pool

    def encoding_order(self):
        """The indices to encode: decided images first, then the rest in random order.

        A random order makes every prefix of the encoding a uniform sample of
        the folder, so labelling (and the audits) can start at once.
        """
        with self._lock:
            first = [index for index in self.decisions if not self.encoded[index]]
            rest = self._rng.permutation(len(self.paths))
        chosen = set(first)
        return first + [int(index) for index in rest if int(index) not in chosen]

    def add_features(self, indices, features, failures=()):
        """Features of encoded images, and ``(index, reason)`` of unreadable ones."""
        with self._lock:
            if len(indices):
                self.features[indices] = features
                self.encoded[indices] = True
                self._proba_cache.clear()
            for index, reason in failures:
                self.failed[index] = reason
            if any(index in self.decisions for index in indices):
                self.labels_changed.set()

    def _proba(self, model):
        """Probabilities of ``model`` for every encoded image (zeros elsewhere), cached."""
        key = (id(model), int(self.encoded.sum()))
        cached = self._proba_cache.get(id(model))
        if cached is not None and cached[0] == key:
            return cached[1]
        proba = np.zeros((len(self.paths), len(model.classes_)))
        rows = np.flatnonzero(self.encoded)
        if len(rows):
            proba[rows] = model.head_.predict_proba(self.features[rows])
        self._proba_cache[id(model)] = (key, proba)
        return proba

    def _prediction(self, model, index):
        return str(model.classes_[int(np.argmax(self._proba(model)[index]))])

    # ------------------------------------------------------------ models

    def _labelled_audits(self):
        with self._lock:
            return [(self.decisions[index], trained, start)
                    for index, (trained, start) in self._audits.items()
                    if self.decisions.get(index) is not None]

    def estimates(self):
        """The estimates ``(trained, start)`` from the latest audits (see :mod:`._estimate`)."""
        return audit_estimates(self._labelled_audits(), WINDOW)

    def serving_model(self):
        """The model whose predictions the page shows: the trained one, unless it is worse.

        A model refitted with ``alpha="auto"`` chose how far to move from the
        starting model by cross-validation on the labels, the starting model
        (alpha 0) a candidate: it is served. A few audits are a noisier judge
        than that (on the labelling benchmark, a paired margin of 2 on the
        last audits served zero-shot where the retrained model was 3 to 9
        points better). With a fixed ``alpha`` the audits decide
        (:func:`~._estimate.prefer_trained`).
        """
        with self._lock:
            if self.trained_model is None:
                return self.start_model
            if self.alpha == "auto" or prefer_trained(self._labelled_audits()):
                return self.trained_model
            return self.start_model

    def training_data(self):
        """``(version, starting model, features, labels)`` of the labelled encoded images.

        None when no image is labelled (with a class) yet. Images decided "none of
        these" come with the label ``"_none"``, which sharpens the none-of-these score.
        """
        with self._lock:
            indices = [index for index, label in self.decisions.items() if self.encoded[index]]
            if all(self.decisions[index] is None for index in indices):
                return None
            labels = np.empty(len(indices), dtype=object)  # classes and "_none" do not mix
            labels[:] = [NONE_LABEL if self.decisions[index] is None
                         else self._label_of(self.decisions[index]) for index in indices]
            return (self.version, self.start_model, self.features[indices].copy(), labels)

    def _n_rejected(self, model):
        """How many encoded, undecided images ``model`` takes for none of the classes."""
        head = model.head_
        if not hasattr(head, "unknown_threshold_"):
            return None
        pool = [index for index in np.flatnonzero(self.encoded) if index not in self.decisions]
        if not pool:
            return 0
        return int(np.sum(head.score_unknown(self.features[pool]) > head.unknown_threshold_))

    def _label_of(self, label):
        for value in self.start_model.classes_:
            if str(value) == label:
                return value
        raise SessionError(f"expected a class of {self.classes}; got {label!r}")

    def install(self, model, version, n_labels):
        """Make ``model`` (fitted on the decisions of ``version``) the trained model."""
        with self._lock:
            if model is not None and len(model.classes_) != len(self.start_model.classes_):
                return False  # a class was added meanwhile: the next refit has it
            self.trained_model = model
            self.trained_after = n_labels
            self.trained_version = version
            self._proba_cache = {key: value for key, value in self._proba_cache.items()
                                 if key in (id(self.start_model), id(model))}
            self._installed.notify_all()
            return True

    # ------------------------------------------------------------ decisions

    def _check_index(self, index):
        if not isinstance(index, int) or isinstance(index, bool) or not (
                0 <= index < len(self.paths)):
            raise SessionError(
                f"expected an image index in 0..{len(self.paths) - 1}; got {index!r}")
        if not self.encoded[index]:
            raise SessionError(f"expected an encoded image; got {index}, not encoded yet")

    def decide(self, index, label, *, audit=None):
        """Label image ``index`` with ``label`` (a class, or None for "none of these")."""
        with self._lock:
            self._check_index(index)
            if label is not None and label not in self.classes:
                raise SessionError(f"expected a class of {self.classes}; got {label!r}")
            model = self.trained_model or self.start_model
            predicted = self._prediction(model, index)
            start_predicted = self._prediction(self.start_model, index)
            if audit is None:
                audit = index in self._issued_audits or index in self._audits
            self.log.append("label" if label is not None else "none", path=self.paths[index],
                            label=label or "", predicted=predicted,
                            start_predicted=start_predicted, audit=audit)
            self._issued_audits.discard(index)
            self._record(index, label)
            if audit and index not in self._audits:
                self._audits[index] = (predicted, start_predicted)
            self.version += 1
            self.labels_changed.set()

    def undo(self, index=None):
        """Withdraw the decision on image ``index`` (the last decision by default).

        Returns the item of the image it was about (None when there is no
        decision to withdraw).
        """
        with self._lock:
            if index is None:
                if not self._recent:
                    return None
                index = self._recent[-1]
            elif index not in self.decisions:
                raise SessionError(f"expected a decided image to undo; got {index!r}, which "
                                   "is not decided")
            self._recent.remove(index)
            self.log.append("undo", path=self.paths[index])
            self.decisions.pop(index)
            self._priority.insert(0, index)
            self.version += 1
            self.labels_changed.set()
            return self.item(index)

    def skip(self, index):
        """Show image ``index`` again only once every other image is decided or skipped."""
        with self._lock:
            self._check_index(index)
            self._skipped.add(index)
            self._issued_audits.discard(index)

    # ------------------------------------------------------------ what the page shows

    def item(self, index, *, audit=False):
        """What the page needs to show image ``index``."""
        with self._lock:
            model = self.serving_model()
            proba = self._proba(model)[index]
            decided = self.decisions.get(index, False)
            return {
                "index": index,
                "name": os.path.basename(self.paths[index]),
                "audit": audit,
                "proba": [round(float(p), 4) for p in proba],
                "suggestion": str(model.classes_[int(np.argmax(proba))]),
                "decided": decided is not False,
                "label": decided if decided is not False else None,
            }

    def _label_counts(self):
        counts = np.zeros(len(self.classes))
        for label in self.decisions.values():
            if label is not None:
                counts[self.classes.index(label)] += 1
        return counts

    @property
    def cold_start(self):
        """Whether the page still covers the pool (too few decisions to trust a model)."""
        with self._lock:
            return len(self.decisions) < COLD_START_PER_CLASS * len(self.classes)

    def _coverage_of_pool(self):
        """``(clusters, typicality)`` of the encoded pool for the cold start (-1: not encoded)."""
        n_encoded = int(self.encoded.sum())
        if self._coverage is None or n_encoded > _RECLUSTER_GROWTH * self._coverage[0]:
            rows = np.flatnonzero(self.encoded)
            clusters = np.full(len(self.paths), -1)
            typicality = np.zeros(len(self.paths))
            if len(rows):
                n_clusters = COLD_START_PER_CLASS * len(self.classes)
                clusters[rows], typicality[rows] = coverage_clusters(
                    self.features[rows], n_clusters, random_state=0)
            self._coverage = (n_encoded, clusters, typicality)
        return self._coverage[1], self._coverage[2]

    def _available(self, hold=()):
        available = self.encoded.copy()
        available[list(self.decisions)] = False
        available[list(self.failed)] = False
        available[list(hold)] = False
        return available

    def _ranked(self, available, n_images, audit_share, pending=()):
        """``(index, audit)`` picks of the policy: coverage in the cold start, then the model's.

        ``pending``: images decided on the page whose decisions are on their way; the
        cold start counts their clusters as covered.
        """
        if not self.cold_start:
            model = self.trained_model or self.start_model
            return next_images(self._proba(model), available, self._label_counts(), self._rng,
                               n_images=n_images, audit_share=audit_share)
        clusters, typicality = self._coverage_of_pool()
        decided = np.zeros(len(self.paths), dtype=bool)
        decided[list(self.decisions)] = True
        decided[list(pending)] = True
        left, picks = available.copy(), []
        while len(picks) < n_images and left.any():
            if self._rng.random_sample() < audit_share:
                index, audit = int(self._rng.choice(np.flatnonzero(left))), True
            else:
                covered = decided.copy()
                covered[[index for index, _ in picks]] = True
                found = coverage_images(clusters, typicality, left, covered)
                if not found:
                    break
                index, audit = found[0], False
            picks.append((index, audit))
            left[index] = False
        return picks

    def _issue(self, picks):
        for index, audit in picks:
            if audit:
                self._issued_audits.add(index)
            else:
                self._issued_audits.discard(index)

    def queue(self, n_images, hold=()):
        """The images the page should show next: ``hold`` (refreshed) then new picks."""
        with self._lock:
            hold = [index for index in hold if isinstance(index, int)
                    and 0 <= index < len(self.paths) and self.encoded[index]]
            available = self._available(hold)
            fresh = available.copy()
            fresh[list(self._skipped)] = False
            picks = []
            for index in list(self._priority):
                if len(picks) >= n_images:
                    break
                self._priority.remove(index)
                if fresh[index]:
                    picks.append((index, False))
                    fresh[index] = available[index] = False
            if not fresh.any():
                fresh = available  # only skipped images are left: show them again
            picks += self._ranked(fresh, n_images - len(picks), self.audit_share)
            self._issue(picks)
            items = [self.item(index, audit=index in self._issued_audits) for index in hold]
            return items + [self.item(index, audit=audit) for index, audit in picks]

    def next_images(self, n_ranked, n_random, hold=(), *, pending=(), after=None,
                    timeout=REFIT_WAIT_SECONDS):
        """The page's two lanes of next images: the policy's picks and uniform random ones.

        The page shows a policy pick only while it is fresh (chosen by a model
        that lacks at most the decision just made) and a random one otherwise,
        or when it draws an audit: labels that come faster than refits get
        random order, never a stale model's choice.

        Parameters
        ----------
        n_ranked, n_random : int
            How many images of each lane.
        hold : sequence of int
            Images the page holds already (shown, ahead, or decided there but
            not saved yet): neither lane repeats them.
        pending : sequence of int
            Images of ``hold`` decided on the page, the decisions on their way:
            the cold start counts them as labelled.
        after : int, default=None
            Wait (at most ``timeout`` seconds) until the trained model includes
            the decisions up to this :attr:`version`.

        Returns
        -------
        dict
            ``ranked`` and ``random`` (lists of items), ``kind`` (``"coverage"``
            in the cold start, else ``"model"``), and ``missing``: how many
            changes of the labels the choosing model had not seen.
        """
        with self._lock:
            if after is not None:
                self._installed.wait_for(lambda: self.trained_version >= min(after, self.version),
                                         timeout=timeout)
            hold = [index for index in [*hold, *pending] if isinstance(index, int)
                    and 0 <= index < len(self.paths)]
            pending = [index for index in pending if index in hold]
            available = self._available(hold)
            fresh = available.copy()
            fresh[list(self._skipped)] = False
            if not fresh.any():
                fresh = available
            ranked = [(index, False) for index in self._priority if fresh[index]][:n_ranked]
            for index, _ in ranked:
                fresh[index] = False
            kind = "coverage" if self.cold_start else "model"
            ranked += self._ranked(fresh, n_ranked - len(ranked), 0.0, pending)
            for index, _ in ranked:
                fresh[index] = False
            candidates = np.flatnonzero(fresh)
            drawn = self._rng.choice(candidates, min(n_random, len(candidates)), replace=False)
            random = [(int(index), True) for index in drawn]
            self._issue(ranked + random)
            return {
                "ranked": [self.item(index) for index, _ in ranked],
                "random": [self.item(index, audit=True) for index, _ in random],
                "kind": kind,
                "missing": self.version - self.trained_version,
                "version": self.version,
            }

    # ------------------------------------------------------------ changes, in order

    def apply(self, operations):
        """Apply the page's changes in order; each ``id`` is applied once, however often sent.

        The page sends every change (decisions, undos, skips, grids, new
        classes) on one ordered channel, and sends the unanswered ones again
        when it is closed or the network fails: a change sent twice is
        applied once.

        Parameters
        ----------
        operations : list of dict
            Each with ``id`` (str, unique in the page's life) and ``op``:
            ``"decide"`` (``index``, ``label`` or ``none``), ``"undo"``
            (``index``, or none for the last decision), ``"skip"``
            (``index``), ``"grid"`` (``label``, ``accepted``, ``rejected``) or
            ``"class"`` (``name``).

        Returns
        -------
        results : list of dict
            Per operation: ``id``, ``ok``, and ``error`` (why it was refused)
            or what it answers (``item`` for an undo, ``label`` for a class).
        """
        if not isinstance(operations, list):
            raise SessionError(f"expected a list of changes; got {type(operations).__name__}")
        results = []
        with self._lock:
            for position, operation in enumerate(operations):
                if not isinstance(operation, dict) or not isinstance(operation.get("id"), str):
                    raise SessionError(f"expected change {position} to be an object with an "
                                       f"'id' string; got {operation!r}")
                known = self._applied.get(operation["id"])
                if known is None:
                    known = self._apply_one(operation)
                    self._applied[operation["id"]] = known
                results.append(known)
        return results

    def _apply_one(self, operation):
        kind = operation.get("op")
        answer = {"id": operation["id"], "ok": True}
        try:
            if kind == "decide":
                label = None if operation.get("none") else operation.get("label")
                if label is not None and not isinstance(label, str):
                    raise SessionError(f"expected a class label as a string; got {label!r}")
                self.decide(operation.get("index"), label)
            elif kind == "undo":
                answer["item"] = self.undo(operation.get("index"))
            elif kind == "skip":
                self.skip(operation.get("index"))
            elif kind == "grid":
                self.confirm_grid(operation.get("label"), list(operation.get("accepted", [])),
                                  list(operation.get("rejected", [])))
            elif kind == "class":
                answer["label"] = self.add_class(str(operation.get("name", "")))
            else:
                raise SessionError(f"expected a change 'decide', 'undo', 'skip', 'grid' or "
                                   f"'class'; got {kind!r}")
        except SessionError as exc:
            return {"id": operation["id"], "ok": False, "error": str(exc)}
        return answer

    def grid(self, label, n_images):
        """Undecided images the serving model puts in class ``label``, most probable first."""
        with self._lock:
            if label not in self.classes:
                raise SessionError(f"expected a class of {self.classes}; got {label!r}")
            model = self.serving_model()
            proba = self._proba(model)
            column = self.classes.index(label)
            candidates = self.encoded.copy()
            candidates[list(self.decisions)] = False
            candidates[list(self.failed)] = False
            candidates &= proba.argmax(axis=1) == column
            indices = np.flatnonzero(candidates)
            indices = indices[np.argsort(-proba[indices, column], kind="stable")][:n_images]
            return [self.item(int(index)) for index in indices]

    def confirm_grid(self, label, accepted, rejected=()):
        """Label the ``accepted`` images of a grid with ``label``; show ``rejected`` ones next."""
        with self._lock:
            for index in [*accepted, *rejected]:
                self._check_index(index)
            for index in accepted:
                self.decide(index, label, audit=False)
            self._priority[:0] = [index for index in rejected if index not in self.decisions]

    def state(self):
        """The counts, the models and the estimates, as the page shows them."""
        with self._lock:
            trained, start = self.estimates()
            counts = {label: 0 for label in self.classes}
            n_none = 0
            for label in self.decisions.values():
                if label is None:
                    n_none += 1
                else:
                    counts[label] += 1
            serving = self.serving_model()
            return {
                "classes": [{"label": label, "name": name, "count": counts[label]}
                            for label, name in zip(self.classes, self._names(), strict=True)],
                "n_images": len(self.paths),
                "n_encoded": int(self.encoded.sum()),
                "n_failed": len(self.failed),
                "n_labelled": len(self.decisions) - n_none,
                "n_none": n_none,
                "n_rejected": self._n_rejected(serving),
                "version": self.version,
                "audit_share": self.audit_share,
                "cold_start": self.cold_start,
                "model": {
                    "serving": "trained" if serving is self.trained_model else "start",
                    "start": ("zero-shot" if not self.start_model.residual_.any()
                              else "the model it started from"),
                    "trained_after": self.trained_after if self.trained_model else None,
                    "trained_version": self.trained_version,
                    "refitting": self.refitting,
                },
                "estimate": {
                    "trained": trained.as_dict() if trained else None,
                    "start": start.as_dict() if start else None,
                    "window": WINDOW,
                },
                "recent": [{"index": index, "name": os.path.basename(self.paths[index]),
                            "label": self.decisions[index]}
                           for index in self._recent[-N_RECENT:]],
                "labels_file": str(self.log.path),
                "error": self.error,
            }

    def render(self, index, size=IMAGE_SIZE):
        """Image ``index`` as JPEG bytes, upright, its longest side at most ``size``.

        None when the file cannot be read.
        """
        from PIL import Image, ImageOps

        if not 0 <= index < len(self.paths):
            return None
        key = (index, size)
        with self._render_lock:
            if key in self._rendered:
                self._rendered.move_to_end(key)
                return self._rendered[key]
        try:
            with Image.open(self.paths[index]) as image:
                image.draft("RGB", (size, size))
                image = ImageOps.exif_transpose(image)
                if image.mode in ("RGBA", "LA", "P"):
                    image = image.convert("RGBA")
                    background = Image.new("RGBA", image.size, "white")
                    image = Image.alpha_composite(background, image)
                image = image.convert("RGB")
                image.thumbnail((size, size))
                buffer = io.BytesIO()
                image.save(buffer, "JPEG", quality=88)
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        data = buffer.getvalue()
        with self._render_lock:
            self._rendered[key] = data
            while len(self._rendered) > _RENDERED_CACHE:
                self._rendered.popitem(last=False)
        return data

    def close(self):
        self.log.close()
