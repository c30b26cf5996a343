import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres.diagnostics import (
    relative_residual_magnitude,
    relative_residual_magnitude_per_class,
    relative_residual_report,
    residual_norms,
)
from sklearn_taskres.plotting import (
    plot_confusion_matrix,
    plot_loss_curve,
    plot_residual_norms,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diagnostics.py"
DIAGNOSTICS = [
    residual_norms,
    relative_residual_magnitude,
    relative_residual_magnitude_per_class,
    relative_residual_report,
]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Train on one thread: the tiny fits here run many times faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def unit(array):
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def far_off_task(n_easy=4, n_hard=2, n_features=64, n_per_class=8, seed=0):
    """Embeddings, base and hard classes of a task whose base is far off for some classes.

    The hard classes share a direction; their base rows have it but point to a
    random class-specific part, 60 degrees away from their embeddings. The base
    rows of the easy classes are close to their embeddings.
    """
    rng = np.random.RandomState(seed)
    centers = unit(rng.normal(size=(n_easy + n_hard, n_features)))
    base = unit(centers + 0.02 * rng.normal(size=centers.shape))
    shared = unit(rng.normal(size=n_features))
    centers[n_easy:] = unit(shared + centers[n_easy:])
    base[n_easy:] = unit(shared + unit(rng.normal(size=(n_hard, n_features))))
    y = np.repeat(np.arange(n_easy + n_hard), n_per_class)
    X = centers[y] + 0.05 * rng.normal(size=(len(y), n_features))
    return base, X.astype(np.float32), y, np.arange(n_easy, n_easy + n_hard)


@pytest.fixture(scope="module")
def task():
    base, X, y, hard = far_off_task()
    # Non-unit base rows, so that the relative magnitude differs from the norm.
    base = base * np.linspace(0.5, 2.0, len(base))[:, np.newaxis]
    return base, X, y, hard


@pytest.fixture(scope="module")
def head(task):
    base, X, y, _ = task
    labels = np.array(["ant", "bee", "cat", "dog", "eel", "fox"])
    return TaskResHead(base, classes=labels, max_iter=100, device="cpu",
                       random_state=0).fit(X, labels[y])


def test_residual_norms_match_numpy(head):
    """residual_norms is the row-wise L2 norm of alpha_ * residual_."""
    scaled = head.alpha_ * head.residual_.astype(np.float64)
    expected = np.sqrt((scaled ** 2).sum(axis=1))
    norms = residual_norms(head)
    assert norms.shape == (len(head.classes_),) and norms.dtype == np.float64
    np.testing.assert_allclose(norms, expected, rtol=1e-12)
    assert norms.max() > 0


def test_relative_magnitude_and_report_match_numpy(head):
    """The relative magnitude divides by ||t_k||; the report summarises it."""
    expected = residual_norms(head) / np.linalg.norm(head.base_weights_, axis=1)
    per_class = relative_residual_magnitude_per_class(head)
    np.testing.assert_allclose(per_class, expected, rtol=1e-6)
    assert relative_residual_magnitude(head) == pytest.approx(expected.mean())
    report = relative_residual_report(head)
    assert report["mean"] == pytest.approx(expected.mean())
    assert report["median"] == pytest.approx(np.median(expected))
    assert report["max"] == pytest.approx(expected.max())
    assert report["max_class"] == head.classes_[np.argmax(expected)]
    np.testing.assert_array_equal(report["classes"], head.classes_)
    np.testing.assert_allclose(report["per_class"], expected, rtol=1e-6)


def test_norms_scale_linearly_with_alpha(head, task):
    """For a given residual, doubling alpha_ doubles both measures; alpha=0 gives zero."""
    doubled = copy.deepcopy(head)
    doubled.alpha_ = 2 * head.alpha_
    np.testing.assert_allclose(residual_norms(doubled), 2 * residual_norms(head))
    np.testing.assert_allclose(relative_residual_magnitude_per_class(doubled),
                               2 * relative_residual_magnitude_per_class(head))
    base, X, y, _ = task
    zero_shot = TaskResHead(base, alpha=0.0, max_iter=5, device="cpu").fit(X, y)
    np.testing.assert_array_equal(residual_norms(zero_shot), 0.0)
    assert relative_residual_magnitude(zero_shot) == 0.0


def test_classes_with_a_far_off_base_get_larger_relative_residuals():
    """The residual grows where the base is far off and stays small where it is close."""
    base, X, y, hard = far_off_task()
    fitted = TaskResHead(base, max_iter=100, device="cpu", random_state=0).fit(X, y)
    per_class = relative_residual_magnitude_per_class(fitted)
    easy = np.setdiff1d(np.arange(len(base)), hard)
    assert per_class[hard].min() > 3 * per_class[easy].max()
    assert relative_residual_report(fitted)["max_class"] in hard


def test_classifier_and_pipeline_are_measured_through_their_head(task):
    """A TaskResClassifier uses head_.alpha_; a Pipeline is measured by its last step."""
    base, X, y, _ = task
    fitted = TaskResHead(base, alpha=0.7, max_iter=20, device="cpu", random_state=0).fit(X, y)
    clf = TaskResClassifier([f"class {k}" for k in range(len(base))], alpha=0.7)
    # The classifier's own way to take a fitted head (fit and restrict_classes
    # use it); it spares this test an open_clip model.
    clf._set_fitted(fitted)
    expected = np.linalg.norm(0.7 * fitted.residual_.astype(np.float64), axis=1)
    np.testing.assert_allclose(residual_norms(clf), expected, rtol=1e-12)
    np.testing.assert_allclose(relative_residual_magnitude_per_class(clf),
                               relative_residual_magnitude_per_class(fitted))
    pipeline = make_pipeline(FunctionTransformer(), fitted).fit(X, y)
    np.testing.assert_array_equal(residual_norms(pipeline), residual_norms(fitted))


@pytest.mark.parametrize("function", DIAGNOSTICS + [plot_loss_curve, plot_residual_norms])
@pytest.mark.parametrize("estimator", [TaskResHead(), TaskResClassifier(["cat", "dog"])],
                         ids=["head", "classifier"])
def test_unfitted_estimator_raises_not_fitted_error(function, estimator):
    """Every diagnostic and plot refuses an unfitted estimator."""
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        function(estimator)


def test_confusion_matrix_of_unfitted_estimator_raises_not_fitted_error(task):
    """plot_confusion_matrix refuses an unfitted estimator."""
    _, X, y, _ = task
    with pytest.raises(NotFittedError, match="is not fitted yet"):
        plot_confusion_matrix(TaskResHead(), X, y)


@pytest.mark.parametrize("function", DIAGNOSTICS + [plot_loss_curve, plot_residual_norms])
def test_other_estimators_raise_type_error(function, task):
    """A fitted estimator without a task residual is named in the error."""
    _, X, y, _ = task
    other = LogisticRegression().fit(X, y)
    with pytest.raises(TypeError, match="expected a TaskResHead, .*; got LogisticRegression"):
        function(other)


def test_plots_without_matplotlib_say_how_to_install_it(head, task, monkeypatch):
    """Without matplotlib the plots raise an ImportError with the pip command."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    _, X, _, _ = task
    calls = [lambda: plot_loss_curve(head), lambda: plot_residual_norms(head),
             lambda: plot_confusion_matrix(head, X, head.predict(X))]
    for call in calls:
        with pytest.raises(ImportError, match=r"pip install sklearn-taskres\[plot\]"):
            call()


@pytest.fixture
def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def save_png(ax, path):
    ax.figure.savefig(path)
    assert path.is_file() and path.stat().st_size > 0
    with open(path, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_loss_curve_draws_one_line_per_epoch(pyplot, head, tmp_path):
    """One line with a point per epoch, titled and labelled, saved as a PNG."""
    ax = plot_loss_curve(head)
    assert len(ax.lines) == 1
    x, loss = ax.lines[0].get_data()
    np.testing.assert_array_equal(x, np.arange(1, head.n_iter_ + 1))
    np.testing.assert_allclose(loss, head.loss_curve_)
    assert ax.get_title() and ax.get_xlabel() == "Epoch" and ax.get_ylabel()
    save_png(ax, tmp_path / "loss.png")


def test_plot_loss_curve_draws_on_the_given_axes(pyplot, head):
    """With ax, the plot goes there and the same Axes comes back."""
    _, ax = pyplot.subplots()
    assert plot_loss_curve(head, ax=ax) is ax


def test_plot_residual_norms_draws_sorted_bars(pyplot, head, tmp_path):
    """One bar per class, largest first, labelled with the classes."""
    ax = plot_residual_norms(head)
    norms = residual_norms(head)
    order = np.argsort(-norms, kind="stable")
    assert len(ax.patches) == len(head.classes_)
    np.testing.assert_allclose([bar.get_width() for bar in ax.patches], norms[order])
    assert [tick.get_text() for tick in ax.get_yticklabels()] == list(head.classes_[order])
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    save_png(ax, tmp_path / "norms.png")


def test_plot_residual_norms_top_and_relative(pyplot, head, tmp_path):
    """top keeps the largest bars; relative plots ||alpha x_k|| / ||t_k||."""
    ax = plot_residual_norms(head, top=2, relative=True)
    relative = relative_residual_magnitude_per_class(head)
    assert len(ax.patches) == 2
    np.testing.assert_allclose([bar.get_width() for bar in ax.patches],
                               np.sort(relative)[::-1][:2])
    assert "top 2 of 6" in ax.get_title()
    save_png(ax, tmp_path / "top.png")
    assert len(plot_residual_norms(head, top=100).patches) == len(head.classes_)


def test_plot_residual_norms_rejects_a_top_below_one(head):
    """top must be a positive integer."""
    with pytest.raises(InvalidParameterError, match="'top' parameter"):
        plot_residual_norms(head, top=0)


def test_plot_confusion_matrix_follows_classes(pyplot, head, task, tmp_path):
    """Rows and columns follow classes_, also for a class absent from y."""
    _, X, y, _ = task
    labels = head.classes_[y]
    present = labels != head.classes_[0]
    display = plot_confusion_matrix(head, X[present], labels[present])
    matrix = display.confusion_matrix
    assert matrix.shape == (6, 6) and matrix.sum() == present.sum()
    assert [tick.get_text() for tick in display.ax_.get_xticklabels()] == list(head.classes_)
    assert display.ax_.get_title() and display.ax_.get_xlabel() and display.ax_.get_ylabel()
    save_png(display.ax_, tmp_path / "confusion.png")


def test_plot_confusion_matrix_passes_keyword_arguments(pyplot, head, task):
    """Keyword arguments reach ConfusionMatrixDisplay.from_estimator."""
    _, X, y, _ = task
    display = plot_confusion_matrix(head, X, head.classes_[y], normalize="true")
    np.testing.assert_allclose(display.confusion_matrix.sum(axis=1), 1.0)


def test_plot_confusion_matrix_names_unknown_labels(pyplot, head, task):
    """A label outside classes_ is an error, not a silently dropped sample."""
    _, X, y, _ = task
    with pytest.raises(ValueError, match="expected every label of y .*; got unknown .*'owl'"):
        plot_confusion_matrix(head, X[:2], ["ant", "owl"])


def test_example_writes_its_plots(tmp_path):
    """examples/diagnostics.py runs offline and saves three non-empty PNG files."""
    pytest.importorskip("matplotlib")
    # One thread: the example's small fit is much faster without thread contention.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(EXAMPLE), "--output", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Relative residual magnitude" in result.stdout
    names = ["loss_curve.png", "residual_norms.png", "confusion_matrix.png"]
    for name in names:
        path = tmp_path / name
        assert path.is_file() and path.stat().st_size > 0
        assert str(path) in result.stdout


def test_many_classes_are_plotted_without_tick_labels(pyplot):
    """Beyond 40 classes the bars and the matrix keep their size but drop class names."""
    rng = np.random.RandomState(0)
    base = rng.normal(size=(50, 8))
    y = np.arange(50)
    fitted = TaskResHead(base, max_iter=2, device="cpu", random_state=0).fit(base[y], y)
    ax = plot_residual_norms(fitted)
    assert len(ax.patches) == 50 and len(ax.get_yticks()) == 0
    assert ax.figure.get_figheight() < 15
    display = plot_confusion_matrix(fitted, base[y], y)
    assert display.confusion_matrix.shape == (50, 50)
    assert len(display.ax_.get_xticks()) == 0 and "50 classes" in display.ax_.get_xlabel()
