"""predict_dataset on a simulated two-node Ray cluster (two raylets on this machine)."""

import re

import numpy as np
import pytest
from helpers import make_dataset

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from sklearn_taskres import TaskResClassifier  # noqa: E402
from sklearn_taskres.ray import predict_dataset  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True,
                      head_node_args={"num_cpus": 2, "include_dashboard": False})
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.mark.auto_precision
def test_two_nodes_give_the_rows_of_one_and_both_work(two_nodes, tiny_model, monkeypatch):
    """One 2-CPU worker per node: the same labels as predict, and Ray's stats show two nodes.

    The rows are in the object store already (no read task needs a CPU the workers hold).
    Both workers are started before the first block goes out: on a busy machine the first
    one could otherwise take every block before the second is up.
    """
    monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 300)
    assert len([node for node in ray.nodes() if node["Alive"]]) == 2
    images, y = make_dataset(n_per_class=20, n_classes=3, seed=21)
    clf = TaskResClassifier(["red", "green", "blue"], model=tiny_model, pretrained=None,
                            max_iter=10, device="cpu", random_state=0).fit(images, y)
    many = [images[index % len(images)] for index in range(600)]
    dataset = ray.data.from_items([{"id": i, "image": image} for i, image in enumerate(many)],
                                  override_num_blocks=12)
    predicted = predict_dataset(clf, dataset, batch_size=25, concurrency=2,
                                num_cpus=2).materialize()
    rows = sorted(predicted.take_all(), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(len(many)))
    np.testing.assert_array_equal([row["label"] for row in rows],
                                  clf.predict(images)[np.arange(len(many)) % len(images)])
    stats = predicted.stats()
    predictor_stats = stats.split("MapBatches(_Predictor)")[1]
    used = [int(n) for n in re.findall(r"(\d+) nodes used", predictor_stats)]
    assert used and used[0] == 2, stats
