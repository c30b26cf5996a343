import ast
import inspect
import json
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io
from helpers import make_dataset

import sklearn_taskres
from sklearn_taskres import TaskResClassifier, TaskResHead, _persistence, load_model, save_model
from sklearn_taskres._state import FORMAT_VERSION

DATA = Path(__file__).parent / "data"


@pytest.fixture
def head_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 8))
    y = np.arange(30) % 3
    return X, y


def test_pickles_carry_the_format_version(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    assert state["_sklearn_taskres_format"] == FORMAT_VERSION
    restored = pickle.loads(pickle.dumps(head))
    assert "_sklearn_taskres_format" not in vars(restored)


def test_a_newer_format_is_refused_clearly(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    state["_sklearn_taskres_format"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="written by a newer sklearn-taskres.*pip install -U"):
        TaskResHead.__new__(TaskResHead).__setstate__(state)


def test_a_state_without_format_warns(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    del state["_sklearn_taskres_format"]
    with pytest.warns(UserWarning, match="without a sklearn-taskres format version"):
        TaskResHead.__new__(TaskResHead).__setstate__(state)


@pytest.mark.parametrize("with_base", [False, True])
def test_head_round_trip(head_data, tmp_path, with_base):
    X, y = head_data
    if with_base:
        base = np.random.RandomState(1).normal(size=(3, 8))
        head = TaskResHead(base, classes=["a", "b", "c"], max_iter=3, device="cpu",
                           random_state=2).fit(X, np.array(["a", "b", "c"])[y])
    else:
        head = TaskResHead(max_iter=3, device="cpu", random_state=2).fit(X, y)
    save_model(head, tmp_path / "head.skops")
    loaded = load_model(tmp_path / "head.skops")
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, head.classes_)
    assert loaded.get_params()["random_state"] == 2
    assert loaded.loss_curve_ == head.loss_curve_ and loaded.n_features_in_ == 8


def test_the_file_is_a_skops_file_other_tools_read(head_data, tmp_path):
    """skops itself loads the file, trusting the types it names."""
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    save_model(head, tmp_path / "head.skops")
    assert "schema.json" in zipfile.ZipFile(tmp_path / "head.skops").namelist()
    untrusted = skops.io.get_untrusted_types(file=tmp_path / "head.skops")
    assert untrusted == ["sklearn_taskres._head.TaskResHead"]
    loaded = skops.io.load(tmp_path / "head.skops", trusted=untrusted)
    np.testing.assert_array_equal(loaded.residual_, head.residual_)


@pytest.mark.parametrize("classnames", [["red", "green", "blue"], {10: "red", 20: "g", 3.5: "b"}])
def test_skops_trusted_types_are_what_skops_asks_for_and_load_model_trusts(
        tiny_model, tmp_path, classnames):
    """SKOPS_TRUSTED_TYPES is the list skops reports untrusted, and load_model's own."""
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=601)
    labels = np.array(list(classnames), dtype=object)[y] if isinstance(classnames, dict) else y
    clf = TaskResClassifier(classnames, model=tiny_model, pretrained=None, max_iter=2,
                            device="cpu", precision="fp32", class_weight="balanced",
                            random_state=np.random.RandomState(0)).fit(images, labels)
    save_model(clf, tmp_path / "clf.skops")
    assert skops.io.get_untrusted_types(file=tmp_path / "clf.skops") == sorted(
        sklearn_taskres.SKOPS_TRUSTED_TYPES)
    assert _persistence._ALLOWED["ObjectNode"] == frozenset(sklearn_taskres.SKOPS_TRUSTED_TYPES)
    loaded = skops.io.load(tmp_path / "clf.skops", trusted=sklearn_taskres.SKOPS_TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))


def test_a_classifier_saved_before_image_column_takes_x_as_it_is(tiny_model):
    """A state without image_column (saved by an earlier release) loads with None."""
    from sklearn_taskres import CLIPImageEncoder

    for estimator in (TaskResClassifier(["a", "b"], model=tiny_model),
                      CLIPImageEncoder(tiny_model)):
        state = estimator.__getstate__()
        del state["image_column"]
        restored = type(estimator).__new__(type(estimator))
        restored.__setstate__(state)
        assert restored.get_params()["image_column"] is None


@pytest.mark.parametrize("classnames, labels", [
    (["red", "green", "blue"], [0, 1, 2]),
    (["red", "green", "blue"], ["red", "green", "blue"]),
    ({10: "red", 20: "green", 30: "blue"}, [10, 20, 30]),
    ({"r": "red", 2: "green", 3.5: "blue"}, ["r", 2, 3.5]),
])
@pytest.mark.auto_precision
def test_classifier_round_trip(tiny_model, tmp_path, classnames, labels):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=600)
    labels = np.array(labels, dtype=object)[y]
    clf = TaskResClassifier(classnames, model=tiny_model, pretrained=None, max_iter=3,
                            templates=["a {}.", "the {}."], device="cpu", random_state=0)
    clf.fit(images, labels)
    save_model(clf, tmp_path / "clf.skops")
    loaded = load_model(tmp_path / "clf.skops")
    assert isinstance(loaded, TaskResClassifier)
    assert loaded.get_params()["classnames"] == classnames
    assert loaded.head_.base_weights_ is loaded.base_weights_  # one copy, as in the pickle
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    assert loaded.predict(images).tolist() == clf.predict(images).tolist()


def test_the_state_goes_through_getstate_and_setstate(head_data, tmp_path, monkeypatch):
    """Extra state keys (such as a nested JSON-like config) round-trip through __setstate__."""
    config = {"embed_dim": 32, "vision_cfg": {"layers": [1, 2], "scale": 0.5, "name": "x"},
              "bias": None, "flags": [True, {"deep": [None, 1.5, "y"]}]}
    received = []
    get_state, set_state = TaskResHead.__getstate__, TaskResHead.__setstate__

    def getstate(self):
        return {**get_state(self), "_extra": config}

    def setstate(self, state):
        state = dict(state)
        received.append(state.pop("_extra"))
        set_state(self, state)

    monkeypatch.setattr(TaskResHead, "__getstate__", getstate)
    monkeypatch.setattr(TaskResHead, "__setstate__", setstate)
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    save_model(head, tmp_path / "head.skops")
    loaded = load_model(tmp_path / "head.skops")
    assert received == [config]
    assert not hasattr(loaded, "_extra") and "_sklearn_taskres_format" not in vars(loaded)


def test_random_state_instances_are_saved_exactly(head_data, tmp_path):
    rng = np.random.RandomState(7)
    head = TaskResHead(max_iter=2, device="cpu", random_state=rng).fit(*head_data)
    save_model(head, tmp_path / "head.skops")
    loaded = load_model(tmp_path / "head.skops").random_state
    assert isinstance(loaded, np.random.RandomState)
    assert loaded.randint(1 << 30) == rng.randint(1 << 30)


TRACES = []


class Smuggled:
    """Leaves a trace whenever an instance is built or given a state."""

    def __init__(self):
        self.payload = "trace"
        TRACES.append("init")

    def __setstate__(self, state):
        TRACES.append("setstate")
        self.__dict__.update(state)


def _smuggle(tmp_path, value):
    head = TaskResHead(max_iter=1, device="cpu").fit(np.eye(4), [0, 1, 0, 1])
    head.extra_ = value
    skops.io.dump(head, tmp_path / "evil.skops")
    return tmp_path / "evil.skops"


def test_a_foreign_type_is_refused_and_nothing_runs(tmp_path):
    TRACES.clear()
    path = _smuggle(tmp_path, Smuggled())
    assert TRACES == ["init"]
    TRACES.clear()
    with pytest.raises(TypeError, match=r"holds the type test_persistence\.Smuggled.*"
                                        r"Nothing was loaded"):
        load_model(path)
    assert TRACES == []
    # The same file, trusted by hand, does run the smuggled code.
    skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    assert TRACES == ["setstate"]


def test_types_skops_trusts_by_default_are_refused_too(tmp_path):
    """Only this package's types: not every scikit-learn estimator skops would trust."""
    from sklearn.linear_model import LogisticRegression

    path = _smuggle(tmp_path, LogisticRegression())
    with pytest.raises(TypeError, match=r"holds the type sklearn\.linear_model\._logistic\."
                                        r"LogisticRegression"):
        load_model(path)


def rewrite_schema(path, edit):
    """Rewrite the skops schema of ``path`` with ``edit`` (a function of the schema)."""
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(files["schema.json"])
    edit(schema)
    files["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("loader, name", [
    ("NdArrayNode", "numpy.show_config"),   # an array node calls the type it names
    ("RandomStateNode", "numpy.show_config"),   # a random state node calls its class
    ("FunctionNode", "numpy.ndarray"),
    ("ObjectNode", "numpy.ndarray"),
])
def test_numpy_names_are_trusted_only_as_the_types_we_write(head_data, tmp_path, loader,
                                                             name):
    """A NumPy function in place of an array's type is refused, not called."""
    head = TaskResHead(max_iter=1, device="cpu").fit(*head_data)
    save_model(head, tmp_path / "head.skops")

    def edit(schema):
        node = schema["content"]["content"]["residual_"]
        node["__loader__"] = loader
        node["__module__"], node["__class__"] = name.rsplit(".", 1)

    rewrite_schema(tmp_path / "head.skops", edit)
    with pytest.raises(TypeError, match=rf"holds the type {re.escape(name)} \(skops loader "
                                        rf"{loader}\)"):
        load_model(tmp_path / "head.skops")


def test_a_file_of_another_object_is_refused(tmp_path):
    skops.io.dump({"a": 1}, tmp_path / "dict.skops")
    with pytest.raises(TypeError, match="expected a file holding a TaskResClassifier or "
                                        "TaskResHead; got .* holding a builtins.dict"):
        load_model(tmp_path / "dict.skops")


def test_files_that_are_not_skops_are_refused(tmp_path):
    (tmp_path / "text.skops").write_text("hello")
    with pytest.raises(ValueError, match="expected a model file .* not a zip archive"):
        load_model(tmp_path / "text.skops")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="zip archive without a skops schema"):
        load_model(tmp_path / "other.zip")


def test_a_head_saved_by_release_0_1_loads_with_a_deprecation_warning():
    expected = np.load(DATA / "expected-0.1.npz")
    with pytest.warns(FutureWarning, match=r"format of sklearn-taskres 0\.1.*deprecated.*"
                                           r"save_model\(load_model\(.*head-0\.1\.skops"):
        head = load_model(DATA / "head-0.1.npz")
    assert isinstance(head, TaskResHead) and head.classes_.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(head.residual_, expected["head_residual"])
    # Same arrays; the softmax may round differently with another NumPy or SciPy.
    np.testing.assert_allclose(head.predict_proba(expected["X"]), expected["head_proba"],
                               rtol=1e-12, atol=1e-15)


@pytest.mark.auto_precision
def test_a_classifier_saved_by_release_0_1_loads_and_converts(tiny_model, tmp_path):
    expected = np.load(DATA / "expected-0.1.npz")
    with pytest.warns(FutureWarning, match="deprecated"):
        clf = load_model(DATA / "classifier-0.1.npz")
    assert clf.get_params()["classnames"] == {"r": "red", 2: "green", 3.5: "blue"}
    assert clf.classes_.tolist() == ["r", 2, 3.5] and clf.templates == ["a {}.", "the {}."]
    np.testing.assert_array_equal(clf.base_weights_, expected["classifier_base"])
    np.testing.assert_array_equal(clf.residual_, expected["classifier_residual"])
    images, _ = make_dataset(n_per_class=1, n_classes=3, seed=601)
    save_model(clf, tmp_path / "converted.skops")
    converted = load_model(tmp_path / "converted.skops")
    np.testing.assert_array_equal(converted.predict_proba(images), clf.predict_proba(images))


def test_save_model_needs_a_fitted_taskres_estimator(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="expected a TaskResClassifier or TaskResHead"):
        save_model(LogisticRegression(), tmp_path / "x.skops")
    with pytest.raises(NotFittedError):
        save_model(TaskResHead(), tmp_path / "x.skops")


def test_persistence_imports_the_estimators_at_module_level():
    """No import inside a function of the persistence module (no cycle to dodge)."""
    tree = ast.parse(inspect.getsource(_persistence))
    nested = [node.lineno for function in ast.walk(tree)
              if isinstance(function, ast.FunctionDef)
              for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert nested == []
    assert _persistence.TaskResClassifier is TaskResClassifier
