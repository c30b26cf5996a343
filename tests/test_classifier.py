import json
import os
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import open_clip
import pytest
import torch
from helpers import make_dataset, make_images
from PIL import Image
from sklearn.base import clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from sklearn_taskres import TaskResClassifier, save_model
from sklearn_taskres._clip import encoders_loaded, load_encoder

NAMES = ["red", "green", "blue"]


@pytest.fixture
def make_clf(tiny_model):
    def make(classnames=NAMES, **params):
        params = {"model": tiny_model, "pretrained": None, "max_iter": 30,
                  "learning_rate": 1e-2, "device": "cpu", "random_state": 0, **params}
        return TaskResClassifier(classnames, **params)

    return make


@pytest.fixture
def data():
    images, y = make_dataset(n_per_class=6, n_classes=3, seed=0)
    return images, y


def test_is_a_classifier(make_clf):
    assert is_classifier(make_clf())


@pytest.mark.auto_precision
def test_fit_predict_score(make_clf, data):
    images, y = data
    clf = make_clf().fit(images, y)
    assert clf.predict(images).shape == (len(images),)
    proba = clf.predict_proba(images)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    assert clf.decision_function(images).shape == (len(images), 3)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(images)), proba, rtol=1e-5)
    assert 0 <= clf.score(images, y) <= 1
    assert clf.base_weights_.shape == clf.residual_.shape == (3, 32)
    assert clf.logit_scale_ == pytest.approx(1 / 0.07, rel=1e-5)
    assert clf.n_iter_ == 30 and len(clf.loss_curve_) == 30


@pytest.mark.auto_precision
def test_training_fits_the_training_images(make_clf, data):
    """On separable data the residual lifts training accuracy above zero-shot."""
    images, y = data
    zero_shot = make_clf(alpha=0.0).fit(images, y).score(images, y)
    tuned = make_clf(alpha=1.0, max_iter=100, learning_rate=0.1).fit(images, y)
    assert tuned.loss_curve_[-1] < tuned.loss_curve_[0]
    assert tuned.score(images, y) == 1.0 > zero_shot


def test_alpha_zero_is_zero_shot_clip(make_clf, data, tiny_model, tiny_checkpoint):
    """alpha=0 predicts exactly what open_clip's own zero-shot computation predicts."""
    images, y = data
    templates = ["a photo of a {}.", "a {} thing."]
    # fp32 as open_clip's own: "auto" would be bf16 on a CPU with bf16 units.
    clf = make_clf(alpha=0.0, pretrained=str(tiny_checkpoint), templates=templates,
                   precision="fp32")
    clf.fit(images, y)

    model, _, preprocess = open_clip.create_model_and_transforms(
        tiny_model, pretrained=str(tiny_checkpoint))
    tokenizer = open_clip.get_tokenizer(tiny_model)
    model.eval()
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.fromarray(image)) for image in images])
        image_features = model.encode_image(pixels)
        text = torch.stack([model.encode_text(tokenizer([t.format(name) for t in templates]))
                            .mean(0) for name in NAMES])
        np.testing.assert_allclose(clf.base_weights_, text.numpy(), rtol=1e-5, atol=1e-6)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text = text / text.norm(dim=-1, keepdim=True)
        logits = model.logit_scale.exp() * image_features @ text.T
    np.testing.assert_array_equal(clf.predict(images), logits.argmax(1).numpy())
    np.testing.assert_allclose(clf.decision_function(images), logits.numpy(), rtol=1e-4,
                               atol=1e-4)


@pytest.mark.auto_precision
def test_grid_search_encodes_each_image_once(make_clf, encoded_rows):
    """GridSearchCV over alpha encodes every distinct image once, test folds included."""
    images, y = make_dataset(n_per_class=6, n_classes=3, seed=101)
    loaded = encoders_loaded()
    search = GridSearchCV(make_clf(), {"alpha": [0.25, 0.5, 1.0]}, cv=3)
    search.fit(images, y)
    assert encoded_rows["rows"] == len(images)
    assert encoders_loaded() == loaded  # clones share the process-wide model
    assert search.best_params_["alpha"] in (0.25, 0.5, 1.0)
    search.predict(images)
    assert encoded_rows["rows"] == len(images)


@pytest.mark.auto_precision
def test_identical_images_are_encoded_once(make_clf, encoded_rows):
    images = make_images(3, seed=102)
    make_clf().fit(images + [image.copy() for image in images], [0, 1, 2] * 2)
    assert encoded_rows["rows"] == 3


@pytest.mark.auto_precision
def test_in_a_pipeline(make_clf, data):
    """A preprocessing step in front of the classifier works as in any Pipeline."""
    images, y = data
    to_pil = FunctionTransformer(lambda X: [Image.fromarray(x) for x in X])
    pipe = make_pipeline(to_pil, make_clf()).fit(images, y)
    direct = make_clf().fit(images, y)
    np.testing.assert_array_equal(pipe.predict(images), direct.predict(images))
    assert pipe.score(images, y) == direct.score(images, y)


@pytest.mark.auto_precision
def test_clone_get_params_set_params(make_clf, data):
    clf = make_clf(alpha=0.3).fit(*data)
    params = clf.get_params()
    assert params["alpha"] == 0.3 and params["classnames"] == NAMES
    fresh = clone(clf)
    assert not hasattr(fresh, "residual_")
    assert fresh.get_params()["alpha"] == 0.3
    assert fresh.set_params(alpha=0.9) is fresh and fresh.alpha == 0.9
    assert "alpha=0.3" in repr(clf)


@pytest.mark.auto_precision
def test_joblib_round_trip_predicts_identically(make_clf, data, tmp_path):
    images, y = data
    clf = make_clf().fit(images, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    loaded = joblib.load(tmp_path / "clf.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    np.testing.assert_array_equal(loaded.residual_, clf.residual_)


@pytest.mark.auto_precision
def test_pickle_holds_no_torch_objects(make_clf, data):
    """Fitted state is NumPy: no module, tensor or CUDA storage reaches the pickle."""
    payload = pickle.dumps(make_clf().fit(*data))
    assert b"torch" not in payload
    assert len(payload) < 20_000


@pytest.mark.auto_precision
def test_a_fresh_process_loads_and_predicts_without_registering_the_model(
    make_clf, data, tiny_model, tmp_path
):
    """joblib, save_model and the CLI find a custom encoder where it was never registered."""
    images, y = data
    clf = make_clf().fit(images, y)
    joblib.dump(clf, tmp_path / "clf.joblib")
    save_model(clf, tmp_path / "clf.skops")
    np.save(tmp_path / "images.npy", np.stack(images))
    np.save(tmp_path / "expected.npy", clf.predict_proba(images))
    Image.fromarray(images[0]).save(tmp_path / "first.png")
    script = textwrap.dedent(f"""
        import contextlib, io, json, os
        os.environ["HF_HUB_OFFLINE"] = "1"
        import joblib, numpy as np, open_clip
        from sklearn_taskres import load_model
        from sklearn_taskres.cli import main
        assert {tiny_model!r} not in open_clip.list_models()
        expected = np.load({str(tmp_path / "expected.npy")!r})
        images = np.load({str(tmp_path / "images.npy")!r})
        for clf in (joblib.load({str(tmp_path / "clf.joblib")!r}),
                    load_model({str(tmp_path / "clf.skops")!r})):
            np.testing.assert_allclose(clf.predict_proba(images), expected, rtol=1e-5, atol=1e-7)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["predict", {str(tmp_path / "clf.joblib")!r},
                           {str(tmp_path / "first.png")!r}, "--format", "json"])
        assert status == 0
        print(json.dumps({{"cli": json.loads(out.getvalue())[0]["label"]}}))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    expected_label = clf.predict(images[:1])[0]
    assert json.loads(result.stdout.splitlines()[-1]) == {"cli": expected_label.item()}


@pytest.mark.auto_precision
def test_vit_b_32_pickle_is_well_under_a_megabyte(data):
    """For ViT-B-32 and 10 classes the pickle holds only the arrays (~40 kB)."""
    names = [f"class {i}" for i in range(10)]
    images = make_images(10, seed=103, size=64)
    clf = TaskResClassifier(names, model="ViT-B-32", pretrained=None, max_iter=2,
                            device="cpu", random_state=0).fit(images, list(range(10)))
    size = len(pickle.dumps(clf))
    assert clf.base_weights_.shape == (10, 512)
    assert size < 100_000


@pytest.mark.auto_precision
def test_paths_and_pil_images_give_the_same_predictions(make_clf, data, tmp_path):
    images, y = data
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    pil = [Image.fromarray(image) for image in images]
    by_path = make_clf().fit(paths, y)
    by_pil = make_clf().fit(pil, y)
    np.testing.assert_allclose(by_path.residual_, by_pil.residual_, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(by_path.predict_proba([str(p) for p in paths]),
                                  by_pil.predict_proba(pil))


@pytest.mark.auto_precision
def test_integer_and_name_labels_train_the_same_model(make_clf, data):
    """y may hold names or indices; predictions come back in the same kind."""
    images, y = data
    by_index = make_clf().fit(images, y)
    by_name = make_clf().fit(images, np.array(NAMES)[y])
    np.testing.assert_array_equal(by_index.residual_, by_name.residual_)
    np.testing.assert_array_equal(by_index.classes_, [0, 1, 2])
    np.testing.assert_array_equal(by_name.classes_, NAMES)
    np.testing.assert_array_equal(np.array(NAMES)[by_index.predict(images)],
                                  by_name.predict(images))
    assert by_name.predict(images).dtype.kind == "U"


@pytest.mark.auto_precision
def test_mapping_classnames_use_keys_as_labels(make_clf, data):
    images, y = data
    mapping = {10: "red", 20: "green", 30: "blue"}
    clf = make_clf(mapping).fit(images, np.array([10, 20, 30])[y])
    np.testing.assert_array_equal(clf.classes_, [10, 20, 30])
    assert set(clf.predict(images)) <= {10, 20, 30}
    same = make_clf().fit(images, y)
    np.testing.assert_array_equal(clf.residual_, same.residual_)


@pytest.mark.auto_precision
def test_class_without_training_images_is_still_predicted(make_clf, data):
    """classes_ is the full label space: a class with no training image is predicted zero-shot."""
    images, y = data
    # The class that zero-shot CLIP predicts most often gets no training images.
    zero_shot = make_clf(alpha=0.0).fit(images, y).predict(images)
    unseen = np.bincount(zero_shot, minlength=3).argmax()
    seen = y != unseen
    train_images = [image for image, keep in zip(images, seen, strict=True) if keep]
    clf = make_clf(alpha=0.0).fit(train_images, y[seen])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert clf.predict_proba(images).shape == (len(images), 3)
    assert unseen in clf.predict(images)
    tuned = make_clf(alpha=1.0, max_iter=60).fit(train_images, y[seen])
    assert np.abs(tuned.residual_[unseen]).max() > 0  # the negatives still moved its row


@pytest.mark.auto_precision
def test_model_fitted_for_cuda_predicts_on_a_cpu_only_machine(make_clf, data, monkeypatch):
    """device='cuda' falls back to the CPU at predict time, with a warning."""
    images, y = data
    clf = make_clf().fit(images, y)
    expected = clf.predict_proba(images)
    clf.set_params(device="cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="CUDA is not available on this machine; using the CPU"):
        np.testing.assert_array_equal(clf.predict_proba(images), expected)
    with pytest.raises(ValueError, match="CUDA is not available"):
        clf.fit(images, y)


@pytest.mark.parametrize("labels, match", [
    (["red", "green", "purple"], r"unknown label.*'purple'"),
    ([0, 1, 7], r"unknown label.*7"),
    ([0, 1, -1], r"unknown label.*-1"),
])
def test_label_outside_the_label_space_is_named(make_clf, labels, match, encoded_rows):
    images = make_images(3, seed=104)
    with pytest.raises(ValueError, match=match):
        make_clf().fit(images, labels)
    assert encoded_rows["rows"] == 0  # rejected before any encoding


def test_float_labels_are_rejected(make_clf):
    with pytest.raises(ValueError, match="expected y to hold class names or integer indices"):
        make_clf().fit(make_images(2, seed=105), [0.5, 1.5])


@pytest.mark.parametrize("classnames, match", [
    ("red", "'classnames' parameter of TaskResClassifier must be"),
    (["red"], "expected at least 2 classes"),
    (["red", "red", "blue"], r"duplicates \['red'\]"),
    (["red", "  "], r"classnames\[1\]: expected a non-empty string"),
    (["red", 3], r"classnames\[1\]: expected a non-empty string; got 3"),
    ({"a": "red", "b": ""}, r"classnames\['b'\]: expected a non-empty string"),
])
def test_bad_classnames_are_explained(make_clf, classnames, match):
    with pytest.raises(ValueError, match=match):
        make_clf(classnames).fit(make_images(2, seed=106), [0, 1])


@pytest.mark.parametrize("templates, match", [
    (["a photo."], r"templates\[0\]: expected a string with exactly one '\{\}'"),
    (["{} and {}"], r"templates\[0\]"),
    (["a {}.", 5], r"templates\[1\]"),
    ([], "expected at least one prompt template"),
])
def test_bad_templates_are_explained(make_clf, templates, match):
    with pytest.raises(ValueError, match=match):
        make_clf(templates=templates).fit(make_images(2, seed=107), [0, 1])


def test_len_mismatch(make_clf):
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        make_clf().fit(make_images(3, seed=108), [0, 1])


def test_predict_before_fit(make_clf):
    with pytest.raises(NotFittedError):
        make_clf().predict(make_images(1, seed=109))


@pytest.mark.auto_precision
def test_failed_fit_keeps_the_previous_model(make_clf, data):
    images, y = data
    clf = make_clf().fit(images, y)
    residual = clf.residual_.copy()
    with pytest.raises(ValueError):
        clf.fit(images, np.full(len(y), 9))
    np.testing.assert_array_equal(clf.residual_, residual)


@pytest.mark.auto_precision
def test_changing_the_encoder_after_fit_is_caught(make_clf, data):
    clf = make_clf().fit(*data)
    clf.set_params(model="RN50", pretrained=None)
    with pytest.raises(ValueError, match="expected model='RN50', pretrained=None to give "
                                         "32-dimensional features as at fit; got 1024"):
        clf.predict(make_images(1, seed=110))


@pytest.mark.auto_precision
@pytest.mark.parametrize("by_name", [False, True])
def test_restrict_classes_keeps_labels_and_scores(make_clf, data, by_name):
    """A restricted classifier predicts the kept labels with unchanged scores, and refits."""
    images, y = data
    labels = np.array(NAMES)[y] if by_name else y
    clf = make_clf().fit(images, labels)
    kept = clf.classes_[[2, 0]]
    small = clf.restrict_classes(kept)
    np.testing.assert_array_equal(small.classes_, kept)
    full = clf.decision_function(images)
    # Two classes left: one column, the score of classes_[1] against classes_[0].
    np.testing.assert_allclose(small.decision_function(images), full[:, 0] - full[:, 2],
                               rtol=1e-6, atol=1e-6)
    refit = clone(small).fit(images[:6] + images[12:], labels[np.r_[0:6, 12:18]])
    np.testing.assert_array_equal(refit.classes_, kept)


@pytest.mark.auto_precision
def test_built_in_template_set_gives_the_raw_mean_base(make_clf, data, tiny_model):
    """templates='imagenet' averages the 8 official prompts' raw text embeddings."""
    from sklearn_taskres._templates import TEMPLATE_SETS

    images, y = data
    clf = make_clf(templates="ImageNet", max_iter=1).fit(images, y)
    templates = TEMPLATE_SETS["imagenet"]
    assert len(templates) == 8 and "itap of a {}." in templates
    model = load_encoder(tiny_model, None, torch.device("cpu")).model
    tokenizer = open_clip.get_tokenizer(tiny_model)
    with torch.no_grad():
        expected = np.stack([
            model.encode_text(tokenizer([t.format(n) for t in templates])).mean(0).numpy()
            for n in NAMES
        ])
    np.testing.assert_allclose(clf.base_weights_, expected, rtol=1e-5, atol=1e-6)


def test_unknown_template_set_lists_the_known_ones(make_clf):
    with pytest.raises(ValueError, match=r"name of a built-in set \(caltech101, dtd, eurosat"):
        make_clf(templates="imagenet-9000").fit(make_images(2, seed=111), [0, 1])


def test_classifier_residual_equals_the_reference_loop_on_open_clip_features(
        make_clf, data, tiny_model, tiny_checkpoint):
    """End to end, with N < batch_size: the residual of the official loop within 1e-4."""
    from reference import reference_residual

    images, y = data
    clf = make_clf(pretrained=str(tiny_checkpoint), templates="dtd", max_iter=40,
                   learning_rate=2e-3, precision="fp32").fit(images, y)
    model, _, preprocess = open_clip.create_model_and_transforms(
        tiny_model, pretrained=str(tiny_checkpoint))
    tokenizer = open_clip.get_tokenizer(tiny_model)
    model.eval()
    with torch.no_grad():
        features = model.encode_image(
            torch.stack([preprocess(Image.fromarray(image)) for image in images])).numpy()
        base = model.encode_text(tokenizer([f"{name} texture." for name in NAMES])).numpy()
        scale = model.logit_scale.exp().item()
    expected = reference_residual(features, y, base, 0.5, scale, 2e-3, 40, 5e-4)
    np.testing.assert_allclose(clf.residual_, expected, rtol=1e-4, atol=1e-6)


def test_sample_and_class_weights_reach_the_head(make_clf, data):
    """The classifier weighs images as its head does: class weight x sample weight."""
    from sklearn_taskres import TaskResHead
    from sklearn_taskres._clip import load_encoder
    from sklearn_taskres._features import image_features

    images, y = data
    sample_weight = np.random.RandomState(0).uniform(0, 2, len(y))
    clf = make_clf(class_weight={2: 4.0}, precision="fp32").fit(
        images, y, sample_weight=sample_weight)
    features = image_features(load_encoder(clf.model, None, torch.device("cpu"), "fp32"),
                              images)
    head = TaskResHead(clf.base_weights_, logit_scale=clf.logit_scale_, max_iter=30,
                       learning_rate=1e-2, device="cpu", random_state=0)
    expected = head.fit(features, y, sample_weight=np.array([1, 1, 4.0])[y] * sample_weight)
    np.testing.assert_allclose(clf.residual_, expected.residual_, rtol=1e-5, atol=1e-7)
    assert clf.head_.class_weight == {2: 4.0}
    assert not np.allclose(clf.residual_, make_clf(precision="fp32").fit(images, y).residual_)


@pytest.mark.auto_precision
@pytest.mark.parametrize(
    "params, sample_weight, match",
    [({}, -np.ones(18), r"sample_weight\[0\]: expected a non-negative weight"),
     ({}, np.ones(17), r"expected sample_weight of shape \(18,\)"),
     ({}, np.zeros(18), "expected a positive sample weight for at least one sample"),
     ({"class_weight": {"purple": 2.0}}, None, r"got unknown label\(s\) 'purple'")],
)
def test_bad_weights_fail_before_encoding_and_keep_the_fit(make_clf, data, encoded_rows,
                                                           params, sample_weight, match):
    """A bad weight fails before any image is encoded; a fitted classifier keeps its fit."""
    images, y = data
    labels = np.array(NAMES)[y]
    clf = make_clf().fit(images, labels)
    fitted = {name: value for name, value in vars(clf).items() if name.endswith("_")}
    encoded_rows["rows"] = 0
    with pytest.raises(ValueError, match=match):
        clf.set_params(**params).fit(make_images(18, seed=120), labels,
                                     sample_weight=sample_weight)
    assert encoded_rows["rows"] == 0
    after = {name: value for name, value in vars(clf).items() if name.endswith("_")}
    assert after.keys() == fitted.keys()
    assert all(after[name] is value for name, value in fitted.items())  # not even replaced


@pytest.mark.auto_precision
def test_sample_weight_is_routed_through_a_pipeline(make_clf, data):
    """With metadata routing, a Pipeline passes sample_weight on to the classifier."""
    from sklearn import config_context

    images, y = data
    weights = np.where(y == 1, 3.0, 1.0)
    with config_context(enable_metadata_routing=True):
        clf = make_clf().set_fit_request(sample_weight=True)
        pipeline = make_pipeline(FunctionTransformer(lambda X: X), clf)
        pipeline.fit(images, y, sample_weight=weights)
    expected = make_clf().fit(images, y, sample_weight=weights)
    np.testing.assert_array_equal(pipeline[-1].residual_, expected.residual_)
    assert not np.allclose(expected.residual_, make_clf().fit(images, y).residual_)


@pytest.mark.auto_precision
def test_enhanced_base_tuning_uses_the_weights(make_clf, data):
    """With base="enhanced", the weights also weigh the projection tuning."""
    images, y = data
    weights = np.where(y == 0, 5.0, 0.5)
    params = dict(base="enhanced", enhance_max_iter=5, max_iter=2)
    plain = make_clf(**params).fit(images, y)
    weighted = make_clf(**params).fit(images, y, sample_weight=weights)
    balanced = make_clf(class_weight={0: 5.0, 1: 0.5, 2: 0.5}, **params).fit(images, y)
    assert np.abs(weighted.base_weights_ - plain.base_weights_).max() > 1e-4
    np.testing.assert_allclose(weighted.base_weights_, balanced.base_weights_, rtol=1e-6)


@pytest.mark.auto_precision
@pytest.mark.parametrize("labels", ["names", "indices", "mapping"])
def test_extend_classes_adds_text_base_rows(make_clf, data, labels):
    """New rows are what a fit with the new names gives; old rows and self are unchanged."""
    from sklearn_taskres import clear_feature_cache

    images, y = data
    if labels == "mapping":
        clf = make_clf({10: "red", 20: "green", 30: "blue"}).fit(images, np.array([10, 20, 30])[y])
        new, new_labels = {40: "yellow", 50: "cyan"}, [40, 50]
        classnames = {10: "red", 20: "green", 30: "blue", 40: "yellow", 50: "cyan"}
    else:
        clf = make_clf().fit(images, np.array(NAMES)[y] if labels == "names" else y)
        new = ["yellow", "cyan"]
        new_labels = new if labels == "names" else [3, 4]
        classnames = [*NAMES, *new]
    residual, classes = clf.residual_.copy(), clf.classes_.copy()
    extended = clf.extend_classes(new)
    assert extended.classes_.tolist() == [*classes.tolist(), *new_labels]
    assert extended.classnames == classnames and clf.classnames != classnames
    np.testing.assert_array_equal(clf.residual_, residual)
    np.testing.assert_array_equal(clf.classes_, classes)
    np.testing.assert_array_equal(extended.residual_[:3], residual)
    np.testing.assert_array_equal(extended.residual_[3:], 0)
    np.testing.assert_array_equal(extended.base_weights_[:3], clf.base_weights_)
    clear_feature_cache()  # the rows of a fit with all names, encoded afresh
    full = make_clf(classnames, max_iter=1).fit(images[:2], np.array(new_labels)[[0, 1]])
    np.testing.assert_allclose(extended.base_weights_[3:], full.base_weights_[3:], rtol=1e-5,
                               atol=1e-6)
    proba = extended.predict_proba(images)
    assert proba.shape == (len(images), 5)
    back = extended.restrict_classes(classes)
    np.testing.assert_array_equal(back.predict_proba(images), clf.predict_proba(images))
    np.testing.assert_array_equal(back.predict(images), clf.predict(images))


@pytest.mark.auto_precision
@pytest.mark.parametrize(
    "classnames, match",
    [(["cyan", "green"], "expected names of new classes; got 'green', already in classnames"),
     (["cyan", "cyan"], r"expected distinct class names; got duplicates \['cyan'\]"),
     ([], "expected at least one new class; got none"),
     (["cyan", ""], r"classnames\[1\]: expected a non-empty string; got ''"),
     ("cyan", "expected a sequence of names; got the string 'cyan'"),
     ({5: "cyan"}, r"expected a sequence of names, as this classifier's classnames; got a "
                   "mapping")],
)
def test_extend_classes_rejects_present_or_bad_names(make_clf, data, classnames, match):
    clf = make_clf().fit(*data)
    with pytest.raises(ValueError, match=match):
        clf.extend_classes(classnames)


@pytest.mark.auto_precision
def test_extend_classes_names_a_present_label(make_clf, data):
    images, y = data
    clf = make_clf({0: "red", 1: "green", 2: "blue"}).fit(images, y)
    with pytest.raises(ValueError, match="expected labels of new classes; got 2, already in "
                                         "classes_"):
        clf.extend_classes({2: "cyan"})
    with pytest.raises(ValueError, match=r"expected a mapping \{label: name\}, as this "
                                         r"classifier's classnames; got \['cyan'\]"):
        clf.extend_classes(["cyan"])


@pytest.mark.auto_precision
def test_extend_classes_refuses_an_enhanced_base(make_clf, data):
    clf = make_clf(base="enhanced", enhance_max_iter=1, max_iter=1).fit(*data)
    with pytest.raises(ValueError, match="expected a classifier fitted with base='text'; got "
                                         "base='enhanced'"):
        clf.extend_classes(["cyan"])


@pytest.fixture
def image_files(data, tmp_path):
    """The images of ``data`` as PNG files, and a file named like a column."""
    images, _ = data
    paths = []
    for index, image in enumerate(images):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    return paths


def test_dataframes_are_their_column_in_fit_predict_and_score(make_clf, data, image_files):
    """fit, predict, predict_proba and score take a one-column DataFrame as its column."""
    pd = pytest.importorskip("pandas")
    _, y = data
    # A column named like an image file: the name must never be taken for an image.
    frame = pd.DataFrame({image_files[0]: image_files})
    by_list = make_clf(precision="fp32").fit(image_files, y)
    by_frame = make_clf(precision="fp32").fit(frame, pd.Series(y))
    np.testing.assert_array_equal(by_frame.residual_, by_list.residual_)
    np.testing.assert_array_equal(by_frame.predict(frame), by_list.predict(image_files))
    np.testing.assert_array_equal(by_frame.predict_proba(frame),
                                  by_list.predict_proba(image_files))
    assert by_frame.score(frame, y) == by_list.score(image_files, y)
    with pytest.raises(ValueError, match=r"got 2 columns \['path', 'label'\]"):
        by_frame.predict(pd.DataFrame({"path": image_files, "label": y}))


def test_image_column_names_the_images_of_a_wider_dataframe(make_clf, data, image_files):
    pd = pytest.importorskip("pandas")
    import base64

    _, y = data
    encoded = [base64.b64encode(open(path, "rb").read()).decode() for path in image_files]
    frame = pd.DataFrame({"label": y, "image": encoded})
    clf = make_clf(precision="fp32", image_column="image").fit(frame, frame["label"])
    assert clf.get_params()["image_column"] == "image"
    plain = make_clf(precision="fp32").fit(image_files, y)
    np.testing.assert_array_equal(clf.predict(frame), plain.predict(image_files))
    np.testing.assert_array_equal(clf.predict(image_files), plain.predict(image_files))
    with pytest.raises(ValueError, match=r"the column of images 'image' \(image_column\); got "
                                         r"the columns \['path'\]"):
        clf.predict(pd.DataFrame({"path": image_files}))
    with pytest.raises(FileNotFoundError, match=r"X\[1\]: no such image file: 'nothing.png'"):
        clf.predict(pd.DataFrame({"image": [encoded[0], "nothing.png"]}))
