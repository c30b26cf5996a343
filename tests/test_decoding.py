"""Decoding real photos: EXIF orientation, reduced-scale JPEG decoding, HEIC, AVIF and WebP."""

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from helpers import make_dataset
from PIL import Image, features
from sklearn.model_selection import GridSearchCV

from sklearn_taskres import TaskResClassifier, config_context, get_config, set_config
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._features import FEATURES, augmented_image_features, image_features
from sklearn_taskres._images import Decoding, image_sources, image_suffixes

ORIENTATION = 0x0112
# What a camera stores for each EXIF orientation, given the upright picture: the
# inverse of the transpose that a viewer (and ImageOps.exif_transpose) applies.
STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.fixture(autouse=True)
def default_config():
    before = get_config()
    FEATURES.clear()
    yield
    set_config(**before)
    FEATURES.clear()


@pytest.fixture
def encoder(tiny_model):
    return load_encoder(tiny_model, None, torch.device("cpu"))


def upright_picture(width=60, height=40):
    """An asymmetric picture: every flip or rotation of it is another array."""
    rng = np.random.RandomState(3)
    pixels = rng.randint(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[:10, :20] = (255, 0, 0)  # a red corner, top left
    return pixels


def smooth_picture(width, height):
    """A picture that lossy formats keep close (noise is what they drop)."""
    coarse = np.random.RandomState(4).randint(0, 256, (4, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))


def stored_as(upright, orientation):
    image = Image.fromarray(upright)
    return image if STORED[orientation] is None else image.transpose(STORED[orientation])


def save_with_orientation(image, path, orientation, **options):
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    image.save(path, exif=exif, **options)
    return str(path)


def cosine(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_to_files_and_pil_images(tmp_path, orientation):
    """All eight orientations come out upright, from a file and from a PIL image."""
    upright = upright_picture()
    path = save_with_orientation(stored_as(upright, orientation), tmp_path / "a.png",
                                 orientation)
    on, off = Decoding(exif_orientation=True), Decoding(exif_orientation=False)
    (file_source,) = image_sources([path])
    np.testing.assert_array_equal(np.asarray(file_source.load(on)), upright)
    np.testing.assert_array_equal(np.asarray(file_source.load(off)),
                                  np.asarray(stored_as(upright, orientation)))
    with Image.open(path) as opened:
        (pil_source,) = image_sources([opened])
        np.testing.assert_array_equal(np.asarray(pil_source.load(on)), upright)
        # The orientation the pixels need is part of the key: 1 and off share today's.
        assert (pil_source.key(on) == pil_source.key(off)) == (orientation == 1)


def test_arrays_are_taken_as_they_are(encoder):
    """An array has no EXIF block: the setting does not touch it nor its key."""
    array = np.asarray(stored_as(upright_picture(), 6))
    (source,) = image_sources([array])
    assert source.key(Decoding(exif_orientation=True)) == source.key(Decoding())
    np.testing.assert_array_equal(np.asarray(source.load(Decoding(exif_orientation=True))), array)


def test_a_sideways_phone_photo_is_encoded_upright(encoder, tmp_path):
    """A JPEG stored sideways with orientation 6 has the features of the upright picture."""
    upright = upright_picture(96, 64)
    path = save_with_orientation(stored_as(upright, 6), tmp_path / "sideways.jpg", 6,
                                 quality=95)
    reference = tmp_path / "upright.jpg"
    Image.fromarray(upright).save(reference, quality=95)
    sideways, straight = image_features(encoder, [path, str(reference)])
    assert cosine(sideways, straight) > 0.999
    with config_context(exif_orientation=False):
        as_stored = image_features(encoder, [path])[0]
    assert cosine(as_stored, straight) < cosine(sideways, straight)


def test_large_jpegs_decode_at_the_smallest_scale_keeping_twice_the_input(encoder, tmp_path):
    """A 1024x768 JPEG decodes at 1/8 for a 32-pixel model (both sides >= 64); others in full."""
    rng = np.random.RandomState(0)
    smooth = Image.fromarray(rng.randint(0, 256, (6, 8, 3), dtype=np.uint8)).resize(
        (1024, 768), Image.BICUBIC)
    large, small, png = tmp_path / "large.jpg", tmp_path / "small.jpg", tmp_path / "large.png"
    smooth.save(large, quality=90)
    smooth.resize((120, 90)).save(small, quality=90)
    smooth.save(png)
    draft = Decoding(draft_size=2 * max(encoder.image_size))
    assert draft.draft_size == 64
    sources = image_sources([str(large), str(small), str(png)])
    assert sources[0].load(draft).size == (128, 96)
    assert sources[0].load(Decoding()).size == (1024, 768)
    assert sources[1].load(draft).size == (120, 90)  # 1/2 would leave 45 < 64 pixels
    assert sources[2].load(draft).size == (1024, 768)  # not a JPEG
    with config_context(jpeg_draft=False):
        full = image_features(encoder, [str(large)])
    drafted = image_features(encoder, [str(large)])
    assert cosine(full, drafted)[0] > 0.999
    assert not np.array_equal(full, drafted)  # two entries, two decodes


def test_predict_drafts_a_jpeg_to_twice_the_input_not_once(tiny_model, tmp_path,
                                                         monkeypatch):
    """Through predict, a 400x300 JPEG reaches preprocessing at 1/4 (100x75), not 1/8 (50x38).

    1/8 would keep both sides above the 32-pixel input but not above twice it.
    """
    from sklearn_taskres import clear_feature_cache, zero_shot_classifier

    path = tmp_path / "photo.jpg"
    Image.fromarray(smooth_picture(400, 300)).save(path, quality=90)
    clf = zero_shot_classifier(["a", "b"], model=tiny_model, pretrained=None, device="cpu",
                               precision="fp32")
    encoder = clf._encoder(torch.device("cpu"))
    assert encoder.image_size == (32, 32)
    sizes, preprocess = [], encoder.preprocess

    def recording(image):
        sizes.append(image.size)
        return preprocess(image)

    monkeypatch.setattr(encoder, "preprocess", recording)
    clear_feature_cache()
    clf.predict([str(path)])
    with config_context(jpeg_draft=False):
        clf.predict([str(path)])
    assert sizes == [(100, 75), (400, 300)]


def test_a_jpeg_has_a_key_of_its_own_exactly_when_the_draft_changes_its_size(tmp_path):
    """Drafted JPEGs (a side of 128 halves to 64) never share the features of a full decode."""
    draft, full = Decoding(draft_size=64), Decoding()
    drafted = []
    for width, height in [(127, 200), (128, 128), (200, 127), (255, 300), (256, 256)]:
        path = tmp_path / f"{width}x{height}.jpg"
        Image.fromarray(smooth_picture(width, height)).save(path, quality=90)
        (source,) = image_sources([str(path)])
        changed = source.load(draft).size != source.load(full).size
        assert (source.key(draft) != source.key(full)) is changed, (width, height)
        drafted.append(changed)
    assert drafted == [False, True, False, True, True]


def test_augmented_views_decode_at_full_size_whatever_jpeg_draft_says(encoder, tmp_path,
                                                                       encoded_rows):
    """A random crop may zoom in far: the views of a large JPEG come from its full decode."""
    path = str(tmp_path / "large.jpg")
    Image.fromarray(smooth_picture(600, 400)).save(path, quality=90)
    with config_context(jpeg_draft=False):
        full = augmented_image_features(encoder, [path], 2, seed=0)
    drafted = augmented_image_features(encoder, [path], 2, seed=0)
    np.testing.assert_array_equal(drafted, full)
    assert encoded_rows["rows"] == 2  # one entry per view, whatever the setting


def test_with_both_settings_off_and_fp32_the_features_are_the_former_ones(encoder, tmp_path):
    """Both off: the keys and the features of a full decode without transpose, bit for bit."""
    upright = upright_picture(300, 200)
    paths = [save_with_orientation(stored_as(upright, 8), tmp_path / "a.jpg", 8, quality=90),
             str(tmp_path / "b.png")]
    Image.fromarray(upright).save(paths[1])
    former = torch.stack([encoder.preprocess(Image.open(path).convert("RGB")) for path in paths])
    expected = encoder.encode_images(former)
    with config_context(jpeg_draft=False, exif_orientation=False):
        got = image_features(encoder, paths)
    np.testing.assert_array_equal(got, expected)
    off = Decoding()
    assert [source.key(off) for source in image_sources(paths)] == [
        (source.digest,) for source in image_sources(paths)]


def test_the_decoding_settings_are_part_of_the_keys_where_they_change_the_pixels(
        encoder, tmp_path, encoded_rows):
    """A large tagged JPEG has an entry per combination; images they leave alone share one."""
    tagged = save_with_orientation(Image.fromarray(upright_picture(600, 400)),
                                   tmp_path / "a.jpg", 3)
    small = save_with_orientation(Image.fromarray(upright_picture()), tmp_path / "b.jpg", 1)
    plain = str(tmp_path / "c.png")
    Image.fromarray(upright_picture(600, 400)).save(plain)
    for draft in (True, False):
        for exif in (True, False):
            with config_context(jpeg_draft=draft, exif_orientation=exif):
                image_features(encoder, [tagged, small, plain, upright_picture()])
    assert encoded_rows["rows"] == 4 + 1 + 1 + 1
    (source,) = image_sources([tagged])
    assert source.header == ("JPEG", (600, 400), 3)


@pytest.mark.parametrize("setting", ["jpeg_draft", "exif_orientation"])
def test_bad_decoding_settings_are_named_and_change_nothing(setting):
    before = get_config()
    with pytest.raises(ValueError, match=rf"expected {setting} to be True or False; got 'yes'"):
        set_config(**{setting: "yes"})
    assert get_config() == before


def test_the_defaults_decode_drafts_and_apply_the_orientation():
    assert get_config()["jpeg_draft"] is True and get_config()["exif_orientation"] is True


def test_an_mpo_file_is_its_first_frame_without_a_warning(tmp_path):
    """Many phone cameras write MPO (a JPEG with a preview): the photo, no 'animated' warning."""
    picture = Image.fromarray(upright_picture())
    path = tmp_path / "photo.jpg"
    try:
        picture.save(path, format="MPO", save_all=True, append_images=[picture.rotate(90)])
    except (KeyError, ValueError, OSError):
        pytest.skip("this Pillow cannot write MPO files")
    (source,) = image_sources([str(path)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert source.load(Decoding()).size == picture.size


def test_a_large_mpo_photo_is_drafted_as_a_jpeg(tmp_path):
    """A phone's MPO file decodes at reduced DCT scale as a JPEG does, with a key of its own."""
    picture = Image.fromarray(smooth_picture(512, 384))
    path = tmp_path / "photo.jpg"
    try:
        picture.save(path, format="MPO", save_all=True, append_images=[picture.rotate(90)])
    except (KeyError, ValueError, OSError):
        pytest.skip("this Pillow cannot write MPO files")
    (source,) = image_sources([str(path)])
    assert source.header[0] == "MPO"
    draft = Decoding(draft_size=64)
    assert source.load(draft).size == (128, 96)
    assert source.key(draft) != source.key(Decoding())


@pytest.mark.parametrize("suffix, feature", [(".webp", "webp"), (".avif", "avif")])
def test_webp_and_avif_decode_as_the_installed_pillow_reads_them(tmp_path, suffix, feature):
    if not features.check(feature):
        pytest.skip(f"this Pillow has no {feature} support")
    picture = smooth_picture(60, 40)
    path = tmp_path / f"a{suffix}"
    Image.fromarray(picture).save(path, quality=100)
    (source,) = image_sources([str(path)])
    decoded = np.asarray(source.load(Decoding()), dtype=np.int16)
    assert decoded.shape == picture.shape and np.abs(decoded - picture).mean() < 4


def test_heic_files_decode_with_the_heif_extra(encoder, tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    picture = smooth_picture(96, 64)
    path = tmp_path / "IMG_0001.HEIC"
    Image.fromarray(picture).save(path, quality=95)
    (source,) = image_sources([str(path)])
    decoded = np.asarray(source.load(Decoding(exif_orientation=True)), dtype=np.int16)
    assert decoded.shape == picture.shape and np.abs(decoded - picture).mean() < 8
    reference = tmp_path / "reference.png"
    Image.fromarray(picture).save(reference)
    heic, png = image_features(encoder, [str(path), str(reference)])
    assert cosine(heic, png) > 0.99
    assert {".heic", ".heif"} <= image_suffixes()  # folder scans include them


def test_without_the_heif_extra_a_heic_file_names_index_path_and_extra(tmp_path):
    """In a process without pillow-heif, the error says which image and what to install."""
    heic = tmp_path / "IMG_0002.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64))
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pillow_heif"] = None  # as if the extra were not installed
        import numpy as np
        from sklearn_taskres._images import Decoding, image_sources, image_suffixes
        print(sorted(image_suffixes()))
        sources = image_sources([np.zeros((4, 4), np.uint8), {str(heic)!r}])
        try:
            sources[1].load(Decoding())
        except ValueError as exc:
            print(exc)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    suffixes, message = result.stdout.splitlines()
    assert "'.jpg'" in suffixes and "'.heic'" not in suffixes  # folder scans leave them out
    assert "X[1]: cannot decode the image file" in message
    assert str(heic) in result.stdout
    assert 'pip install "sklearn-taskres[heif]"' in result.stdout


# ------------------------------------------------ the settings travel to other processes


def _fitted(tiny_model):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=9)
    return TaskResClassifier(["a", "b", "c"], model=tiny_model, pretrained=None, max_iter=2,
                             device="cpu", random_state=0).fit(images, y)


@pytest.mark.auto_precision
def test_a_pickle_carries_the_decoding_settings_where_the_process_has_not_set_them(tiny_model):
    """Unpickled, an estimator decodes as the process that pickled it, unless this one chose."""
    clf = _fitted(tiny_model)
    with config_context(jpeg_draft=False):
        blob = pickle.dumps(clf)
    assert clf._decoding() == {"jpeg_draft": True, "exif_orientation": True}
    script = textwrap.dedent("""
        import pickle, sys
        from sklearn_taskres import set_config
        from sklearn_taskres.testing import register_tiny_clip
        register_tiny_clip()
        blob = sys.stdin.buffer.read()
        print(pickle.loads(blob)._decoding())
        set_config(jpeg_draft=True)
        print(pickle.loads(blob)._decoding())
    """)
    result = subprocess.run([sys.executable, "-c", script], input=blob, capture_output=True,
                            timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr.decode()
    carried, chosen = result.stdout.decode().splitlines()
    assert carried == "{'jpeg_draft': False, 'exif_orientation': True}"
    assert chosen == "{'jpeg_draft': True, 'exif_orientation': True}"


@pytest.mark.auto_precision
def test_grid_search_workers_decode_with_the_settings_of_the_call(tiny_model, tmp_path):
    """GridSearchCV(n_jobs=2) in loky workers scores as in this process, settings included."""
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=11)
    paths = []
    for index, pixels in enumerate(images):
        # Upright and orientation-tagged in turn: the setting changes the features.
        orientation = 6 if index % 2 else 1
        paths.append(save_with_orientation(stored_as(pixels, orientation),
                                           tmp_path / f"{index}.png", orientation))
    search = GridSearchCV(
        TaskResClassifier(["a", "b", "c"], model=tiny_model, pretrained=None, max_iter=3,
                          device="cpu", random_state=0),
        {"alpha": [0.5, 1.0]}, cv=2, scoring="neg_log_loss",
    )
    scores = {}
    for n_jobs, exif in ((None, True), (None, False), (2, False)):
        with config_context(exif_orientation=exif):
            search.set_params(n_jobs=n_jobs).fit(paths, y)
        scores[n_jobs, exif] = search.cv_results_["mean_test_score"]
    assert not np.allclose(scores[None, True], scores[None, False], rtol=1e-5)
    # The workers never set exif_orientation: the pickled estimators carried it.
    np.testing.assert_allclose(scores[2, False], scores[None, False], rtol=1e-5)


def test_the_reproduction_harness_decodes_as_the_official_code(encoder, tmp_path):
    """The harness reads full-size JPEGs with their orientation tags ignored, whatever is set."""
    from types import SimpleNamespace

    from sklearn_taskres.reproduce._encoding import CountingEncoder, encode_split

    upright = upright_picture(600, 400)
    save_with_orientation(stored_as(upright, 6), tmp_path / "a.jpg", 6, quality=90)
    dataset = SimpleNamespace(key="photos", directory=tmp_path,
                              splits={"test": SimpleNamespace(paths=["a.jpg"])})
    encoded = encode_split(CountingEncoder(encoder), dataset, "test", [0], None, print)
    path = str(tmp_path / "a.jpg")
    former = encoder.encode_images(encoder.preprocess(Image.open(path).convert("RGB"))[None])
    np.testing.assert_allclose(encoded.rows([0]), former, rtol=1e-5, atol=1e-6)
    assert not np.allclose(image_features(encoder, [path]), former, rtol=1e-3)  # the defaults


def test_folder_scans_take_heic_files_with_the_extra(tmp_path):
    """The command line's scan lists .heic/.heif files where pillow-heif is installed."""
    pytest.importorskip("pillow_heif")
    from sklearn_taskres.cli import find_images

    for name in ("a.jpg", "b.HEIC", "c.heif", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [path.name for path in find_images(tmp_path)] == ["a.jpg", "b.HEIC", "c.heif"]
