import csv
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from test_fewshot import dassl_fewshot

from sklearn_taskres import TaskResClassifier, TaskResHead, feature_store_info, reproduce
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._feature_store._store import _forget_store
from sklearn_taskres._features import FEATURES, augmented_image_features
from sklearn_taskres.reproduce import (
    _methods,
    _protocols,
    _tables,
    fit_linear_probe,
    format_table,
    main,
    plan_draws,
)
from sklearn_taskres.reproduce._datasets import (
    FEW_SHOT_DATASETS,
    DatasetLayoutError,
    base_and_new_classes,
    load_dataset,
)
from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

SPLIT_SIZES = {"train": 4, "val": 2, "test": 3}


def write_image(path, tint, rng):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(tint + rng.randint(-30, 31, (24, 24, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)


def write_split_dataset(root, folder, image_folder, split_file, classes, seed):
    """A dataset in CoOp's split-file layout; each class has its own colour."""
    rng = np.random.RandomState(seed)
    split = {name: [] for name in SPLIT_SIZES}
    for label, (class_folder, classname) in enumerate(classes):
        tint = rng.randint(0, 256, 3)
        for name, size in SPLIT_SIZES.items():
            for i in range(size):
                relative = f"{class_folder}/{class_folder}_{name}_{i}.png"
                write_image(root / folder / image_folder / relative, tint, rng)
                split[name].append([relative, label, classname])
    (root / folder / split_file).write_text(json.dumps(split))


EUROSAT = [("AnnualCrop", "Annual Crop Land"), ("Forest", "Forest"), ("River", "River")]
DTD = [("banded", "banded"), ("dotted", "dotted"), ("striped", "striped"), ("woven", "woven")]


@pytest.fixture
def coop_root(tmp_path):
    root = tmp_path / "data"
    write_split_dataset(root, "eurosat", "2750", "split_zhou_EuroSAT.json", EUROSAT, seed=0)
    write_split_dataset(root, "dtd", "images", "split_zhou_DescribableTextures.json", DTD,
                        seed=1)
    return root


@pytest.fixture(autouse=True)
def quick_linear_probe(monkeypatch):
    """A shorter C search: the harness's plumbing is under test here, not the search."""
    monkeypatch.setattr(_methods, "LINEAR_PROBE_GRID", (1e2, 1.0, 1e-2))
    monkeypatch.setattr(_methods, "LINEAR_PROBE_REFINE_STEPS", 1)
    monkeypatch.setattr(_methods, "LINEAR_PROBE_MAX_ITER", 100)


@pytest.fixture
def model_config(tmp_path):
    path = tmp_path / f"{TINY_CLIP_NAME}.json"
    path.write_text(json.dumps(TINY_CLIP_CONFIG))
    return path


def harness_args(root, output, config, *extra):
    return [
        "--root", str(root), "--model", TINY_CLIP_NAME, "--pretrained", "none",
        "--model-config", str(config), "--device", "cpu", "--output", str(output),
        "--epochs", "5", *extra,
    ]


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_end_to_end_table_results_and_disk_cache(
    coop_root, model_config, tmp_path, encoded_rows, capsys
):
    """Two datasets end to end: a table, CSV/JSON rows, and a second run that encodes nothing."""
    output = tmp_path / "results"
    args = harness_args(coop_root, output, model_config, "--datasets", "eurosat", "dtd",
                        "--shots", "1", "2", "--seeds", "1", "2")
    FEATURES.clear()
    assert main(args) == 0
    first_out = capsys.readouterr().out
    first_rows = encoded_rows["rows"]

    header = first_out.splitlines()[0]
    for title in ["dataset", "zero-shot", "LP 1-shot", "LP 2-shot", "TaskRes 1-shot",
                  "TaskRes 2-shot"]:
        assert title in header
    assert re.search(r"^eurosat\s+\d+\.\d\d\s", first_out, re.MULTILINE)
    assert re.search(r"^dtd\s+\d+\.\d\d\s", first_out, re.MULTILINE)
    assert re.search(r"paper RN50: TaskRes .*64\.55\s+66\.89$", first_out, re.MULTILINE)
    assert re.search(r"paper RN50: zero-shot CLIP\s+58\.77$", first_out, re.MULTILINE)
    assert "mean of 11" not in first_out  # only two of the eleven datasets ran

    rows = read_csv(output / "results.csv")
    runs = json.loads((output / "results.json").read_text())["runs"]
    # Per dataset: one zero-shot row, and 2 shots x 2 seeds for each trained method.
    assert len(rows) == len(runs) == 2 * (1 + 2 * 2 * 2)
    for dataset, n_classes in (("eurosat", 3), ("dtd", 4)):
        mine = [row for row in rows if row["dataset"] == dataset]
        assert sorted((r["method"], r["shots"], r["seed"]) for r in mine) == sorted(
            [("zero-shot", "0", "")]
            + [(m, s, e) for m in ("linear-probe", "taskres") for s in "12" for e in "12"]
        )
        assert {r["n_test"] for r in mine} == {str(3 * n_classes)}
        for row in mine:
            if row["method"] != "zero-shot":
                assert row["n_train"] == str(int(row["shots"]) * n_classes)
    assert all(0 <= float(row["accuracy"]) <= 100 for row in rows)
    assert {r["epochs"] for r in runs if r["method"] == "taskres"} == {5}
    assert {r["C"] for r in runs if r["method"] == "linear-probe"} <= {
        10.0**k for k in (-2, -1, 0, 1, 2)
    }

    store = feature_store_info(output / "features", verify=True)
    n_prompts = 3 + 4  # one prompt per class (no class name has an underscore to replace)
    assert first_rows == store["n_vectors"] - n_prompts > 0  # every image encoded once
    assert store["n_damaged"] == 0 and store["n_files"] == 3

    FEATURES.clear()
    assert main(args) == 0
    second_out = capsys.readouterr().out
    assert encoded_rows["rows"] == first_rows  # the second run encoded nothing
    assert second_out == first_out  # and, on cached features, reproduced every number


def test_augmented_views_are_cached_and_train_taskres_only(
    coop_root, model_config, tmp_path, encoded_rows, monkeypatch
):
    """--augment-views 2: TaskRes trains on 2 cached views of each drawn image, encoded once."""
    fitted = []
    fit_views = TaskResHead._fit_views

    def spy(self, views, y, *args, **kwargs):
        fitted.append(views.shape)
        return fit_views(self, views, y, *args, **kwargs)

    monkeypatch.setattr(TaskResHead, "_fit_views", spy)
    output = tmp_path / "results"
    args = harness_args(coop_root, output, model_config, "--datasets", "eurosat",
                        "--shots", "1", "--seeds", "1", "2", "--augment-views", "2")
    dataset = load_dataset(coop_root, "eurosat")
    draws = plan_draws(dataset, [1], [1, 2])
    drawn = np.unique(np.concatenate([train for train, _, _ in draws.values()]))
    eval_crops = {"test": set(range(len(dataset.splits["test"])))}
    for train, val_split, val in draws.values():
        eval_crops.setdefault("train", set()).update(train.tolist())
        eval_crops.setdefault(val_split, set()).update(val.tolist())
    assert len(drawn) < len(dataset.splits["train"])  # some training images get no views

    FEATURES.clear()
    assert main(args) == 0
    first_rows = encoded_rows["rows"]
    assert first_rows == sum(map(len, eval_crops.values())) + 2 * len(drawn)
    assert fitted == [(2, 3, 32)] * 2  # each seed: 2 views of 1 shot x 3 classes
    encoder = load_encoder(TINY_CLIP_NAME, None, torch.device("cpu"))
    views = augmented_image_features(
        encoder, [dataset.directory / dataset.splits["train"].paths[p] for p in drawn], 2,
        reproduce.VIEW_SEED, cache_dir=output / "features",
    )
    assert views.shape == (2, len(drawn), 32)
    assert encoded_rows["rows"] == first_rows  # the views were in the store
    rows = read_csv(output / "results.csv")
    assert {(r["method"], r["augment_views"]) for r in rows} == {
        ("zero-shot", ""), ("linear-probe", ""), ("taskres", "2")
    }
    settings = json.loads((output / "results.json").read_text())["settings"]
    assert (settings["augment_views"], settings["view_seed"]) == (2, 0)

    FEATURES.clear()
    assert main(args) == 0
    assert encoded_rows["rows"] == first_rows  # the second run encoded nothing
    accuracies = [(r["method"], r["seed"], r["accuracy"]) for r in rows]
    assert [(r["method"], r["seed"], r["accuracy"])
            for r in read_csv(output / "results.csv")] == accuracies

    # Without views: nothing to encode, and the eval-crop methods give the same numbers.
    FEATURES.clear()
    fitted.clear()
    assert main(args[:-2]) == 0
    assert encoded_rows["rows"] == first_rows
    assert fitted == [(1, 3, 32)] * 2
    plain = read_csv(output / "results.csv")
    assert [(r["method"], r["seed"], r["accuracy"]) for r in plain
            if r["method"] != "taskres"] == [a for a in accuracies if a[0] != "taskres"]
    assert {r["augment_views"] for r in plain if r["method"] == "taskres"} == {"0"}


def test_changed_image_is_encoded_again(coop_root, model_config, tmp_path, encoded_rows):
    """An image replaced on disk misses the cache; the others still hit."""
    output = tmp_path / "results"
    args = harness_args(coop_root, output, model_config, "--datasets", "eurosat",
                        "--shots", "1", "--seeds", "1")
    FEATURES.clear()
    assert main(args) == 0
    before = encoded_rows["rows"]
    test_image = coop_root / "eurosat" / "2750" / "Forest" / "Forest_test_0.png"
    Image.new("RGB", (30, 30), (255, 0, 255)).save(test_image)
    FEATURES.clear()
    assert main(args) == 0
    assert encoded_rows["rows"] == before + 1


def test_imagenet_layout_and_distribution_shift(tmp_path, model_config, monkeypatch, capsys):
    """ImageNet-A and -V2 are evaluated by the ImageNet classifiers (A: on its 2 classes)."""
    root = tmp_path / "data"
    rng = np.random.RandomState(0)
    wnids = ["n01440764", "n01443537", "n01484850"]
    names = "".join(
        f"{w} {n}\n" for w, n in zip(wnids, ["tench", "goldfish", "white shark"], strict=True)
    )
    tints = {wnid: rng.randint(0, 256, 3) for wnid in wnids}
    for folder, count in (("train", 3), ("val", 2)):
        for wnid in wnids:
            for i in range(count):
                write_image(root / "imagenet" / "images" / folder / wnid / f"{i}.JPEG",
                            tints[wnid], rng)
    (root / "imagenet" / "classnames.txt").write_text(names)
    adversarial = root / "imagenet-adversarial"
    for wnid in wnids[1:]:
        for i in range(2):
            write_image(adversarial / "imagenet-a" / wnid / f"a{i}.jpg", tints[wnid], rng)
    (adversarial / "imagenet-a" / "README.txt").write_text("not a class")
    (adversarial / "classnames.txt").write_text(names)
    # ImageNetV2 names its class folders by ImageNet class index.
    version2 = root / "imagenetv2"
    for index, wnid in enumerate(wnids):
        write_image(version2 / "imagenetv2-matched-frequency-format-val" / str(index) / "v.jpeg",
                    tints[wnid], rng)
    (version2 / "classnames.txt").write_text(names)

    calls = []
    restrict_classes = TaskResHead.restrict_classes

    def spy(self, classes):
        calls.append(list(classes))
        return restrict_classes(self, classes)

    monkeypatch.setattr(TaskResHead, "restrict_classes", spy)
    output = tmp_path / "results"
    args = harness_args(root, output, model_config, "--datasets", "imagenet_a", "imagenet_v2",
                        "--shots", "1", "--seeds", "3")
    assert main(args) == 0
    assert "adding imagenet" in capsys.readouterr().err

    assert calls == [wnids[1:]]  # V2 has all classes: the head is used as it is
    runs = json.loads((output / "results.json").read_text())["runs"]
    for dataset, n_test in (("imagenet_a", 4), ("imagenet_v2", 3)):
        shifted = [run for run in runs if run["dataset"] == dataset]
        assert sorted((run["method"], run["trained_on"]) for run in shifted) == [
            ("linear-probe", "imagenet"), ("taskres", "imagenet"), ("zero-shot", dataset)
        ]
        assert {run["n_test"] for run in shifted} == {n_test}
    trained = [run for run in runs if run["dataset"] == "imagenet" and run["shots"] == 1]
    assert {run["learning_rate"] for run in trained if run["method"] == "taskres"} == {2e-4}


def test_imagenet_validation_images_come_from_unused_training_images(tmp_path):
    """ImageNet has no val split: validation shots are drawn from the other train images."""
    root = tmp_path / "data"
    rng = np.random.RandomState(0)
    for folder in ("train", "val"):
        for wnid in ("n1", "n2"):
            for i in range(6):
                write_image(root / "imagenet" / "images" / folder / wnid / f"{i}.png",
                            np.array([0, 0, 0]), rng)
    (root / "imagenet" / "classnames.txt").write_text("n1 cat\nn2 dog\n")
    dataset = load_dataset(root, "imagenet")
    assert dataset.classes.tolist() == ["n1", "n2"] and dataset.classnames == ["cat", "dog"]
    assert len(dataset.splits["test"]) == 12 and "val" not in dataset.splits
    draws = plan_draws(dataset, [1, 2], [1, 2])
    for (shots, _), (train, val_split, val) in draws.items():
        assert val_split == "train"
        assert not set(train.tolist()) & set(val.tolist())
        assert len(val) == 2 * min(shots, 4)


def test_fgvc_aircraft_layout(tmp_path):
    """FGVC-Aircraft is read from variants.txt and the images_variant_*.txt lists."""
    directory = tmp_path / "fgvc_aircraft"
    (directory / "images").mkdir(parents=True)
    (directory / "variants.txt").write_text("707-320\nCessna 172\nF-16A/B\n")
    (directory / "images_variant_train.txt").write_text("0001 Cessna 172\n0002 F-16A/B\n")
    (directory / "images_variant_val.txt").write_text("0003 707-320\n")
    (directory / "images_variant_test.txt").write_text("0004 707-320\n\n")
    dataset = load_dataset(tmp_path, "fgvc_aircraft")
    assert dataset.classnames == ["707-320", "Cessna 172", "F-16A/B"]
    assert dataset.splits["train"].paths == ["images/0001.jpg", "images/0002.jpg"]
    assert dataset.splits["train"].labels.tolist() == [1, 2]
    assert len(dataset.splits["test"]) == 1

    (directory / "images_variant_val.txt").write_text("0003 Boeing 999\n")
    with pytest.raises(DatasetLayoutError, match="with a variant listed in variants.txt; got"):
        load_dataset(tmp_path, "fgvc_aircraft")


def test_missing_split_file_names_the_expected_path(tmp_path, model_config, capsys):
    """A missing split file is an error that names the path it expected."""
    (tmp_path / "eurosat" / "2750").mkdir(parents=True)
    expected = tmp_path / "eurosat" / "split_zhou_EuroSAT.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(expected))):
        load_dataset(tmp_path, "eurosat")
    args = harness_args(tmp_path, tmp_path / "out", model_config, "--datasets", "eurosat")
    assert main(args) == 2
    assert f"expected the eurosat split file at {expected}" in capsys.readouterr().err


def test_missing_image_names_the_image(coop_root, model_config, tmp_path, capsys):
    """An image listed by the split but absent from disk is named in the error."""
    missing = coop_root / "dtd" / "images" / "woven" / "woven_test_2.png"
    missing.unlink()
    args = harness_args(coop_root, tmp_path / "out", model_config, "--datasets", "dtd",
                        "--shots", "1", "--seeds", "1")
    assert main(args) == 2
    assert f"expected the image {missing}" in capsys.readouterr().err


def test_split_file_with_conflicting_class_names(tmp_path):
    """One label with two class names is a layout error that names both."""
    directory = tmp_path / "dtd"
    directory.mkdir()
    split = {"train": [["a/1.jpg", 0, "banded"]], "val": [["a/2.jpg", 0, "striped"]],
             "test": []}
    (directory / "split_zhou_DescribableTextures.json").write_text(json.dumps(split))
    with pytest.raises(DatasetLayoutError, match="expected label 0 to be named 'banded'"):
        load_dataset(tmp_path, "dtd")


def test_invalid_shots_are_rejected(tmp_path, capsys):
    """--shots takes positive integers."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path), "--shots", "0"])
    assert exit_info.value.code == 2
    assert "expected an integer >= 1; got 0" in capsys.readouterr().err


def test_negative_augment_views_are_rejected(tmp_path, capsys):
    """--augment-views takes integers >= 0."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path), "--augment-views", "-1"])
    assert exit_info.value.code == 2
    assert "expected an integer >= 0; got -1" in capsys.readouterr().err


def test_the_names_of_the_former_module_are_importable_from_the_package():
    """Every public name of the single-module harness is still sklearn_taskres.reproduce's."""
    names = [
        "Benchmark", "CountingEncoder", "EncodedSplit", "build_parser", "draw_record",
        "encode_split", "fit_linear_probe", "format_base_to_new_table", "format_table",
        "harmonic_mean", "head_for_classes", "linear_probe_predict", "main", "plan_draws",
        "prompt_classnames", "taskres_settings", "write_results", "zero_shot_predict",
        "CSV_FIELDS", "ENCODE_CHUNK", "LINEAR_PROBE_GRID", "LINEAR_PROBE_MAX_ITER",
        "LINEAR_PROBE_REFINE_STEPS", "MAX_VALIDATION_SHOTS", "METHOD_TITLES",
        "PUBLISHED_BASE_TO_NEW_MEAN", "PUBLISHED_RN50_MEAN", "VIEW_SEED",
    ]
    assert set(names) <= set(reproduce.__all__)
    for name in names + ["ALL_DATASETS", "DatasetLayoutError", "FEW_SHOT_DATASETS",
                         "base_and_new_classes", "load_dataset"]:
        assert getattr(reproduce, name) is not None, name
    # The constants documented in the package are the objects its modules use.
    assert reproduce.PUBLISHED_RN50_MEAN is _tables.PUBLISHED_RN50_MEAN
    assert reproduce.PUBLISHED_RN50_MEAN["TaskRes"][16] == 75.83


def test_linear_probe_picks_the_best_validation_c():
    """The chosen C is at least as good on validation as every value of the coarse grid."""
    rng = np.random.RandomState(0)
    centres = rng.normal(size=(3, 8))
    y_train, y_val = np.repeat([0, 1, 2], 2), np.repeat([0, 1, 2], 6)
    X_train = centres[y_train] + 0.9 * rng.normal(size=(6, 8))
    X_val = centres[y_val] + 0.9 * rng.normal(size=(18, 8))
    model, C = fit_linear_probe(X_train, y_train, X_val, y_val)
    chosen = np.mean(model.predict(X_val) == y_val)
    assert model.C == C and 1e-7 < C < 1e7
    for grid_c in _methods.LINEAR_PROBE_GRID:
        other = LogisticRegression(C=grid_c, max_iter=1000).fit(X_train, y_train)
        assert chosen >= np.mean(other.predict(X_val) == y_val)


def test_table_has_the_eleven_dataset_mean_when_all_ran():
    """The mean row averages the eleven datasets per seed, then reports mean and std."""
    records = []
    for offset, dataset in enumerate(FEW_SHOT_DATASETS):
        records.append({"dataset": dataset, "method": "zero-shot", "shots": 0, "seed": None,
                        "accuracy": 50.0 + offset})
        for seed, accuracy in ((1, 60.0), (2, 70.0)):
            records.append({"dataset": dataset, "method": "taskres", "shots": 1, "seed": seed,
                            "accuracy": accuracy + offset})
    table = format_table(records, [1], list(FEW_SHOT_DATASETS))
    mean_row = next(line for line in table.splitlines() if line.startswith("mean of 11"))
    assert mean_row.split()[3:] == ["55.00", "-", "70.00±5.00"]
    assert re.search(r"^eurosat\s+59\.00\s+-\s+74\.00±5\.00$", table, re.MULTILINE)
    assert "paper RN50: Tip-Adapter-F" in table and "64.60" in table


def test_undecodable_image_is_named(coop_root, model_config, tmp_path, capsys):
    """An image file that is not an image fails with its path, not a traceback."""
    broken = coop_root / "eurosat" / "2750" / "River" / "River_test_1.png"
    broken.write_bytes(b"not a png")
    args = harness_args(coop_root, tmp_path / "out", model_config, "--datasets", "eurosat",
                        "--shots", "1", "--seeds", "1")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "eurosat test split:" in err and "cannot decode the image file" in err
    assert str(broken) in err


def test_damaged_features_are_encoded_again_never_trusted(coop_root, model_config, tmp_path,
                                                           encoded_rows, capsys):
    """Damaged vectors in the store are detected, encoded again and stored; nothing else is."""
    output = tmp_path / "results"
    args = harness_args(coop_root, output, model_config, "--datasets", "eurosat",
                        "--shots", "1", "--seeds", "1")
    FEATURES.clear()
    assert main(args) == 0
    first = encoded_rows["rows"]
    (data,) = (output / "features" / "shards").glob("*.dat")
    content = data.read_bytes()
    data.write_bytes(content[:8] + bytes(len(content) - 8))  # every vector zeroed
    FEATURES.clear()
    _forget_store(output / "features")  # as a new process would
    capsys.readouterr()
    assert main(args) == 0
    assert encoded_rows["rows"] == 2 * first  # every image again, the prompts too
    assert "[eurosat] test: encoded 9 of 9 images\n" in capsys.readouterr().err
    info = feature_store_info(output / "features", verify=True)
    assert info["n_vectors"] == first + 3  # the images and the 3 prompts
    FEATURES.clear()
    _forget_store(output / "features")
    assert main(args) == 0
    assert encoded_rows["rows"] == 2 * first


def test_a_fitted_classifier_and_the_harness_share_the_store(
    coop_root, model_config, tiny_model, tmp_path, encoded_rows, capsys
):
    """TaskResClassifier(cache_dir=D) on a dataset's images, then the harness on D: no encoding."""
    paths, labels, classnames = _eurosat_images(coop_root)
    cache = tmp_path / "shared"
    FEATURES.clear()
    assert tiny_model == TINY_CLIP_NAME
    # fp32, the harness's precision: "auto" would be bf16 on a CPU with bf16 units.
    TaskResClassifier(classnames, model=tiny_model, pretrained=None, precision="fp32",
                      device="cpu", max_iter=2, cache_dir=str(cache)).fit(paths, labels)
    assert encoded_rows["rows"] == len(paths) == 27
    (tmp_path / "old" / "features" / "eurosat").mkdir(parents=True)
    (tmp_path / "old" / "features" / "eurosat" / "test-RN50.npz").write_bytes(b"former")
    FEATURES.clear()
    _forget_store(cache)
    args = harness_args(coop_root, tmp_path / "old", model_config, "--datasets", "eurosat",
                        "--shots", "1", "2", "--seeds", "1", "2", "--cache-dir", str(cache))
    assert main(args) == 0
    assert encoded_rows["rows"] == 27  # the harness encoded nothing
    err = capsys.readouterr().err
    assert "0 image(s) encoded" in err and f"features in {cache}" in err
    assert not (tmp_path / "old" / "features" / "shards").exists()

    FEATURES.clear()
    main(harness_args(coop_root, tmp_path / "old", model_config, "--datasets", "eurosat",
                      "--shots", "1", "--seeds", "1"))
    assert "ignoring 1 per-split feature file(s)" in capsys.readouterr().err


def _eurosat_images(coop_root):
    dataset = load_dataset(coop_root, "eurosat")
    paths, labels = [], []
    for split in dataset.splits.values():
        paths += [dataset.directory / path for path in split.paths]
        labels += split.labels.tolist()
    return paths, labels, dataset.classnames


def test_the_store_serves_the_harness_only_in_the_precision_it_was_encoded_in(
    coop_root, model_config, tiny_model, tmp_path, encoded_rows, capsys
):
    """bf16 features of a classifier: the fp32 harness encodes again, --precision bf16 does not."""
    paths, labels, classnames = _eurosat_images(coop_root)
    cache = tmp_path / "shared"
    FEATURES.clear()
    TaskResClassifier(classnames, model=tiny_model, pretrained=None, precision="bf16",
                      device="cpu", max_iter=2, cache_dir=str(cache)).fit(paths, labels)
    assert encoded_rows["rows"] == len(paths) == 27
    encoded = {}
    for precision in ("bf16", "fp32"):
        FEATURES.clear()
        _forget_store(cache)
        encoded_rows["rows"] = 0
        args = harness_args(coop_root, tmp_path / precision, model_config, "--datasets",
                            "eurosat", "--shots", "1", "--seeds", "1", "--cache-dir",
                            str(cache), "--precision", precision)
        assert main(args) == 0
        encoded[precision] = encoded_rows["rows"]
        assert f"{encoded[precision]} image(s) encoded" in capsys.readouterr().err
        settings = json.loads((tmp_path / precision / "results.json").read_text())["settings"]
        assert settings["precision"] == precision
    assert encoded["bf16"] == 0 and encoded["fp32"] > 0, encoded


@pytest.mark.auto_precision
def test_the_harness_precision_auto_shares_the_features_of_auto_classifiers(
    coop_root, model_config, tiny_model, tmp_path, encoded_rows, capsys
):
    """A classifier and the harness both at "auto" on one machine: the harness encodes nothing."""
    paths, labels, classnames = _eurosat_images(coop_root)
    cache = tmp_path / "shared"
    FEATURES.clear()
    TaskResClassifier(classnames, model=tiny_model, pretrained=None, device="cpu",
                      max_iter=2, cache_dir=str(cache)).fit(paths, labels)
    FEATURES.clear()
    _forget_store(cache)
    encoded_rows["rows"] = 0
    assert main(harness_args(coop_root, tmp_path / "out", model_config, "--datasets", "eurosat",
                             "--shots", "1", "--seeds", "1", "--cache-dir", str(cache),
                             "--precision", "auto")) == 0
    assert encoded_rows["rows"] == 0
    capsys.readouterr()


# ---------------------------------------------------------------- draws, prompts, base-to-new

PETS = [("american_bulldog", "american_bulldog"), ("pug", "pug"),
        ("great_pyrenees", "great_pyrenees"), ("shiba_inu", "shiba_inu"),
        ("saint_bernard", "saint_bernard")]


@pytest.fixture
def pets_root(tmp_path):
    root = tmp_path / "data"
    write_split_dataset(root, "oxford_pets", "images", "split_zhou_OxfordPets.json", PETS,
                        seed=2)
    return root


def split_items(root, folder, split_file, split):
    """(image path, label) of a split, in the split file's order."""
    content = json.loads((root / folder / split_file).read_text())
    return [(path, label) for path, label, _ in content[split]]


def test_dassl_draws_by_default_and_recorded(coop_root, model_config, tmp_path):
    """The harness draws Dassl's images (training, then validation) and records their paths."""
    output = tmp_path / "results"
    args = harness_args(coop_root, output, model_config, "--datasets", "eurosat",
                        "--shots", "1", "2", "--seeds", "1", "2")
    assert main(args) == 0
    content = json.loads((output / "results.json").read_text())
    assert content["settings"]["draws"] == "dassl"
    train = split_items(coop_root, "eurosat", "split_zhou_EuroSAT.json", "train")
    val = split_items(coop_root, "eurosat", "split_zhou_EuroSAT.json", "val")
    recorded = {(d["shots"], d["seed"]): d for d in content["draws"]}
    assert sorted(recorded) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for (shots, seed), draw in recorded.items():
        expected_train, expected_val = dassl_fewshot([(train, shots), (val, min(shots, 4))],
                                                     seed)
        assert draw["dataset"] == "eurosat" and draw["draws"] == "dassl"
        assert draw["train"] == [f"2750/{path}" for path, _ in expected_train]
        assert draw["val_split"] == "val"
        assert draw["val"] == [f"2750/{path}" for path, _ in expected_val]

    assert main(args + ["--draws", "numpy"]) == 0
    content = json.loads((output / "results.json").read_text())
    numpy_draws = {(d["shots"], d["seed"]): d["train"] for d in content["draws"]}
    assert {d["draws"] for d in content["draws"]} == {"numpy"}
    assert all(paths == sorted(paths) for paths in numpy_draws.values())
    assert any(numpy_draws[key] != recorded[key]["train"] for key in numpy_draws)


def test_imagenet_dassl_draw_is_the_training_draw_alone(tmp_path):
    """ImageNet: Dassl draws the training set only; the validation draw comes after it."""
    root = tmp_path / "data"
    rng = np.random.RandomState(0)
    for wnid, count in (("n2", 7), ("n1", 5)):
        for i in range(count):
            write_image(root / "imagenet" / "images" / "train" / wnid / f"{i}.png",
                        np.array([0, 0, 0]), rng)
        write_image(root / "imagenet" / "images" / "val" / wnid / "v.png", np.zeros(3), rng)
    (root / "imagenet" / "classnames.txt").write_text("n1 cat\nn2 dog\n")
    dataset = load_dataset(root, "imagenet")
    items = list(zip(dataset.splits["train"].paths, dataset.splits["train"].labels.tolist(),
                     strict=True))
    for seed in (1, 2, 3):
        ((train, val_split, val),) = plan_draws(dataset, [2], [seed]).values()
        (expected,) = dassl_fewshot([(items, 2)], seed)
        assert [items[p] for p in train] == expected
        assert val_split == "train" and not set(train.tolist()) & set(val.tolist())


def test_official_prompt_names(pets_root, model_config, tmp_path, monkeypatch):
    """TaskRes's base keeps the underscores, zero-shot CLIP replaces them; --class-names spaces."""
    calls = []
    text_base = _protocols.text_base

    def spy(encoder, names, templates, **options):
        calls.append(list(names))
        return text_base(encoder, names, templates, **options)

    monkeypatch.setattr(_protocols, "text_base", spy)
    args = harness_args(pets_root, tmp_path / "out", model_config, "--datasets", "oxford_pets",
                        "--shots", "1", "--seeds", "1")
    assert main(args) == 0
    as_held = [name for name, _ in PETS]
    with_spaces = [name.replace("_", " ") for name in as_held]
    assert calls == [with_spaces, as_held]  # zero-shot first, then TaskRes's base
    calls.clear()
    assert main(args + ["--class-names", "spaces"]) == 0
    assert calls == [with_spaces]  # one base serves both
    settings = json.loads((tmp_path / "out" / "results.json").read_text())["settings"]
    assert settings["class_names"] == "spaces"
    calls.clear()
    assert main(args + ["--protocol", "base2new"]) == 0
    assert calls == [with_spaces, as_held]  # base-to-new names its rows the same way


def test_base_and_new_classes_split_as_coop():
    """Sorted labels: the first ceil(n/2) are base, the rest new."""
    base, new = base_and_new_classes([3, 0, 4, 1, 2, 1, 0])
    assert base.tolist() == [0, 1, 2] and new.tolist() == [3, 4]
    base, new = base_and_new_classes(["n3", "n1", "n2", "n4"])
    assert base.tolist() == ["n1", "n2"] and new.tolist() == ["n3", "n4"]


def test_base_to_new_protocol(pets_root, model_config, tmp_path, monkeypatch, capsys):
    """TaskRes learns the 3 base classes of 5; new accuracy is its text base's, H their mean."""
    fitted = []
    fit = TaskResHead.fit

    def spy(self, X, y):
        fitted.append((self.classes.tolist(), sorted(set(np.asarray(y).tolist())), len(y)))
        return fit(self, X, y)

    monkeypatch.setattr(TaskResHead, "fit", spy)
    output = tmp_path / "results"
    args = harness_args(pets_root, output, model_config, "--datasets", "oxford_pets",
                        "--shots", "2", "--seeds", "1", "2", "--protocol", "base2new",
                        "--class-names", "spaces")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert fitted == [([0, 1, 2], [0, 1, 2], 6)] * 2
    runs = json.loads((output / "results.json").read_text())["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [
        ("zero-shot", None), ("taskres", 1), ("taskres", 2)
    ]
    for run in runs:
        assert "accuracy" not in run  # the three figures are named for what they are
        assert run["harmonic_mean"] == pytest.approx(
            reproduce.harmonic_mean(run["base_accuracy"], run["new_accuracy"]), abs=1e-3
        )
        assert run["n_test"] == 15
    assert reproduce.read_results(output)["runs"] == runs  # read back as written
    rows = read_csv(output / "results.csv")
    assert [(row["accuracy"], row["harmonic_mean"]) for row in rows] == [
        ("", str(run["harmonic_mean"])) for run in runs
    ]
    # With the same names, TaskRes's new classes are zero-shot's: no residual was learned there.
    assert {run["new_accuracy"] for run in runs} == {runs[0]["new_accuracy"]}
    assert "linear-probe" not in {run["method"] for run in runs}
    assert "TaskRes 2-shot base" in out.splitlines()[0]
    assert re.search(r"CoCoOp base 80\.47, new 71\.69, H 75\.83", out)
    assert re.search(r"^oxford_pets(\s+\d+\.\d\d){6}$", out, re.MULTILINE)


def test_results_of_earlier_versions_are_read_with_the_harmonic_mean_named(tmp_path):
    """A former base-to-new run's accuracy (its harmonic mean) reads as harmonic_mean."""
    former = {
        "settings": {"protocol": "base2new", "datasets": ["dtd"]},
        "runs": [
            {"dataset": "dtd", "method": "zero-shot", "shots": 0, "seed": None,
             "accuracy": 48.0, "base_accuracy": 60.0, "new_accuracy": 40.0, "n_test": 9},
            {"dataset": "dtd", "method": "taskres", "shots": 2, "seed": 1,
             "accuracy": 68.5714, "base_accuracy": 80.0, "new_accuracy": 60.0, "n_test": 9},
        ],
        "draws": [{"dataset": "dtd", "shots": 2, "seed": 1, "train": ["a.jpg"]}],
    }
    (tmp_path / "results.json").write_text(json.dumps(former))
    results = reproduce.read_results(tmp_path / "results.json")
    assert results["settings"] == former["settings"]
    assert results["draws"] == former["draws"]
    assert [run.get("accuracy") for run in results["runs"]] == [None, None]
    assert [run["harmonic_mean"] for run in results["runs"]] == [48.0, 68.5714]
    assert results["runs"][1]["n_test"] == 9
    table = reproduce.format_base_to_new_table(results["runs"], [2], ["dtd"])
    assert re.search(r"^dtd\s+60\.00\s+40\.00\s+48\.00\s+80\.00\s+60\.00\s+68\.57$", table,
                     re.MULTILINE)

    # A few-shot file is read as it is.
    few_shot = {"settings": {"protocol": "fewshot"}, "runs": [
        {"dataset": "dtd", "method": "taskres", "shots": 1, "seed": 1, "accuracy": 50.0}
    ], "draws": []}
    (tmp_path / "results.json").write_text(json.dumps(few_shot))
    assert reproduce.read_results(tmp_path) == few_shot

    (tmp_path / "results.json").write_text('{"runs": 3}')
    with pytest.raises(ValueError, match=r"results\.json of a run, with a list of runs; got"):
        reproduce.read_results(tmp_path)
    (tmp_path / "results.json").write_text("not json")
    with pytest.raises(ValueError, match=r"to be the results\.json of a run; got Expecting"):
        reproduce.read_results(tmp_path)


def test_base_to_new_rejects_the_imagenet_variants(tmp_path, capsys):
    """The ImageNet variants have no base-to-new split in CoCoOp's protocol."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--root", str(tmp_path), "--protocol", "base2new", "--datasets", "imagenet_a"])
    assert exit_info.value.code == 2
    assert "expected --protocol base2new with few-shot datasets only; got imagenet_a" in (
        capsys.readouterr().err
    )


def test_a_local_dir_model_with_the_default_pretrained(coop_root, tiny_folder, tmp_path, capsys):
    """--model local-dir:PATH takes the folder's config and weights; its features are stored."""
    output = tmp_path / "results"
    args = ["--root", str(coop_root), "--model", f"local-dir:{tiny_folder}", "--device", "cpu",
            "--output", str(output), "--epochs", "2", "--datasets", "eurosat", "--shots", "1",
            "--seeds", "1"]
    assert main(args) == 0, capsys.readouterr().err
    assert "15 image(s) encoded" in capsys.readouterr().err
    assert feature_store_info(output / "features")["n_vectors"] > 15  # the prompts too
