"""scikit-learn's callback API (sklearn.callback, 1.9 and later) on both estimators."""

import importlib.util

import numpy as np
import pytest
from helpers import make_dataset
from sklearn.model_selection import GridSearchCV

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres._callbacks import NO_CALLBACKS, fit_callback_context

HAS_CALLBACK_API = importlib.util.find_spec("sklearn.callback") is not None
needs_callback_api = pytest.mark.skipif(
    not HAS_CALLBACK_API, reason="scikit-learn < 1.9 has no sklearn.callback"
)
NAMES = ["red", "green", "blue"]


class Recorder:
    """A callback that keeps every task it sees, with the fitted view it was given."""

    def __init__(self, max_propagation_depth=None):
        self.max_propagation_depth = max_propagation_depth  # auto-propagated
        self.begun, self.ended = [], []

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, fitted_estimator=None):
        self.begun.append((_path(context), fitted_estimator))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.ended.append({"path": _path(context), "X": X, "y": y, "metadata": metadata,
                           "fitted": fitted_estimator})

    def epochs(self):
        return [event for event in self.ended if event["path"][-1][1] == "epoch"]


def _path(context):
    path = []
    while context is not None:
        path.append((context.estimator_name, context.task_name, context.task_id))
        context = context.parent
    return path[::-1]


def drifted_blobs(seed=1):
    """Embeddings whose classes sit away from the base: training changes the predictions."""
    rng = np.random.RandomState(seed)
    base = rng.normal(size=(3, 16))
    y = np.repeat(np.arange(3), 12)
    X = (base + 2.0 * rng.normal(size=base.shape))[y] + 0.5 * rng.normal(size=(len(y), 16))
    return base, X.astype(np.float32), y


def make_head(base, **params):
    return TaskResHead(base, **{"alpha": 1.0, "learning_rate": 1e-2, "max_iter": 12,
                                "device": "cpu", "random_state": 0, **params})


@pytest.fixture
def make_clf(tiny_model):
    def make(**params):
        return TaskResClassifier(NAMES, **{"model": tiny_model, "pretrained": None,
                                           "max_iter": 6, "learning_rate": 1e-2,
                                           "device": "cpu", "random_state": 0, **params})

    return make


def test_set_callbacks_exists_exactly_where_scikit_learn_has_the_api():
    """Without sklearn.callback (scikit-learn < 1.9) the estimators have no set_callbacks."""
    assert hasattr(TaskResHead(), "set_callbacks") == HAS_CALLBACK_API
    assert hasattr(TaskResClassifier(NAMES), "set_callbacks") == HAS_CALLBACK_API


def test_an_estimator_without_the_api_gets_tasks_that_do_nothing():
    """The fit tasks of an estimator without _init_callback_context are no-ops."""
    tasks = fit_callback_context(object(), max_subtasks=3)
    assert tasks is NO_CALLBACKS
    assert tasks.subcontext(task_name="epoch").call_on_fit_task_begin(estimator=None) is tasks
    assert tasks.call_on_fit_task_end(estimator=None) is False


@needs_callback_api
def test_head_gets_one_task_per_epoch_with_the_residual_of_that_epoch():
    """Every epoch ends with a fitted view whose residual and loss curve are that epoch's."""
    base, X, y = drifted_blobs()
    recorder = Recorder()
    head = make_head(base).set_callbacks(recorder).fit(X, y)
    epochs = recorder.epochs()
    assert [event["path"] for event in epochs] == [
        [("TaskResHead", "fit", 0), ("TaskResHead", "epoch", epoch)] for epoch in range(12)
    ]
    np.testing.assert_array_equal(epochs[-1]["fitted"].residual_, head.residual_)
    for epoch, event in enumerate(epochs):
        view = event["fitted"]
        assert view.n_iter_ == epoch + 1
        assert view.loss_curve_ == pytest.approx(head.loss_curve_[: epoch + 1])
        np.testing.assert_array_equal(view.base_weights_, head.base_weights_)
        assert event["X"] is not None and event["y"] is not None and event["metadata"] is None
    assert not np.array_equal(epochs[0]["fitted"].residual_, epochs[5]["fitted"].residual_)
    first_begin = recorder.begun[1]  # the root task begins first
    assert first_begin[0][-1] == ("TaskResHead", "epoch", 0)
    assert not first_begin[1].residual_.any()  # before the first step: the base alone
    assert recorder.ended[-1]["path"] == [("TaskResHead", "fit", 0)]
    assert recorder.ended[-1]["fitted"].n_iter_ == 12


@needs_callback_api
def test_scoring_monitor_logs_the_accuracy_of_every_epoch():
    """ScoringMonitor(scoring="accuracy") logs a score per epoch; the last is the final score."""
    from sklearn.callback import ScoringMonitor

    base, X, y = drifted_blobs()
    monitor = ScoringMonitor(scoring="accuracy")
    head = make_head(base, max_iter=30).set_callbacks(monitor).fit(X, y)
    log = monitor.get_logs().data_as_pandas
    epochs = log[log["task_name"] == "epoch"]
    assert epochs["task_id"].tolist() == list(range(30))
    assert epochs["accuracy"].iloc[-1] == pytest.approx(head.score(X, y))
    assert epochs["accuracy"].nunique() > 1  # the residual changes the predictions
    base_accuracy = make_head(base, alpha=0.0, max_iter=1).fit(X, y).score(X, y)
    assert epochs["accuracy"].iloc[-1] > base_accuracy


@needs_callback_api
def test_callbacks_change_nothing_in_the_result():
    """The residual and loss curve are the same with and without callbacks, weights included."""
    from sklearn.callback import ProgressBar, ScoringMonitor

    base, X, y = drifted_blobs()
    weights = np.random.RandomState(1).uniform(0.5, 2.0, size=len(y))
    recorder = Recorder()
    for params in ({}, {"batch_size": 8}):
        plain = make_head(base, **params).fit(X, y, sample_weight=weights)
        watched = make_head(base, **params).set_callbacks(
            recorder, ScoringMonitor(scoring="accuracy"), ProgressBar()
        ).fit(X, y, sample_weight=weights)
        np.testing.assert_array_equal(watched.residual_, plain.residual_)
        assert watched.loss_curve_ == plain.loss_curve_
    np.testing.assert_array_equal(recorder.ended[-1]["metadata"]["sample_weight"], weights)


@needs_callback_api
def test_grid_search_draws_the_bars_of_taskres_inside_its_own(capsys):
    """GridSearchCV with ProgressBar(max_propagation_depth=None) nests TaskRes's epochs."""
    from sklearn.callback import ProgressBar

    pytest.importorskip("rich")
    base, X, y = drifted_blobs()
    search = GridSearchCV(make_head(base, max_iter=4), {"alpha": [0.5, 1.0]}, cv=2)
    search.set_callbacks(ProgressBar(max_propagation_depth=None)).fit(X, y)
    out = capsys.readouterr().out
    assert "GridSearchCV - candidate-split-evaluation | TaskResHead - fit #3" in out
    assert "GridSearchCV - refit-with-best-params | TaskResHead - fit" in out

    recorder = Recorder()
    search = GridSearchCV(make_head(base, max_iter=4), {"alpha": [0.5, 1.0]}, cv=2)
    search.set_callbacks(recorder).fit(X, y)
    epochs = recorder.epochs()
    assert len(epochs) == 4 * (2 * 2 + 1)  # every fit of every candidate, and the refit
    assert epochs[0]["path"][2][:2] == ("TaskResHead", "fit")  # merged with the grid's task
    assert epochs[0]["path"][-1] == ("TaskResHead", "epoch", 0)


@pytest.mark.auto_precision
@needs_callback_api
def test_classifier_tasks_are_encoding_text_base_and_epochs(make_clf):
    """The classifier's tasks: encode-images, text-base (zero-shot view), train with its epochs."""
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=0)
    recorder = Recorder()
    clf = make_clf().set_callbacks(recorder).fit(images, y)
    names = [event["path"][-1][1] for event in recorder.ended]
    assert names == ["encode-images", "text-base", *["epoch"] * 6, "train", "fit"]
    assert recorder.ended[7]["path"][-2:] == [("TaskResClassifier", "train", 2),
                                              ("TaskResClassifier", "epoch", 5)]
    assert recorder.ended[0]["fitted"] is None  # nothing to predict with yet

    zero_shot = recorder.ended[1]["fitted"]
    assert isinstance(zero_shot, TaskResClassifier) and zero_shot.n_iter_ == 0
    assert not zero_shot.residual_.any()
    reference = make_clf(alpha=0.0, max_iter=1).fit(images, y)
    np.testing.assert_allclose(zero_shot.decision_function(images),
                               reference.decision_function(images), rtol=1e-6)

    last = recorder.epochs()[-1]["fitted"]
    assert isinstance(last, TaskResClassifier)
    np.testing.assert_array_equal(last.residual_, clf.residual_)
    np.testing.assert_array_equal(last.predict(images), clf.predict(images))
    assert recorder.ended[-1]["X"] is images


@pytest.mark.auto_precision
@needs_callback_api
def test_classifier_results_are_the_same_with_callbacks(make_clf):
    """Callbacks change nothing in a classifier's fit, augmented views included."""
    from sklearn.callback import ScoringMonitor

    images, y = make_dataset(n_per_class=4, n_classes=3, seed=1)
    for params in ({}, {"augment_views": 2}):
        plain = make_clf(**params).fit(images, y)
        monitor = ScoringMonitor(scoring="accuracy")
        watched = make_clf(**params).set_callbacks(monitor).fit(images, y)
        np.testing.assert_array_equal(watched.residual_, plain.residual_)
        log = monitor.get_logs().data_as_pandas
        assert (log["task_name"] == "epoch").sum() == 6
        assert log["accuracy"].iloc[-1] == pytest.approx(watched.score(images, y))


@needs_callback_api
def test_a_failed_fit_tears_the_callbacks_down_and_leaves_no_context(make_clf):
    """An error in fit still tears the callbacks down; no callback context stays behind."""

    class Counting(Recorder):
        teardowns = 0

        def teardown(self, estimator, context):
            Counting.teardowns += 1

    base, X, y = drifted_blobs()
    head = make_head(base[:2]).set_callbacks(Counting())
    with pytest.raises(ValueError, match="expected every label of y to be one of classes_"):
        head.fit(X, y)
    assert Counting.teardowns == 1
    assert not hasattr(head, "_callback_fit_ctx") and not hasattr(head, "residual_")


@pytest.mark.auto_precision
@needs_callback_api
def test_pipeline_of_encoder_and_head_propagates_without_a_warning(tiny_model, recwarn):
    """In make_pipeline(CLIPImageEncoder, TaskResHead) both steps take the callbacks."""
    from sklearn.pipeline import make_pipeline

    from sklearn_taskres import CLIPImageEncoder

    images, y = make_dataset(n_per_class=4, n_classes=3, seed=2)
    recorder = Recorder()
    pipeline = make_pipeline(
        CLIPImageEncoder(model=tiny_model, pretrained=None, device="cpu"),
        TaskResHead(max_iter=3, device="cpu", random_state=0),
    )
    pipeline.set_callbacks(recorder).fit(images, y)
    assert not [w for w in recwarn if "does not support callbacks" in str(w.message)]
    tasks = [event["path"][-1] for event in recorder.ended]
    assert ("CLIPImageEncoder", "fit", 0) in tasks
    assert [task for task in tasks if task[1] == "epoch"] == [
        ("TaskResHead", "epoch", epoch) for epoch in range(3)
    ]


@needs_callback_api
def test_save_model_leaves_the_callbacks_out(tmp_path):
    """A skops file holds the fitted state, not the callbacks; the estimator keeps them."""
    from sklearn.callback import ScoringMonitor

    from sklearn_taskres import load_model, save_model

    base, X, y = drifted_blobs()
    monitor = ScoringMonitor(scoring="accuracy")
    head = make_head(base, max_iter=3).set_callbacks(monitor).fit(X, y)
    save_model(head, tmp_path / "head.skops")
    loaded = load_model(tmp_path / "head.skops")
    assert not hasattr(loaded, "_skl_callbacks") and head._skl_callbacks == [monitor]
    np.testing.assert_array_equal(loaded.residual_, head.residual_)
