"""Where the time of sklearn-taskres goes, and how it compares with the alternatives.

Every model is random-initialised (``pretrained=None``): it costs the same
compute as real weights and needs no download. Images are synthetic JPEG files
written to a temporary folder.

The benchmark prints one table, the time of every stage of an end-to-end use
(model load, text encoding, decode, encode, train, predict), then six ratios.
Each ratio compares two variants measured side by side in the same run: the
repetitions are interleaved (in alternating order) and the ratio is the median
of the per-repetition ratios, so that a slow spell of a shared machine hits
both variants alike.

1. residual training: our hand-derived gradient and in-place Adam against
   eager autograd and ``torch.optim.Adam`` with the same batch order;
2. fit: encoding every image once through the cache, then training, against
   an emulation of the official loop, which decodes, augments and encodes every
   training image in every epoch;
3. ``GridSearchCV`` over 5 alphas x 5 folds against one fit on the same images;
4. ``predict`` throughput against the raw encoder on the same images;
5. TaskRes against ``LogisticRegression`` on the same features (accuracy, time);
6. one fit against one pass of decode + encode over its images.

``--config store`` runs the on-disk feature store benchmark instead
(:mod:`taskres_bench.feature_store`).

The modules: :mod:`~taskres_bench.common` (recipe, timing, data, encoders),
one module per measurement (:mod:`~taskres_bench.breakdown` for the table,
:mod:`~taskres_bench.training`, :mod:`~taskres_bench.fit`,
:mod:`~taskres_bench.grid`, :mod:`~taskres_bench.predict`,
:mod:`~taskres_bench.logistic` and :mod:`~taskres_bench.encoding` for the
ratios), :mod:`~taskres_bench.registry` (the ratios, in order),
:mod:`~taskres_bench.configs` (the sizes), :mod:`~taskres_bench.report` (what
is printed and written) and :mod:`~taskres_bench.main` (the command line).

Run ``python benchmarks/run.py --help`` for the options; benchmarks/README.md
explains the configurations, the targets and a result.
"""

import os

# Random-initialised models need no download: never let the Hub client retry a network.
# Set here, before any module of the package imports torch or open_clip.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
