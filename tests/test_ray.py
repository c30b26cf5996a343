"""sklearn_taskres.ray on a real local Ray instance (2 CPUs, shared by the module's tests)."""

import base64
import importlib
import io
import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
from helpers import make_dataset
from PIL import Image

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from sklearn_taskres import TaskResClassifier  # noqa: E402
from sklearn_taskres.ray import encode_dataset, fit_dataset, predict_dataset  # noqa: E402

NAMES = ["red", "green", "blue"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return make_dataset(n_per_class=20, n_classes=3, seed=11)


def _classifier(tiny_model, **params):
    params = {"pretrained": None, "max_iter": 20, "learning_rate": 1e-2, "device": "cpu",
              "random_state": 0, **params}
    return TaskResClassifier(NAMES, model=tiny_model, **params)


@pytest.fixture(scope="module")
def fitted(tiny_model, data):
    return _classifier(tiny_model).fit(*data)


def _rows(images, labels=None, **columns):
    rows = []
    for index, image in enumerate(images):
        row = {"id": index, "image": image}
        if labels is not None:
            row["label"] = labels[index]
        row.update({name: values[index] for name, values in columns.items()})
        rows.append(row)
    return rows


def _by_id(rows):
    return [row for row in sorted(rows, key=lambda row: row["id"])]


@pytest.mark.auto_precision
def test_predict_dataset_adds_labels_and_probabilities(fitted, data):
    """Every row and column comes back, with the labels and probabilities of predict."""
    images, y = data
    dataset = ray.data.from_items(_rows(images, note=[f"n{i}" for i in range(len(images))]))
    rows = _by_id(predict_dataset(fitted, dataset, proba=True, concurrency=1).take_all())
    assert [row["id"] for row in rows] == list(range(len(images)))
    assert set(rows[0]) == {"id", "image", "note", "label", "proba"}
    assert [row["note"] for row in rows] == [f"n{i}" for i in range(len(images))]
    np.testing.assert_array_equal(rows[5]["image"], images[5])
    np.testing.assert_array_equal([row["label"] for row in rows], fitted.predict(images))
    np.testing.assert_allclose(np.stack([row["proba"] for row in rows]),
                               fitted.predict_proba(images), rtol=1e-5, atol=1e-7)


@pytest.mark.auto_precision
def test_predict_dataset_reads_paths_and_names_a_corrupt_file(fitted, data, tmp_path):
    """A column of file paths is decoded by the workers; a corrupt file is named."""
    images, _ = data
    paths = []
    for index, image in enumerate(images[:12]):
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    dataset = ray.data.from_items([{"id": i, "path": p} for i, p in enumerate(paths)])
    rows = _by_id(predict_dataset(fitted, dataset, image_column="path",
                                  concurrency=1).take_all())
    np.testing.assert_array_equal([row["label"] for row in rows], fitted.predict(paths))

    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    broken = ray.data.from_items([{"path": p} for p in [*paths[:3], str(tmp_path / "broken.png")]])
    with pytest.raises(ValueError, match=r"a row of the 'path' column: cannot decode the image "
                       r"file '.*broken\.png'"):
        predict_dataset(fitted, broken, image_column="path", concurrency=1).take_all()
    with pytest.raises(ValueError, match="expected the dataset to have the image column 'img'"):
        predict_dataset(fitted, broken, image_column="img", concurrency=1).take_all()


@pytest.mark.auto_precision
def test_predict_dataset_reads_base64_from_a_pandas_frame_and_names_a_bad_row(fitted, data):
    """Image files in base64, as JSON carries them, are decoded by the workers; a bad one named."""
    pd = pytest.importorskip("pandas")
    images, _ = data
    encoded = []
    for image in images[:8]:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(base64.b64encode(buffer.getvalue()).decode())
    dataset = ray.data.from_pandas(pd.DataFrame({"id": range(8), "image": encoded}))
    rows = _by_id(predict_dataset(fitted, dataset, concurrency=1).take_all())
    np.testing.assert_array_equal([row["label"] for row in rows],
                                  fitted.predict(pd.DataFrame({"image": encoded})))
    truncated = base64.b64encode(base64.b64decode(encoded[0])[:100]).decode()
    broken = ray.data.from_pandas(pd.DataFrame({"image": [*encoded[:2], truncated]}))
    with pytest.raises(ValueError, match=r"a row of the 'image' column: image='iVBOR[^ ]*'\.\.\. "
                       r"\(136 characters\): cannot decode the image bytes \(100 bytes"):
        predict_dataset(fitted, broken, concurrency=1).take_all()


@pytest.mark.auto_precision
def test_the_workers_decode_with_the_settings_of_the_call(fitted, data, tmp_path):
    """exif_orientation set on the driver reaches the workers of both helpers."""
    from sklearn_taskres import config_context

    images, _ = data
    paths = []
    for index, image in enumerate(images[:6]):
        exif = Image.Exif()
        exif[0x0112] = 6  # stored sideways, as a phone held upright stores it
        paths.append(str(tmp_path / f"{index}.png"))
        Image.fromarray(image).transpose(Image.Transpose.ROTATE_90).save(paths[-1], exif=exif)
    dataset = ray.data.from_items([{"id": i, "path": p} for i, p in enumerate(paths)])
    for exif_orientation in (False, True):
        with config_context(exif_orientation=exif_orientation):
            rows = _by_id(predict_dataset(fitted, dataset, image_column="path", proba=True,
                                          concurrency=1).take_all())
            encoded = _by_id(encode_dataset(dataset, model=fitted.model, pretrained=None,
                                            image_column="path", concurrency=1).take_all())
            np.testing.assert_allclose(np.stack([row["proba"] for row in rows]),
                                       fitted.predict_proba(paths), rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(np.stack([row["embedding"] for row in encoded]),
                                       fitted._features(paths), rtol=1e-5, atol=1e-6)
        if not exif_orientation:
            sideways = np.stack([row["proba"] for row in rows])
    assert not np.allclose(sideways, np.stack([row["proba"] for row in rows]), rtol=1e-4)


@pytest.mark.auto_precision
def test_encode_dataset_gives_the_classifier_s_features(fitted, data, tiny_model):
    """head_.predict on the embeddings equals predict on the images."""
    images, _ = data
    dataset = ray.data.from_items(_rows(images))
    rows = _by_id(encode_dataset(dataset, model=tiny_model, pretrained=None,
                                 concurrency=1).take_all())
    embeddings = np.stack([row["embedding"] for row in rows])
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(images), 32)
    np.testing.assert_array_equal(fitted.head_.predict(embeddings), fitted.predict(images))
    np.testing.assert_allclose(fitted.head_.predict_proba(embeddings),
                               fitted.predict_proba(images), rtol=1e-5, atol=1e-7)


@pytest.mark.auto_precision
@pytest.mark.parametrize("augment_views", [0, 2])
def test_fit_dataset_equals_fit_in_row_order(tiny_model, data, augment_views):
    """Encoded on the cluster, gathered in row order: the residual of fit, minibatches and all."""
    images, y = data
    params = {"batch_size": 16, "augment_views": augment_views}  # order matters with minibatches
    expected = _classifier(tiny_model, **params).fit(images, y)
    dataset = ray.data.from_items(_rows(images, y.tolist())).repartition(6)
    estimator = _classifier(tiny_model, **params)
    assert fit_dataset(estimator, dataset, concurrency=1) is estimator
    np.testing.assert_allclose(estimator.residual_, expected.residual_, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(estimator.classes_, expected.classes_)
    assert estimator.loss_curve_ == pytest.approx(expected.loss_curve_, rel=1e-5)


@pytest.mark.auto_precision
def test_fit_dataset_takes_sample_weights_from_a_column(tiny_model, data):
    """weight_column is sample_weight: the residual of fit with those weights."""
    images, y = data
    weights = np.random.RandomState(3).uniform(0, 2, len(y))
    expected = _classifier(tiny_model, class_weight="balanced").fit(images, y,
                                                                   sample_weight=weights)
    dataset = ray.data.from_items(_rows(images, y.tolist(), weight=weights.tolist()))
    estimator = _classifier(tiny_model, class_weight="balanced")
    fit_dataset(estimator, dataset, weight_column="weight", concurrency=1)
    np.testing.assert_allclose(estimator.residual_, expected.residual_, rtol=1e-5, atol=1e-5)
    unweighted = _classifier(tiny_model, class_weight="balanced").fit(images, y)
    assert not np.allclose(unweighted.residual_, expected.residual_, atol=1e-4)


def test_fit_dataset_refuses_unknown_labels_and_leaves_the_estimator(tiny_model, data):
    images, y = data
    dataset = ray.data.from_items(_rows(images[:6], [0, 1, 2, 0, 1, 7]))
    estimator = _classifier(tiny_model)
    with pytest.raises(ValueError, match="7"):
        fit_dataset(estimator, dataset, concurrency=1)
    assert not hasattr(estimator, "residual_")
    weighted = ray.data.from_items(_rows(images[:3], [0, 1, 2], weight=[1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match=r"sample_weight\[1\]"):
        fit_dataset(estimator, weighted, weight_column="weight", concurrency=1)
    assert not hasattr(estimator, "residual_")


def test_predict_dataset_needs_a_fitted_classifier(tiny_model):
    from sklearn.exceptions import NotFittedError

    from sklearn_taskres import TaskResHead

    dataset = ray.data.from_items([{"image": np.zeros((4, 4, 3), np.uint8)}])
    with pytest.raises(TypeError, match="expected a fitted TaskResClassifier; got TaskResHead"):
        predict_dataset(TaskResHead(), dataset)
    with pytest.raises(NotFittedError):
        predict_dataset(_classifier(tiny_model), dataset)


def _map_workers():
    """The predict workers of this test session's Ray (its processes descend from ours)."""
    workers = {}
    for process in psutil.Process().children(recursive=True):
        try:
            if "MapWorker(MapBatches(_Predictor))" in " ".join(process.cmdline()):
                workers[process.pid] = process
        except psutil.NoSuchProcess:
            continue
    return workers


@pytest.mark.auto_precision
def test_a_worker_killed_mid_run_loses_and_repeats_no_row(fitted, data):
    """SIGKILL a worker during predict_dataset: every row comes back exactly once, correctly."""
    images, _ = data
    many = [images[index % len(images)] for index in range(3000)]
    dataset = ray.data.from_items(_rows(many)).repartition(60)
    stream = predict_dataset(fitted, dataset, batch_size=25, concurrency=1)
    received, first = [], threading.Event()

    def consume():
        for batch in stream.iter_batches(batch_format="numpy", batch_size=None):
            received.append(batch)
            first.set()
            time.sleep(0.02)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert first.wait(timeout=120)
    victims = _map_workers()
    assert len(victims) == 1
    [victim] = victims
    os.kill(victim, signal.SIGKILL)
    rows_at_kill = sum(len(batch["id"]) for batch in received)
    consumer.join(timeout=300)
    assert not consumer.is_alive()
    assert rows_at_kill < len(many)  # the job was under way when the worker died
    ids = np.concatenate([batch["id"] for batch in received])
    labels = np.concatenate([batch["label"] for batch in received])
    assert sorted(ids.tolist()) == list(range(len(many)))
    expected = fitted.predict(images)
    np.testing.assert_array_equal(labels, expected[ids % len(images)])


def test_importing_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "sklearn_taskres.ray")
    with pytest.raises(ImportError, match=r'pip install "sklearn-taskres\[ray\]"'):
        importlib.import_module("sklearn_taskres.ray")


@pytest.fixture(scope="module")
def model_and_images(fitted, data, tmp_path_factory):
    import joblib

    root = tmp_path_factory.mktemp("cli_ray")
    joblib.dump(fitted, root / "model.joblib")
    folder = root / "photos"
    folder.mkdir()
    for index, image in enumerate(data[0][:15]):
        Image.fromarray(image).save(folder / f"{index:02d}.png")
    return root / "model.joblib", folder


def _cli(capsys, *argv):
    from sklearn_taskres.cli import main

    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.auto_precision
def test_cli_predict_on_ray_prints_the_same_rows(capsys, model_and_images):
    """predict --ray local prints what predict prints, row for row."""
    model, folder = model_and_images
    options = ["--proba", "--format", "json", "--device", "cpu"]
    status, here, _ = _cli(capsys, "predict", model, folder, *options)
    assert status == 0
    status, on_ray, err = _cli(capsys, "predict", model, folder, *options, "--ray", "local")
    assert status == 0, err
    here, on_ray = json.loads(here), json.loads(on_ray)
    assert [row["path"] for row in on_ray] == [row["path"] for row in here]
    assert [row["label"] for row in on_ray] == [row["label"] for row in here]
    for mine, theirs in zip(on_ray, here, strict=True):
        assert mine["proba"] == pytest.approx(theirs["proba"], rel=1e-5, abs=1e-7)


@pytest.mark.auto_precision
def test_cli_predict_on_ray_writes_parquet_to_a_new_folder(capsys, model_and_images, tmp_path):
    """--output DIR writes Parquet; an existing folder with files is refused, never overwritten."""
    import pyarrow.parquet as pq

    model, folder = model_and_images
    output = tmp_path / "labels"
    status, out, err = _cli(capsys, "predict", model, folder, "--ray", "local", "--proba",
                            "--device", "cpu", "--output", output)
    assert status == 0, err
    assert out == "" and "wrote the predictions of 15 images" in err
    table = pq.read_table(output).to_pydict()
    assert sorted(table) == ["label", "path", "proba"]
    expected = joblib_predict(model, table["path"])
    assert table["label"] == expected.tolist()
    assert all(len(row) == 3 for row in table["proba"])

    status, _, err = _cli(capsys, "predict", model, folder, "--ray", "local", "--output", output)
    assert status == 2
    assert "expected --output with --ray to be a new or empty folder" in err
    assert "already holds files" in err
    status, _, err = _cli(capsys, "predict", model, folder, "--output", tmp_path / "other")
    assert status == 2 and "expected a prediction file name ending in .csv" in err


def joblib_predict(model, paths):
    import joblib

    return joblib.load(model).predict(paths)


@pytest.mark.auto_precision
def test_encode_dataset_takes_a_local_dir_model(tiny_folder, data):
    """A local-dir: model (config and weights in a folder) encodes as the classifier does."""
    images, y = data
    model = f"local-dir:{tiny_folder}"
    clf = TaskResClassifier(NAMES, model=model, max_iter=2, device="cpu").fit(images[:9], y[:9])
    rows = _by_id(encode_dataset(ray.data.from_items(_rows(images[:9])), model=model,
                                 concurrency=1).take_all())
    embeddings = np.stack([row["embedding"] for row in rows])
    np.testing.assert_allclose(clf.head_.predict_proba(embeddings), clf.predict_proba(images[:9]),
                               rtol=1e-5, atol=1e-7)


# ------------------------------------------------ photos as bytes: read_binary_files


def _phone_photos(folder, images, labels):
    """JPEGs in one folder per class, stored as a phone stores them (EXIF 1, 6, 3, 8 in turn)."""
    stored = {1: None, 6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180,
              8: Image.Transpose.ROTATE_270}
    paths = []
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        orientation = list(stored)[index % 4]
        photo = Image.fromarray(pixels).resize((240, 160), Image.BICUBIC)  # drafts at 1/2
        if stored[orientation] is not None:
            photo = photo.transpose(stored[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / NAMES[label] / f"IMG_{index:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        photo.save(path, quality=90, exif=exif)
        paths.append(str(path))
    return paths


@pytest.mark.auto_precision
def test_photos_read_as_bytes_decode_upright_as_predict_does(tiny_model, data, tmp_path):
    """read_binary_files + image_column="bytes": fit and predict as on the paths.

    fit_dataset encodes with the workers of encode_dataset: its residual being
    fit's on the paths covers both.
    """
    images, y = data
    picked = list(range(0, len(images), 5))  # 12 photos, 4 per class
    paths = _phone_photos(tmp_path / "photos", [images[i] for i in picked], y[picked])
    labels = [NAMES[label] for label in y[picked]]
    expected = _classifier(tiny_model).fit(paths, labels)

    dataset = ray.data.read_binary_files(str(tmp_path / "photos"), include_paths=True)
    train = dataset.map(lambda row: {**row, "label": row["path"].split("/")[-2]})
    estimator = fit_dataset(_classifier(tiny_model), train, image_column="bytes", concurrency=1)
    np.testing.assert_allclose(estimator.residual_, expected.residual_, rtol=1e-5, atol=1e-5)

    rows = predict_dataset(expected, dataset, image_column="bytes", proba=True,
                           concurrency=1).take_all()
    rows.sort(key=lambda row: paths.index(row["path"]))
    np.testing.assert_array_equal([row["label"] for row in rows], expected.predict(paths))
    np.testing.assert_allclose(np.stack([row["proba"] for row in rows]),
                               expected.predict_proba(paths), rtol=1e-5, atol=1e-7)
    # What read_images gives: full-size pixels as stored, the sideways ones sideways.
    as_stored = [np.asarray(Image.open(path).convert("RGB")) for path in paths]
    assert not np.allclose(expected.predict_proba(as_stored)[1::4],
                           expected.predict_proba(paths)[1::4], rtol=1e-4)


def test_a_corrupt_photo_read_as_bytes_is_named_by_its_path(fitted, tmp_path):
    """A truncated JPEG among good ones fails the job with a ValueError naming its path."""
    Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "good.jpg")
    content = (tmp_path / "good.jpg").read_bytes()
    (tmp_path / "broken.jpg").write_bytes(content[: len(content) // 2])
    dataset = ray.data.read_binary_files(str(tmp_path), include_paths=True)
    with pytest.raises(ValueError, match=r"a row of the 'bytes' column: path='.*broken\.jpg': "
                                         r"cannot decode the image bytes \(\d+ bytes"):
        predict_dataset(fitted, dataset, image_column="bytes", concurrency=1).take_all()
