"""Ratio 3: ``GridSearchCV`` over alphas and folds against one fit on the same images."""

from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sklearn_taskres import clear_feature_cache

from .common import classifier, mark, paired_ratio, ratio_entry, side_by_side

GRID_ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
GRID_FOLDS = 5


def ratio(config, model, data, repeats, device):
    """Ratio 3: GridSearchCV over 5 alphas x 5 folds against one fit, both from a cold cache."""
    estimator = classifier(config, model, data, device)
    # Load and run the encoder once first, so that neither variant pays for that.
    clone(estimator).set_params(max_iter=1).fit(data.fit_paths[:4], data.fit_labels[:4])

    def grid_search():
        clear_feature_cache()
        search = GridSearchCV(estimator, {"alpha": list(GRID_ALPHAS)}, cv=GRID_FOLDS)
        return search.fit(data.fit_paths, data.fit_labels)

    def one_fit():
        clear_feature_cache()
        return clone(estimator).fit(data.fit_paths, data.fit_labels)

    seconds, _ = side_by_side({"grid_search": grid_search, "one_fit": one_fit}, repeats, device)
    n_fits = len(GRID_ALPHAS) * GRID_FOLDS + 1
    return ratio_entry(
        paired_ratio(seconds["grid_search"], seconds["one_fit"]),
        "slow-down: grid-search seconds / one-fit seconds",
        ("<=", 1.3),
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        n_fits=n_fits,
        epochs=config.epochs,
    )


def lines(grid, times):
    """The printed line of ratio 3."""
    return [
        f", GridSearchCV over {len(GRID_ALPHAS)} alphas x {GRID_FOLDS} folds "
        f"({grid['n_fits']} fits with the refit) vs one fit ({grid['model']}, "
        f"{grid['n_images']} images, {grid['epochs']} epochs, cache cold): "
        f"{grid['ratio']:.2f}x the time (grid {times['grid_search']:.2f} s, one fit "
        f"{times['one_fit']:.2f} s)  {mark(grid)}",
    ]
