"""Images as the bytes of encoded files: decoded as the file, cached as the file."""

import io

import numpy as np
import pytest
import torch
from helpers import make_dataset
from PIL import Image

from sklearn_taskres import (
    CLIPImageEncoder,
    TaskResClassifier,
    clear_feature_cache,
    config_context,
    get_config,
    set_config,
)
from sklearn_taskres import _images as images_module
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._features import augmented_image_features, decoding_for, image_features
from sklearn_taskres._images import Decoding, image_sources

ORIENTATION = 0x0112
# How a camera stores the upright picture for an EXIF orientation (a viewer undoes it).
STORED = {1: None, 3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
          8: Image.Transpose.ROTATE_270}
NAMES = ["red", "green", "blue"]


@pytest.fixture(autouse=True)
def cold_cache():
    before = get_config()
    clear_feature_cache()
    yield
    set_config(**before)
    clear_feature_cache()


@pytest.fixture
def encoder(tiny_model):
    return load_encoder(tiny_model, None, torch.device("cpu"), "fp32")


def photo(pixels, path, orientation=1, size=(240, 160), **options):
    """Save ``pixels`` scaled to ``size`` as a phone does for ``orientation``; the file's bytes."""
    image = Image.fromarray(pixels).resize(size, Image.BICUBIC)
    if STORED.get(orientation) is not None:
        image = image.transpose(STORED[orientation])
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif, **{"quality": 90, **options})
    return path.read_bytes()


@pytest.fixture
def photos(tmp_path):
    """Four class-tinted JPEGs, large enough to draft for the tiny model, in four orientations."""
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=5)
    paths = []
    for index, (pixels, orientation) in enumerate(zip(images, [1, 6, 3, 8, 6, 1], strict=True)):
        paths.append(str(tmp_path / f"IMG_{index:04d}.jpg"))
        photo(pixels, tmp_path / f"IMG_{index:04d}.jpg", orientation)
    return paths, y


def read(paths):
    return [open(path, "rb").read() for path in paths]


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_bytes_decode_as_their_file_and_share_its_key(photos, encoder, wrap):
    """EXIF orientation and reduced-DCT decoding apply to bytes as to the file; same key."""
    paths, _ = photos
    from_files = image_sources(paths)
    from_bytes = image_sources([wrap(content) for content in read(paths)])
    settings = [Decoding(), Decoding(exif_orientation=True),
                decoding_for(encoder, {"jpeg_draft": True, "exif_orientation": True})]
    assert settings[-1].draft_size == 64  # the 240x160 photos decode at 1/2
    for decoding in settings:
        for file, content in zip(from_files, from_bytes, strict=True):
            assert content.kind == "bytes"
            assert content.key(decoding) == file.key(decoding)
            np.testing.assert_array_equal(np.asarray(content.load(decoding)),
                                          np.asarray(file.load(decoding)))
    sideways = from_bytes[1]  # orientation 6, stored 160 wide and 240 high
    assert sideways.header == ("JPEG", (160, 240), 6)
    assert sideways.load(Decoding(exif_orientation=True)).size == (240, 160)
    assert sideways.load(settings[-1]).size == (120, 80)


def test_one_encoding_serves_a_path_and_its_bytes(photos, encoder, encoded_rows):
    """Bytes after their path (or the other way round) hit the cache: no second encoding."""
    paths, _ = photos
    contents = read(paths)
    by_path = image_features(encoder, paths[:3])
    assert encoded_rows["rows"] == 3
    by_bytes = image_features(encoder, [bytearray(c) for c in contents])
    assert encoded_rows["rows"] == 3 + 3  # only the three the paths did not cover
    np.testing.assert_array_equal(by_bytes[:3], by_path)
    np.testing.assert_array_equal(image_features(encoder, paths), by_bytes)
    assert encoded_rows["rows"] == 6
    # Augmented views are keyed and seeded by content too: the same views.
    views = augmented_image_features(encoder, paths[:2], 2, seed=0)
    assert encoded_rows["rows"] == 6 + 4
    np.testing.assert_array_equal(augmented_image_features(encoder, contents[:2], 2, seed=0),
                                  views)
    assert encoded_rows["rows"] == 10


def test_the_feature_store_serves_bytes_encoded_as_files(photos, tiny_model, tmp_path,
                                                         encoded_rows):
    """Encoded from paths into cache_dir, a later process reading bytes encodes nothing."""
    paths, _ = photos
    encoder = CLIPImageEncoder(model=tiny_model, pretrained=None, device="cpu",
                               precision="fp32", cache_dir=str(tmp_path / "store"))
    expected = encoder.transform(paths)
    assert encoded_rows["rows"] == len(paths)
    clear_feature_cache()  # as a new process: only the store remains
    np.testing.assert_array_equal(encoder.transform(read(paths)), expected)
    assert encoded_rows["rows"] == len(paths)


def test_the_classifier_takes_bytes_everywhere_it_takes_images(photos, tiny_model, encoded_rows):
    """fit, predict*, decision_function and score on bytes give what they give on the files."""
    paths, y = photos
    contents = read(paths)
    params = {"model": tiny_model, "pretrained": None, "precision": "fp32", "device": "cpu",
              "max_iter": 10, "learning_rate": 1e-2, "random_state": 0, "augment_views": 1}
    on_files = TaskResClassifier(NAMES, **params).fit(paths, y)
    rows = encoded_rows["rows"]
    on_bytes = TaskResClassifier(NAMES, **params).fit(contents, y)
    assert encoded_rows["rows"] == rows  # every feature and view came from the cache
    np.testing.assert_array_equal(on_bytes.residual_, on_files.residual_)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        np.testing.assert_array_equal(getattr(on_bytes, method)(contents),
                                      getattr(on_files, method)(paths))
    assert on_bytes.score(contents, y) == on_files.score(paths, y)
    assert encoded_rows["rows"] == rows + len(paths)  # predict encodes once, unaugmented


@pytest.mark.auto_precision
def test_clip_image_encoder_takes_the_bytes_of_a_file(photos, tiny_model):
    """CLIPImageEncoder().fit_transform([open(photo, "rb").read()]) gives the file's embedding."""
    paths, _ = photos
    encoder = CLIPImageEncoder(model=tiny_model, pretrained=None, device="cpu")
    with open(paths[1], "rb") as file:
        features = encoder.fit_transform([file.read()])
    np.testing.assert_array_equal(features, encoder.transform(paths[1:2]))


def test_a_bmp_with_trailing_zero_bytes_keeps_them(tmp_path, encoder):
    """Bytes are taken whole: a NumPy fixed-width array, which strips zeros, is refused."""
    pixels = make_dataset(n_per_class=1, n_classes=1, seed=2)[0][0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="BMP")
    content = buffer.getvalue() + bytes(8)  # BMP readers ignore what follows the pixels
    (source,) = image_sources(np.array([content], dtype=object))
    np.testing.assert_array_equal(np.asarray(source.load()), pixels)
    with pytest.raises(TypeError, match=r"got a NumPy array of dtype \|S\d+, which drops the "
                                        "trailing zero bytes"):
        image_sources(np.array([content]))


def test_a_mutated_buffer_does_not_change_what_was_digested(photos):
    """A bytearray changed after validation still decodes to the image its key names."""
    paths, _ = photos
    buffer = bytearray(read(paths[:1])[0])
    (source,) = image_sources([buffer])
    (file,) = image_sources(paths[:1])
    buffer[:] = b"\x00" * len(buffer)
    np.testing.assert_array_equal(np.asarray(source.load()), np.asarray(file.load()))


@pytest.mark.auto_precision
def test_truncated_and_non_image_bytes_name_their_index(photos, tiny_model):
    """A ValueError naming X[i], its size and first bytes, from image_sources and predict."""
    paths, y = photos
    content = read(paths[:1])[0]
    bad = [content, content[:300], b"<html>Not Found</html>"]
    sources = image_sources(bad)
    with pytest.raises(ValueError, match=r"X\[1\]: cannot decode the image bytes \(300 bytes, "
                                         r"starting b'\\xff\\xd8\\xff.*'\): .*[Tt]runcated"):
        sources[1].load(Decoding())
    with pytest.raises(ValueError, match=r"X\[2\]: cannot decode the image bytes \(22 bytes, "
                                         r"starting b'<html>Not Fo'\): cannot identify"):
        sources[2].load(Decoding())
    clf = TaskResClassifier(NAMES, model=tiny_model, pretrained=None, max_iter=2, device="cpu")
    with pytest.raises(ValueError, match=r"X\[1\]: cannot decode the image bytes"):
        clf.fit(bad, y[:3])
    with pytest.raises(ValueError, match=r"X\[1\]: expected the bytes of an encoded image; got "
                                         "0 bytes"):
        image_sources([content, b""])


def test_bytes_as_x_itself_is_refused_and_a_flat_array_gets_a_hint(photos):
    content = read(photos[0][:1])[0]
    for single in (content, bytearray(content), memoryview(content)):
        with pytest.raises(TypeError, match=r"encoded image bytes or uint8 arrays\); got a "
                                            r"single \w+\. Wrap it in a list"):
            image_sources(single)
    with pytest.raises(ValueError, match=r"X\[0\]: .*shape \(\d+,\) \(for the bytes of an "
                                         r"encoded image file, pass array.tobytes\(\)\)"):
        image_sources([np.frombuffer(content, np.uint8)])
    with pytest.raises(TypeError, match=r"X\[0\]: expected a PIL image, a path, encoded image "
                                        "bytes or a uint8 array; got int"):
        image_sources([3])


def test_heic_bytes_decode_with_the_extra_and_name_it_without(tmp_path, monkeypatch):
    """HEIC bytes decode as the file; without pillow-heif the error says to install it."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    pixels = np.asarray(Image.fromarray(make_dataset(1, 1, seed=3)[0][0]).resize((96, 64)))
    path = tmp_path / "IMG_0001.HEIC"
    content = photo(pixels, path, size=(96, 64))
    (file,), (source,) = image_sources([str(path)]), image_sources([content])
    decoding = Decoding(exif_orientation=True, draft_size=64)
    assert source.header[0] == "HEIF" and source.key(decoding) == file.key(decoding)
    decoded = np.asarray(source.load(decoding))
    np.testing.assert_array_equal(decoded, np.asarray(file.load(decoding)))
    assert decoded.shape == pixels.shape
    assert np.abs(decoded.astype(np.int16) - pixels).mean() < 8

    monkeypatch.setattr(images_module, "register_heif", lambda: False)
    fake = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    with pytest.raises(ValueError, match=r"X\[0\]: cannot decode the image bytes .*\(HEIC/HEIF "
                                         r"files need pillow-heif: pip install "
                                         r"\"sklearn-taskres\[heif\]\"\)"):
        image_sources([fake])[0].load(Decoding())
    with pytest.raises(ValueError) as not_heif:
        image_sources([b"GIF89a" + bytes(30)])[0].load(Decoding())
    assert "pillow-heif" not in str(not_heif.value)


def test_the_settings_of_the_call_decide_for_bytes_too(photos, encoder, encoded_rows):
    """exif_orientation off: a sideways photo's bytes and file share the as-stored features."""
    paths, _ = photos
    contents = read(paths[1:2])
    upright = image_features(encoder, contents)
    with config_context(exif_orientation=False):
        as_stored = image_features(encoder, contents)
        np.testing.assert_array_equal(image_features(encoder, paths[1:2]), as_stored)
    assert encoded_rows["rows"] == 2
    assert not np.allclose(upright, as_stored, rtol=1e-3)
