"""alpha="auto": the residual's strength chosen from the training labels, and GDA."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres import _head as head_module
from sklearn_taskres._alpha_selection import (
    AUTO_ALPHAS,
    MAX_FOLDS,
    select_alpha,
    train_residuals,
    validation_folds,
)
from sklearn_taskres._training import _training_tensors, train_residual
from sklearn_taskres.reproduce import build_parser, fit_gda

FAST = dict(max_iter=30, device="cpu", random_state=0)
RECIPE = dict(logit_scale=100.0, learning_rate=2e-3, max_iter=30, batch_size=256,
              weight_decay=5e-4, seed=0, device=torch.device("cpu"))


def task(n_per_class=4, base_noise=0.0, n_classes=4, n_features=16, noise=0.6, seed=0):
    """Embeddings around class centres, and a base that is the centres plus ``base_noise``."""
    rng = np.random.RandomState(seed)
    centres = rng.normal(size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = (centres[y] + noise * rng.normal(size=(len(y), n_features))).astype(np.float32)
    base = centres + base_noise * rng.normal(size=centres.shape)
    return base.astype(np.float32), X, y


def test_batched_residuals_equal_one_fit_each():
    """train_residuals trains every (weights, alpha) problem as train_residual does alone."""
    base, X, y = task(n_per_class=5, base_noise=1.0)
    weights = np.ones((3, len(y)))
    weights[1, ::3] = 0.0  # a held-out fold
    weights[2] = np.random.RandomState(1).uniform(0.5, 2.0, len(y))
    alphas = [0.5, 0.1, 1.0]
    views, targets = _training_tensors(X, y, "cpu")
    batched = train_residuals(views, targets, torch.tensor(base), alphas=alphas,
                              sample_weight=weights, **{k: v for k, v in RECIPE.items()
                                                        if k != "device"})
    for p, alpha in enumerate(alphas):
        alone, _ = train_residual(X, y, base, alpha=alpha, sample_weight=weights[p], **RECIPE)
        np.testing.assert_allclose(batched[p].numpy(), alone, rtol=2e-4, atol=2e-6)


def test_batched_residuals_follow_the_minibatches():
    """With more samples than batch_size, the batched problems take the same minibatch steps."""
    base, X, y = task(n_per_class=10, base_noise=1.0)
    recipe = {**RECIPE, "batch_size": 16}
    views, targets = _training_tensors(X, y, "cpu")
    batched = train_residuals(views, targets, torch.tensor(base), alphas=[0.5],
                              sample_weight=np.ones((1, len(y))),
                              **{k: v for k, v in recipe.items() if k != "device"})
    alone, _ = train_residual(X, y, base, alpha=0.5, **recipe)
    np.testing.assert_allclose(batched[0].numpy(), alone, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("n_per_class, n_folds", [(1, MAX_FOLDS), (2, 2), (3, 3), (9, MAX_FOLDS)])
def test_validation_folds_are_stratified_where_the_classes_allow(n_per_class, n_folds):
    """As many folds as the smallest class (2 to MAX_FOLDS); MAX_FOLDS with one label a class."""
    y = np.repeat(np.arange(5), n_per_class)
    folds, found = validation_folds(y, None)
    assert found == n_folds
    assert set(folds.tolist()) == set(range(n_folds))
    if n_per_class >= n_folds:
        for label in range(5):  # every class in every fold, as evenly as possible
            counts = np.bincount(folds[y == label], minlength=n_folds)
            assert counts.max() - counts.min() <= 1


def test_zero_weight_samples_do_not_set_the_number_of_folds():
    """A class whose extra samples weigh zero counts by its weighted samples."""
    y = np.repeat(np.arange(3), 4)
    weights = np.ones(len(y))
    weights[y == 0] = [1, 1, 0, 0]
    assert validation_folds(y, weights)[1] == 2


def test_auto_keeps_zero_shot_when_the_base_is_already_right():
    """A base that classifies every label right: auto stays at zero-shot (ties go to 0)."""
    base, X, y = task(n_per_class=4, noise=0.3)
    head = TaskResHead(base, alpha="auto", **FAST).fit(X, y)
    assert head.alpha_ == 0.0
    np.testing.assert_array_equal(head.predict(X), TaskResHead(base, alpha=0.0, **FAST)
                                  .fit(X, y).predict(X))


def test_auto_moves_when_the_base_is_wrong():
    """A base whose rows are swapped: auto learns a residual and beats zero-shot."""
    base, X, y = task(n_per_class=6, noise=0.3)
    wrong = 0.05 * base[[1, 0, 3, 2]]  # short rows: a residual can turn them in 100 epochs
    head = TaskResHead(wrong, alpha="auto", max_iter=100, device="cpu", random_state=0)
    head.fit(X, y)
    assert head.alpha_ > 0
    zero_shot = TaskResHead(wrong, alpha=0.0, **FAST).fit(X, y)
    assert head.score(X, y) > zero_shot.score(X, y) + 0.5


@pytest.mark.parametrize("n_per_class", [1, 2])
def test_auto_works_from_one_label_per_class(n_per_class):
    """One or two labels per class: auto fits, alpha_ is a candidate, the final fit uses it."""
    base, X, y = task(n_per_class=n_per_class, base_noise=1.0)
    head = TaskResHead(base, alpha="auto", **FAST).fit(X, y)
    assert head.alpha_ in AUTO_ALPHAS
    fixed = TaskResHead(base, alpha=head.alpha_, **FAST).fit(X, y)
    np.testing.assert_array_equal(head.residual_, fixed.residual_)


def test_numeric_alpha_is_alpha_():
    """A number is used as it is: alpha_ == alpha, and no selection runs."""
    base, X, y = task()
    assert TaskResHead(base, alpha=0.3, **FAST).fit(X, y).alpha_ == 0.3


def test_auto_passes_sample_and_class_weights_to_the_choice(monkeypatch):
    """The choice sees the sample weight times the class weight, as training does."""
    base, X, y = task(n_per_class=4)
    weights = np.linspace(0.5, 2.0, len(y))
    seen = {}

    def choose(features, targets, base, **kwargs):
        seen["weights"] = kwargs["sample_weight"]
        return 0.25, {}

    monkeypatch.setattr(head_module, "select_alpha", choose)
    head = TaskResHead(base, alpha="auto", class_weight={0: 3.0}, **FAST)
    head.fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(seen["weights"], weights * np.where(y == 0, 3.0, 1.0))
    assert head.alpha_ == 0.25


def test_the_choice_scores_with_the_weights():
    """Held-out accuracy is weighted: samples of zero weight do not count."""
    base, X, y = task(n_per_class=4, base_noise=1.5, seed=1)
    targets = y.astype(np.int64)
    right = np.argmax(X @ base.T / np.linalg.norm(base, axis=1), axis=1) == y
    assert 0 < right.mean() < 1
    weights = right.astype(float)  # only the samples zero-shot gets right count
    _, scores = select_alpha(X, targets, base, sample_weight=weights, **RECIPE)
    assert scores[0.0][0] == 1.0
    _, unweighted = select_alpha(X, targets, base, **RECIPE)
    assert unweighted[0.0][0] == pytest.approx(right.mean())


@pytest.mark.parametrize("alpha", ["bogus", -0.5, None, [0.5]])
def test_a_bad_alpha_names_the_parameter_and_the_value(alpha):
    """An alpha that is neither a number >= 0 nor "auto" is an error naming both."""
    base, X, y = task()
    with pytest.raises(InvalidParameterError, match=r"'alpha' parameter .*Got .*instead"):
        TaskResHead(base, alpha=alpha, **FAST).fit(X, y)
    with pytest.raises(InvalidParameterError, match=r"'alpha' parameter .*'auto'"):
        TaskResClassifier(["a", "b"], alpha=alpha)._validate_params()


def test_grid_search_over_numbers_and_auto():
    """GridSearchCV over alpha with numbers and "auto" in the grid."""
    base, X, y = task(n_per_class=6, base_noise=1.0)
    search = GridSearchCV(TaskResHead(base, **FAST), {"alpha": [0.0, 0.5, "auto"]},
                          cv=StratifiedKFold(3, shuffle=True, random_state=0))
    search.fit(X, y)
    assert search.cv_results_["param_alpha"].tolist() == [0.0, 0.5, "auto"]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.alpha_ in AUTO_ALPHAS


def test_gda_blend_is_zero_when_zero_shot_is_right_and_positive_when_it_is_wrong():
    """GDA's blend weight comes from the labels: 0 keeps zero-shot, a wrong base gets GDA."""
    base, X, y = task(n_per_class=6, noise=0.3)
    classes = np.arange(4)
    assert fit_gda(X, y, base, classes).blend_ == 0.0
    wrong = fit_gda(X, y, base[[1, 0, 3, 2]], classes)
    assert wrong.blend_ > 0
    assert np.mean(wrong.predict(X) == y) > 0.9


def test_gda_from_one_label_per_class_and_a_class_without_labels():
    """One label per class, one class unlabelled: GDA still fits and predicts every class."""
    base, X, y = task(n_per_class=1, n_classes=5, base_noise=0.5)
    model = fit_gda(X[:4], y[:4], base, np.arange(5))
    assert model.decision_function(X).shape == (5, 5)
    assert set(model.blend_scores_) >= {0.0}


def test_reproduce_alpha_option():
    """The harness defaults to alpha auto; paper or a number fix it; anything else is an error."""
    parser = build_parser()
    assert parser.parse_args(["--root", "r"]).alpha == "auto"
    assert parser.parse_args(["--root", "r", "--alpha", "paper"]).alpha == "paper"
    assert parser.parse_args(["--root", "r", "--alpha", "0.5"]).alpha == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--root", "r", "--alpha", "-1"])


# ---------------------------------------------------------------- where auto is the default


@pytest.fixture
def colour_folder(tmp_path):
    """A labelled folder of two colours, three images each, and the tiny model's options."""
    import json

    from PIL import Image

    from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

    rng = np.random.RandomState(0)
    for folder, colour in {"blue": (20, 40, 230), "red": (220, 30, 30)}.items():
        (tmp_path / "data" / folder).mkdir(parents=True)
        for index in range(3):
            pixels = np.clip(np.add(colour, rng.randint(-30, 31, (32, 32, 3))), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "data" / folder
                                                          / f"{index}.png")
    config = tmp_path / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    return tmp_path, ["--model-config", str(config), "--pretrained", "none", "--device", "cpu",
                      "--epochs", "5"]


@pytest.mark.auto_precision
@pytest.mark.parametrize("option, expected, said", [
    ([], "auto", "chosen from the labels"), (["--alpha", "0.5"], 0.5, "fixed by --alpha")])
def test_fit_command_uses_auto_by_default_and_prints_alpha(capsys, colour_folder, option,
                                                           expected, said):
    """fit chooses alpha from the labels unless --alpha fixes it; the summary says which."""
    import joblib

    from sklearn_taskres.cli import main

    root, tiny = colour_folder
    output = root / "model.joblib"
    assert main(["fit", str(root / "data"), "-o", str(output), *tiny, *option]) == 0
    classifier = joblib.load(output)
    assert classifier.alpha == expected
    err = capsys.readouterr().err
    assert f"with alpha {classifier.alpha_:g} ({said})" in err
    if expected != "auto":
        assert classifier.alpha_ == expected


def test_fit_command_refuses_a_bad_alpha(capsys, colour_folder):
    """--alpha that is neither auto nor a number >= 0 is a usage error naming what it got."""
    from sklearn_taskres.cli import main

    root, tiny = colour_folder
    assert main(["fit", str(root / "data"), "-o", str(root / "m.joblib"), *tiny,
                 "--alpha", "-1"]) == 2
    assert "expected 'auto' or a number >= 0; got '-1'" in capsys.readouterr().err


def test_labelling_refits_choose_alpha(tiny_model):
    """The labelling page's refit chooses alpha from the labels, whatever the start model's."""
    from sklearn_taskres import zero_shot_classifier
    from sklearn_taskres.label import refit

    start = zero_shot_classifier(["a", "b", "c"], model=tiny_model, pretrained=None,
                                 device="cpu", precision="fp32", max_iter=5, random_state=0)
    base, X, y = task(n_per_class=2, n_classes=3, n_features=start.base_weights_.shape[1])
    model = refit(start, X, np.array(["a", "b", "c"])[y])
    assert model.alpha == "auto" and model.alpha_ in AUTO_ALPHAS
    assert start.alpha == 0.5  # the start model is unchanged
    assert refit(start, X, np.array(["a", "b", "c"])[y], alpha=0.5).alpha_ == 0.5


def test_one_label_per_class_stays_at_zero_shot_where_zero_shot_labels_right():
    """With one label a class, the bound is scaled by zero-shot's error on the labels."""
    from sklearn_taskres._alpha_selection import choose

    flat = {alpha: (0.3 if alpha else 1.0, 0.01) for alpha in AUTO_ALPHAS}
    assert choose(flat, one_label=True, logit_scale=30.0) == 0.0
    wrong = {0.0: (0.3, 4.3), 0.05: (0.3, 4.3), 0.1: (0.3, 4.4), 0.25: (0.0, 4.9),
             0.5: (0.0, 5.25), 1.0: (0.0, 7.2)}
    assert choose(wrong, one_label=True, logit_scale=30.0) == 0.25  # 0.7 * 0.5, rounded down
    # Without the one-label case, accuracy leads: zero-shot's 0.3 is the best here.
    assert choose(wrong, one_label=False, logit_scale=30.0) == 0.0


def test_the_results_table_shows_gda_when_it_ran():
    """format_table adds GDA columns when the records hold GDA runs, and only then."""
    from sklearn_taskres.reproduce import format_table

    records = [{"dataset": "dtd", "method": "zero-shot", "shots": 0, "seed": None,
                "accuracy": 40.0},
               {"dataset": "dtd", "method": "taskres", "shots": 1, "seed": 1, "accuracy": 50.0}]
    assert "GDA" not in format_table(records, [1], ["dtd"])
    records.append({"dataset": "dtd", "method": "gda", "shots": 1, "seed": 1, "accuracy": 45.0})
    assert "GDA 1-shot" in format_table(records, [1], ["dtd"])
