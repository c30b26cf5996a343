import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_images
from PIL import Image

import sklearn_taskres
from sklearn_taskres import _images
from sklearn_taskres._images import image_column_of, image_sources


def rgb_of(item):
    (source,) = image_sources([item])
    image = source.load()
    assert image.mode == "RGB"
    return np.asarray(image)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I", "F"])
def test_every_pil_mode_becomes_rgb(mode, pil_image):
    """Grayscale, palette, alpha and other modes are converted to RGB."""
    converted = pil_image.convert(mode)
    assert rgb_of(converted).shape == (40, 40, 3)


def test_alpha_is_composited_on_white():
    """Transparent pixels become white instead of their hidden colour."""
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)  # transparent black
    rgba[0, 0] = (255, 0, 0, 255)
    pixels = rgb_of(Image.fromarray(rgba, "RGBA"))
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[1, 1]) == (255, 255, 255)


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 1), (8, 8, 3), (8, 8, 4)])
def test_uint8_arrays_of_every_layout(shape):
    array = np.random.RandomState(0).randint(0, 256, shape, dtype=np.uint8)
    pixels = rgb_of(array)
    assert pixels.shape == (8, 8, 3)
    if len(shape) == 2 or shape[2] == 1:
        np.testing.assert_array_equal(pixels[:, :, 0], array.reshape(8, 8))
    if len(shape) == 3 and shape[2] == 3:
        np.testing.assert_array_equal(pixels, array)


def test_a_stacked_uint8_batch_is_a_sequence_of_images():
    batch = np.stack(make_images(3, seed=1))
    sources = image_sources(batch)
    assert len(sources) == 3
    np.testing.assert_array_equal(np.asarray(sources[2].load()), batch[2])


def test_paths_and_pathlib_read_the_file(tmp_path, pil_image):
    path = tmp_path / "img.png"
    pil_image.save(path)
    for item in (path, str(path)):
        np.testing.assert_array_equal(rgb_of(item), np.asarray(pil_image))


def test_digests_follow_content_not_identity(tmp_path):
    """Equal pixels share a digest; a changed file at the same path gets a new one."""
    a, b = make_images(2, seed=2)
    assert image_sources([a])[0].digest == image_sources([a.copy()])[0].digest
    assert image_sources([a])[0].digest != image_sources([b])[0].digest
    path = tmp_path / "img.png"
    Image.fromarray(a).save(path)
    before = image_sources([path])[0].digest
    Image.fromarray(b).save(path)
    assert image_sources([path])[0].digest != before


def _age(path, seconds):
    """Set the file's access and modification times ``seconds`` into the past."""
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_settled_files_are_hashed_once_until_they_change(tmp_path, monkeypatch):
    """A settled file is read once; rewriting it (same size) is noticed."""
    monkeypatch.setattr(_images, "_SETTLED_SECONDS", -1.0)  # ctime cannot be set back
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    a, b = make_images(2, seed=4)
    path = tmp_path / "img.bmp"  # BMP: same pixel size, same file size
    Image.fromarray(a).save(path)
    _age(path, 100)
    first = image_sources([path, str(path)])
    assert first[0].digest == first[1].digest
    assert image_sources([path])[0].digest == first[0].digest
    assert len(reads) == 1
    sklearn_taskres.clear_feature_cache()  # forgets the digests too
    assert image_sources([path])[0].digest == first[0].digest
    assert len(reads) == 2

    Image.fromarray(b).save(path)
    _age(path, 50)
    assert path.stat().st_size == first[0].item.stat().st_size
    assert image_sources([path])[0].digest != first[0].digest
    assert len(reads) == 3


def test_a_file_written_just_now_is_hashed_every_time(tmp_path, monkeypatch):
    """Timestamps may be coarse: a file modified seconds ago could change unnoticed."""
    reads = []
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(self) or read_bytes(self))
    path = tmp_path / "img.png"
    Image.fromarray(make_images(1, seed=5)[0]).save(path)
    image_sources([path])
    image_sources([path])
    assert len(reads) == 2


def test_missing_file_names_index_and_path(tmp_path):
    images = make_images(1, seed=3) + [tmp_path / "missing.jpg"]
    with pytest.raises(FileNotFoundError, match=r"X\[1\]: no such image file.*missing.jpg"):
        image_sources(images)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(ValueError, match=r"X\[0\]: expected an image file; got the directory"):
        image_sources([tmp_path])


def test_corrupt_file_names_index_and_path(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image at all")
    (source,) = image_sources([path])
    with pytest.raises(ValueError, match=r"X\[0\]: cannot decode the image file.*broken.jpg"):
        source.load()


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((8, 8, 3), dtype=np.float32), "got dtype float32"),
        (np.zeros((8, 8, 2), dtype=np.uint8), r"got dtype uint8 and shape \(8, 8, 2\)"),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), r"shape \(2, 8, 8, 3\)"),
        (np.zeros((0, 8), dtype=np.uint8), "expected a non-empty image"),
    ],
)
def test_bad_arrays_are_named(array, match):
    images = make_images(2, seed=4) + [array]
    with pytest.raises(ValueError, match=r"X\[2\]: .*" + match):
        image_sources(images)


def test_unsupported_item_type_is_named():
    with pytest.raises(TypeError, match=r"X\[1\]: expected a PIL image, a path, encoded image "
                                        "bytes or a uint8 array; got list"):
        image_sources(make_images(1, seed=5) + [[1, 2, 3]])


def test_single_image_instead_of_a_sequence(pil_image):
    with pytest.raises(TypeError, match=r"got a single Image. Wrap it in a list"):
        image_sources(pil_image)


def test_empty_sequence():
    with pytest.raises(ValueError, match="expected at least one image"):
        image_sources([])


def test_animated_image_uses_the_first_frame_with_a_warning(tmp_path):
    frames = [Image.fromarray(image) for image in make_images(3, seed=6)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    (source,) = image_sources([path])
    with pytest.warns(UserWarning, match=r"X\[0\]: an animated image with 3 frames"):
        image = source.load()
    with Image.open(path) as first:
        np.testing.assert_array_equal(np.asarray(image), np.asarray(first.convert("RGB")))


def test_truncated_file_names_index_and_path(tmp_path, pil_image):
    path = tmp_path / "cut.jpg"
    pil_image.save(path)
    path.write_bytes(path.read_bytes()[:200])
    (source,) = image_sources([path])
    with pytest.raises(ValueError, match=r"X\[0\]: cannot decode the image file.*cut.jpg"):
        source.load()


def test_non_image_file_names_index_and_path(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    images = make_images(1, seed=7) + [path]
    sources = image_sources(images)
    with pytest.raises(ValueError, match=r"X\[1\]: cannot decode the image file.*notes.txt"):
        sources[1].load()


def test_zero_size_pil_image_is_named():
    with pytest.raises(ValueError, match=r"X\[0\]: expected a non-empty image; got size \(0, 5\)"):
        image_sources([Image.new("RGB", (0, 5))])


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_sixteen_bit_images_keep_their_contrast(mode):
    """16-bit values are scaled to 8 bits instead of being clipped at 255 (all white)."""
    values = np.array([[0, 16384], [32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values if mode == "I;16" else values.astype(np.int32))
    assert image.mode == mode
    pixels = rgb_of(image)[:, :, 0]
    np.testing.assert_array_equal(pixels, [[0, 64], [128, 255]])


def test_float_image_in_unit_range_is_scaled():
    image = Image.fromarray(np.array([[0.0, 0.5], [1.0, 0.25]], dtype=np.float32), "F")
    np.testing.assert_array_equal(rgb_of(image)[:, :, 0], [[0, 128], [255, 64]])


def test_torch_tensor_gets_a_conversion_hint():
    import torch

    with pytest.raises(TypeError, match=r"X\[0\]: .*got Tensor \(for a CHW tensor"):
        image_sources([torch.zeros(3, 8, 8)])


def _png_bytes(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["path", "bytes", "base64"])
def test_a_one_column_dataframe_is_its_column_never_its_name(tmp_path, kind):
    """The column's values are the images; its name, here an image file itself, is not."""
    pd = pytest.importorskip("pandas")
    images = make_images(3, seed=11)
    paths = []
    for index, image in enumerate(images):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    named = str(tmp_path / "name.png")
    Image.fromarray(make_images(1, seed=12)[0]).save(named)
    values = {"path": paths,
              "bytes": [Path(path).read_bytes() for path in paths],
              "base64": [base64.b64encode(Path(path).read_bytes()).decode() for path in paths]}
    sources = image_sources(pd.DataFrame({named: values[kind]}))
    assert [source.digest for source in sources] == [
        source.digest for source in image_sources(paths)]


def test_a_dataframe_of_several_columns_is_refused_naming_them(tmp_path):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"path": ["a.png"], "label": ["cat"]})
    with pytest.raises(ValueError, match=r"expected a DataFrame with one column of images, or "
                                         r"image_column naming the column of images; got 2 "
                                         r"columns \['path', 'label'\]"):
        image_sources(frame)


def test_image_column_picks_the_column_and_names_a_missing_one(tmp_path):
    pd = pytest.importorskip("pandas")
    images = make_images(2, seed=13)
    frame = pd.DataFrame({"label": ["a", "b"], "image": [_png_bytes(i) for i in images]})
    column = image_column_of(frame, "image")
    assert list(column) == list(frame["image"])
    with pytest.raises(ValueError, match=r"expected a DataFrame with the column of images "
                                         r"'photo' \(image_column\); got the columns "
                                         r"\['label', 'image'\]"):
        image_column_of(frame, "photo")
    assert image_column_of(images, "photo") is images  # not a DataFrame: X itself


def test_a_bad_row_of_a_dataframe_is_named_by_position(tmp_path):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "0.png"
    Image.fromarray(make_images(1, seed=14)[0]).save(path)
    frame = pd.DataFrame({"path": [str(path), str(tmp_path / "gone.png")]}, index=[10, 20])
    with pytest.raises(FileNotFoundError, match=r"X\[1\]: no such image file: .*gone.png"):
        image_sources(frame)


@pytest.mark.parametrize("encode", [
    lambda content: base64.b64encode(content).decode(),
    lambda content: base64.encodebytes(content).decode(),  # MIME: a line break every 76
    lambda content: "data:image/png;base64," + base64.b64encode(content).decode(),
], ids=["standard", "mime", "data-url"])
def test_base64_strings_are_the_bytes_of_their_file(encode):
    """A string that names no file and is base64 of an image file is that file's bytes."""
    content = _png_bytes(make_images(1, seed=15)[0])
    (source,) = image_sources([encode(content)])
    (as_bytes,) = image_sources([content])
    assert source.kind == "bytes" and source.item == content
    assert source.digest == as_bytes.digest
    np.testing.assert_array_equal(np.asarray(source.load()), np.asarray(as_bytes.load()))


def test_an_existing_path_wins_over_base64(tmp_path, monkeypatch):
    """A string that names a file is that file, even if it is base64 of another image too."""
    in_base64 = _png_bytes(np.zeros((1, 1, 3), dtype=np.uint8))
    name = base64.b64encode(in_base64).decode()
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)  # "/" is in the base64 alphabet
    Image.fromarray(make_images(1, seed=16)[0]).save(path, format="PNG")
    monkeypatch.chdir(tmp_path)
    (source,) = image_sources([name])
    assert source.kind == "path"
    assert source.digest == image_sources([path])[0].digest
    assert source.digest != image_sources([in_base64])[0].digest


def test_strings_that_are_neither_file_nor_image_are_explained():
    """A short name is a missing file; long base64 of no image says so; long names are cut."""
    with pytest.raises(FileNotFoundError, match=r"X\[0\]: no such image file: 'abcd'"):
        image_sources(["abcd"])  # base64 too, of 3 bytes: a missing file is the likelier
    not_image = base64.b64encode(b"just some text, not an image at all" * 3).decode()
    with pytest.raises(ValueError, match=r"X\[0\]: expected a path to an image file or an "
                                         r"image file in base64; got 'anVzd.*\(140 characters\), "
                                         r"which names no file and decodes as base64 to 105 "
                                         r"bytes of no image format \(starting b'just some t"):
        image_sources([not_image])
    long_name = "photos/" + "x" * 300 + ".jpg"  # longer than a file name may be
    with pytest.raises(FileNotFoundError, match=r"X\[0\]: no such image file: 'photos/x+'\.\.\. "
                                                r"\(311 characters\)"):
        image_sources([long_name])


def test_truncated_image_in_base64_names_its_row():
    content = _png_bytes(make_images(1, seed=17)[0])[:100]
    sources = image_sources([make_images(1, seed=18)[0], base64.b64encode(content).decode()])
    with pytest.raises(ValueError, match=r"X\[1\]: cannot decode the image bytes \(100 bytes"):
        sources[1].load()
