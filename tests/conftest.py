import os

# Before open_clip or huggingface_hub is imported anywhere: a cache miss must
# fail at once instead of retrying the network for a minute.
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
from helpers import make_images  # noqa: E402
from PIL import Image  # noqa: E402

from sklearn_taskres.testing import (  # noqa: E402
    register_tiny_clip,
    save_tiny_checkpoint,
    trained_tiny_clip,
)


@pytest.fixture(autouse=True)
def _auto_precision_is_marked(request, monkeypatch):
    """A test that resolves precision="auto" in this process carries the auto_precision mark.

    Its outcome may then depend on the CPU ("auto" is bf16 where the CPU has bf16
    units), so .ci/run runs it once more as on the other kind of CPU. Tests that
    must not depend on it pin ``precision="fp32"`` instead.
    """
    from sklearn_taskres._clip import _encoder

    probe, asked = _encoder._cpu_has_bf16_units, []

    def asking():
        asked.append(True)
        return probe()

    monkeypatch.setattr(_encoder, "_cpu_has_bf16_units", asking)
    yield
    if asked and request.node.get_closest_marker("auto_precision") is None:
        pytest.fail('this test resolves precision="auto", whose answer depends on the CPU: '
                    "mark it @pytest.mark.auto_precision, or pin precision=\"fp32\"",
                    pytrace=False)


@pytest.fixture(scope="session")
def tiny_model():
    """Name of a tiny random open_clip model registered for the session."""
    return register_tiny_clip()


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory):
    """A local checkpoint file of the tiny model."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("weights") / "tiny.pt", tiny_model)


@pytest.fixture(scope="session")
def tiny_folder(tiny_model, tmp_path_factory):
    """The tiny model (seeded random weights) saved as a ``local-dir:`` folder."""
    from sklearn_taskres._clip import save_model_folder

    return save_model_folder(tiny_model, tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_digits_clip():
    """(model name, checkpoint path) of the tiny CLIP trained on digits.

    Trained once per machine (about a minute) and cached in the user's cache
    folder, or under $SKLEARN_TASKRES_CACHE_DIR.
    """
    model, path = trained_tiny_clip()
    return model, str(path)


@pytest.fixture
def encoded_rows(monkeypatch):
    """Counts the images that go through the image encoder."""
    from sklearn_taskres._clip import ClipEncoder

    counter = {"rows": 0}
    encode = ClipEncoder.encode_images

    def counting(self, pixels):
        counter["rows"] += len(pixels)
        return encode(self, pixels)

    monkeypatch.setattr(ClipEncoder, "encode_images", counting)
    return counter


@pytest.fixture
def pil_image():
    return Image.fromarray(make_images(1, seed=123)[0])
