"""CLIPImageEncoder: the classifier's image embeddings as a scikit-learn transformer."""

import io
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from helpers import make_dataset, make_images
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils import estimator_checks
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_taskres import (
    CLIPImageEncoder,
    TaskResClassifier,
    TaskResHead,
    clear_feature_cache,
    config_context,
)

# The checks of scikit-learn's suite that do not feed the estimator 2-d
# arrays: the others cannot apply to a transformer of images.
CHECKS_WITHOUT_ARRAYS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
]


@pytest.fixture
def make_encoder(tiny_model):
    def make(**params):
        return CLIPImageEncoder(**{"model": tiny_model, "pretrained": None, "device": "cpu",
                                   **params})

    return make


@pytest.mark.parametrize("check_name", CHECKS_WITHOUT_ARRAYS)
def test_sklearn_checks_that_apply(make_encoder, check_name):
    """The estimator checks that apply to images pass (those this scikit-learn has)."""
    check = getattr(estimator_checks, check_name, None)
    if check is None:
        pytest.skip(f"{check_name} is not in this scikit-learn")
    check("CLIPImageEncoder", make_encoder())


def test_defaults_are_the_classifiers():
    """model, pretrained, device and precision default as in TaskResClassifier."""
    classifier = TaskResClassifier(["a", "b"]).get_params()
    encoder = CLIPImageEncoder().get_params()
    for name in ("model", "pretrained", "device", "precision", "cache_dir", "verbose"):
        assert encoder[name] == classifier[name], name


@pytest.mark.auto_precision
def test_transform_gives_the_embeddings_the_classifier_trains_on(make_encoder, tiny_model):
    """head_.predict(encoder.transform(X)) is clf.predict(X), and no image is encoded twice."""
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=2)
    clf = TaskResClassifier(["red", "green", "blue"], model=tiny_model, pretrained=None,
                            max_iter=5, device="cpu", random_state=0).fit(images, y)
    embeddings = make_encoder().transform(images)
    assert embeddings.dtype == np.float32 and embeddings.shape == (12, 32)
    np.testing.assert_array_equal(embeddings, clf._features(images))
    np.testing.assert_array_equal(clf.head_.predict(embeddings), clf.predict(images))


@pytest.mark.auto_precision
def test_a_second_transform_encodes_nothing(make_encoder, encoded_rows):
    """The feature cache serves a second transform, by a clone too."""
    images = make_images(5, seed=31)
    encoder = make_encoder()
    first = encoder.transform(images)
    assert encoded_rows["rows"] == 5
    np.testing.assert_array_equal(clone(encoder).transform(images[::-1]), first[::-1])
    assert encoded_rows["rows"] == 5


@pytest.mark.auto_precision
def test_cache_dir_serves_a_later_process(make_encoder, encoded_rows, tmp_path):
    """With cache_dir, an empty memory cache still encodes nothing the second time."""
    images = make_images(4, seed=32)
    first = make_encoder(cache_dir=tmp_path).transform(images)
    clear_feature_cache()
    encoded_rows["rows"] = 0
    np.testing.assert_array_equal(make_encoder(cache_dir=tmp_path).transform(images), first)
    assert encoded_rows["rows"] == 0


@pytest.mark.auto_precision
def test_stateless_fit_and_feature_names(make_encoder):
    """transform needs no fit; fit returns self and learns nothing; one name per dimension."""
    encoder = make_encoder()
    images = make_images(2, seed=33)
    assert encoder.transform(images).shape == (2, 32)
    assert encoder.fit(images) is encoder and encoder.fit() is encoder
    assert not [name for name in vars(encoder) if name.endswith("_")]
    names = encoder.get_feature_names_out()
    assert names.tolist() == [f"clipimageencoder{i}" for i in range(32)]
    np.testing.assert_array_equal(encoder.fit_transform(images), encoder.transform(images))


@pytest.mark.auto_precision
def test_pandas_output_names_the_columns(make_encoder):
    """set_output(transform="pandas") gives a DataFrame with the feature names."""
    pytest.importorskip("pandas")
    frame = make_encoder().set_output(transform="pandas").transform(make_images(3, seed=34))
    assert frame.shape == (3, 32) and frame.columns[0] == "clipimageencoder0"


@pytest.mark.auto_precision
def test_linear_probe_pipeline_fits_searches_and_pickles(make_encoder):
    """make_pipeline(CLIPImageEncoder, LogisticRegression) is a linear probe on images."""
    images, y = make_dataset(n_per_class=6, n_classes=3, seed=3)
    probe = make_pipeline(make_encoder(), LogisticRegression(max_iter=500))
    search = GridSearchCV(probe, {"logisticregression__C": [0.1, 10.0]}, cv=2).fit(images, y)
    assert search.score(images, y) > 0.9  # mean colours are linearly separable
    loaded = pickle.loads(pickle.dumps(search.best_estimator_))
    np.testing.assert_array_equal(loaded.predict(images), search.predict(images))


@pytest.mark.auto_precision
def test_embeddings_feed_a_taskres_head(make_encoder, tiny_model):
    """The embeddings are what TaskResHead fits on, as TaskResClassifier does inside."""
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=4)
    names = ["red", "green", "blue"]
    clf = TaskResClassifier(names, model=tiny_model, pretrained=None, max_iter=5,
                            device="cpu", random_state=0).fit(images, y)
    head = TaskResHead(clf.base_weights_, logit_scale=clf.logit_scale_, max_iter=5,
                       device="cpu", random_state=0).fit(make_encoder().transform(images), y)
    np.testing.assert_allclose(head.residual_, clf.residual_, rtol=1e-5, atol=1e-7)


def test_bad_parameter_is_named(make_encoder):
    """An unknown precision is an InvalidParameterError that names it, at fit and transform."""
    encoder = make_encoder(precision="int8")
    with pytest.raises(InvalidParameterError, match="'precision' parameter"):
        encoder.fit()
    with pytest.raises(InvalidParameterError, match="'precision' parameter"):
        encoder.transform(make_images(1, seed=35))


@pytest.mark.auto_precision
def test_bad_image_is_named_by_index(make_encoder, tmp_path):
    """A missing file is an error naming its index and path."""
    images = [*make_images(1, seed=36), tmp_path / "missing.png"]
    with pytest.raises(FileNotFoundError, match=r"X\[1\]: no such image file.*missing.png"):
        make_encoder().transform(images)


@pytest.mark.auto_precision
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_encodes_on_the_cpu_with_a_warning(make_encoder):
    """device='cuda' on a CPU-only machine warns and encodes on the CPU, as predict does."""
    images = make_images(2, seed=37)
    with pytest.warns(UserWarning, match="CUDA is not available"):
        embeddings = make_encoder(device="cuda").transform(images)
    np.testing.assert_array_equal(embeddings, make_encoder().transform(images))


@pytest.mark.auto_precision
def test_a_pickle_carries_the_model_config_and_decoding_settings(tiny_model, tiny_checkpoint):
    """Unpickled in a fresh process, the encoder finds its custom model and decodes as here."""
    images = make_images(2, seed=38)
    encoder = CLIPImageEncoder(tiny_model, pretrained=str(tiny_checkpoint), device="cpu")
    with config_context(jpeg_draft=False):
        blob = pickle.dumps((encoder, images))
    expected = encoder.transform(images)
    script = textwrap.dedent("""
        import pickle, sys
        import numpy as np
        encoder, images = pickle.loads(sys.stdin.buffer.read())  # no register_tiny_clip here
        print(encoder._decoding())
        sys.stdout.flush()
        np.save(sys.stdout.buffer, encoder.transform(images))
    """)
    result = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr.decode()
    settings, _, array = result.stdout.partition(b"\n")
    assert settings.decode() == "{'jpeg_draft': False, 'exif_orientation': True}"
    np.testing.assert_allclose(np.load(io.BytesIO(array)), expected, rtol=1e-5, atol=1e-6)


def test_transform_takes_a_dataframe_column(make_encoder):
    """A one-column DataFrame is its column; image_column picks one of several."""
    pd = pytest.importorskip("pandas")
    images = make_images(3, seed=21)
    expected = make_encoder(precision="fp32").transform(images)
    np.testing.assert_array_equal(
        make_encoder(precision="fp32").transform(pd.DataFrame({"pixels": list(images)})),
        expected)
    frame = pd.DataFrame({"id": [1, 2, 3], "pixels": list(images)})
    np.testing.assert_array_equal(
        make_encoder(precision="fp32", image_column="pixels").transform(frame), expected)
    with pytest.raises(ValueError, match=r"got 2 columns \['id', 'pixels'\]"):
        make_encoder(precision="fp32").transform(frame)
