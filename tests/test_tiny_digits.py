import numpy as np
import pytest
from safetensors.torch import load_file
from sklearn.datasets import load_digits

from sklearn_taskres import TaskResClassifier, sample_few_shot
from sklearn_taskres import _tiny_digits as tiny_digits
from sklearn_taskres.testing import load_held_out_digits

DIGITS = [str(digit) for digit in range(10)]
TEMPLATES = ['a photo of the number: "{}".']
# A recipe small enough to train in a second or two: for the cache's behaviour only.
QUICK_RECIPE = {**tiny_digits.RECIPE, "n_pretraining": 40, "epochs": 1, "batch_size": 20,
                "warmup_steps": 1}


@pytest.fixture
def trainings(monkeypatch):
    """Counts the trainings of the tiny digits CLIP."""
    counter = {"runs": 0}
    train = tiny_digits.train

    def counting(*args, **kwargs):
        counter["runs"] += 1
        return train(*args, **kwargs)

    monkeypatch.setattr(tiny_digits, "train", counting)
    return counter


def zero_shot_and_taskres(model, pretrained, X_train, y_train, X_test, y_test):
    params = dict(model=model, pretrained=pretrained, templates=TEMPLATES, random_state=0,
                  device="cpu")
    zero_shot = TaskResClassifier(DIGITS, alpha=0.0, max_iter=1, **params)
    taskres = TaskResClassifier(DIGITS, alpha=0.5, max_iter=100, **params)
    return (zero_shot.fit(X_train, y_train).score(X_test, y_test),
            taskres.fit(X_train, y_train).score(X_test, y_test))


@pytest.mark.auto_precision
def test_zero_shot_reads_held_out_digits(tiny_digits_clip):
    """From the class names alone, the trained tiny CLIP reads digits it never saw."""
    X, y = load_held_out_digits()
    model, pretrained = tiny_digits_clip
    zero_shot = TaskResClassifier(DIGITS, model=model, pretrained=pretrained,
                                  templates=TEMPLATES, alpha=0.0, max_iter=1, device="cpu")
    assert zero_shot.fit(X[:20], y[:20]).score(X, y) > 0.8


@pytest.mark.auto_precision
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_taskres_improves_on_zero_shot_in_an_unseen_style(tiny_digits_clip, seed):
    """4 labelled digits per class in a new style: TaskRes beats zero-shot by a clear margin."""
    X, y = load_held_out_digits("bold", random_state=seed)
    train = sample_few_shot(y, 4, random_state=seed)
    test = np.setdiff1d(np.arange(len(y)), train)
    zero_shot, taskres = zero_shot_and_taskres(*tiny_digits_clip, X[train], y[train],
                                               X[test], y[test])
    assert zero_shot > 0.25  # well above chance (0.1), from the names alone
    assert taskres > zero_shot + 0.15, (zero_shot, taskres)


def test_held_out_digits_are_the_ones_left_out_of_the_pretraining():
    """The held-out digits and the pretraining digits partition load_digits."""
    digits = load_digits()
    pretraining, held_out = tiny_digits.pretraining_split(
        len(digits.target), tiny_digits.RECIPE["n_pretraining"], tiny_digits.RECIPE["seed"])
    assert len(np.intersect1d(pretraining, held_out)) == 0
    assert len(pretraining) + len(held_out) == len(digits.target)
    X, y = load_held_out_digits()
    assert X.shape == (len(held_out), 8, 8) and X.dtype == np.uint8
    np.testing.assert_array_equal(y, digits.target[held_out])
    np.testing.assert_array_equal(X, np.rint(digits.images[held_out] * 255 / 16))


def test_bold_digits_are_drawn_by_their_seed():
    """The bold style is 32x32 uint8, the same for a seed and different for another."""
    first, _ = load_held_out_digits("bold", random_state=0)
    again, _ = load_held_out_digits("bold", random_state=0)
    other, _ = load_held_out_digits("bold", random_state=1)
    assert first.shape[1:] == (32, 32) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_unknown_style_is_an_error():
    """A style that does not exist is named in the error."""
    with pytest.raises(ValueError, match="expected style to be one of.*got 'italic'"):
        load_held_out_digits("italic")


def test_training_is_deterministic():
    """Two trainings with the same recipe give the same weights."""
    first = tiny_digits.train(QUICK_RECIPE)
    second = tiny_digits.train(QUICK_RECIPE)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name].numpy(), second[name].numpy()), name


def test_checkpoint_is_trained_once_then_read_from_the_cache(tmp_path, trainings):
    """A second call finds the cached checkpoint and does not train."""
    path = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    assert path.parent == tmp_path and path.suffix == ".safetensors"
    again = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    assert again == path and trainings["runs"] == 1


def test_corrupt_checkpoint_is_trained_again(tmp_path, trainings):
    """A cached file whose tensors no longer match their checksum is retrained."""
    path = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    expected = {name: tensor.clone() for name, tensor in load_file(str(path)).items()}
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # a flipped byte inside the last tensor
    path.write_bytes(bytes(data))
    assert tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE) == path
    assert trainings["runs"] == 2
    restored = load_file(str(path))
    assert all(np.array_equal(expected[name].numpy(), restored[name].numpy())
               for name in expected)


def test_truncated_checkpoint_is_trained_again(tmp_path, trainings):
    """A cached file cut short (an interrupted copy) is retrained."""
    path = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    path.write_bytes(path.read_bytes()[:1000])
    tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    assert trainings["runs"] == 2
    assert tiny_digits._is_valid(path, tiny_digits.cache_key(recipe=QUICK_RECIPE))


def test_stale_checkpoint_is_trained_again(tmp_path, trainings):
    """A file at the checkpoint's place written for another recipe is retrained."""
    path = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    other = {**QUICK_RECIPE, "learning_rate": 1e-4}
    tiny_digits._write(load_file(str(path)), path, tiny_digits.cache_key(recipe=other))
    tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    assert trainings["runs"] == 2


def test_another_recipe_is_cached_under_another_key(tmp_path, trainings):
    """Changing the recipe changes the cache key, so it trains a new checkpoint."""
    first = tiny_digits.trained_checkpoint(tmp_path, recipe=QUICK_RECIPE)
    second = tiny_digits.trained_checkpoint(tmp_path, recipe={**QUICK_RECIPE, "seed": 1})
    assert first != second and trainings["runs"] == 2


def test_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    """$SKLEARN_TASKRES_CACHE_DIR, else $XDG_CACHE_HOME/sklearn_taskres; an argument wins."""
    monkeypatch.delenv(tiny_digits.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tiny_digits.cache_directory() == tmp_path / "xdg" / "sklearn_taskres"
    monkeypatch.setenv(tiny_digits.CACHE_ENV, str(tmp_path / "mine"))
    assert tiny_digits.cache_directory() == tmp_path / "mine"
    assert tiny_digits.cache_directory(tmp_path / "given") == tmp_path / "given"
