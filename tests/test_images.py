import numpy as np
import pytest
from helpers import make_images
from PIL import Image

from sklearn_taskres._images import image_sources


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
    with pytest.raises(TypeError, match=r"X\[1\]: expected a PIL image, a path or a uint8 array; "
                                        "got list"):
        image_sources(make_images(1, seed=5) + [[1, 2, 3]])


def test_single_image_instead_of_a_sequence(pil_image):
    with pytest.raises(TypeError, match=r"got a single Image. Wrap it in a list"):
        image_sources(pil_image)


def test_empty_sequence():
    with pytest.raises(ValueError, match="expected at least one image"):
        image_sources([])
