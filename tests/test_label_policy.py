"""The labelling page's pure parts: the queue policy, the accuracy estimate, the labels log."""

import numpy as np
import pytest

from sklearn_taskres._labels_log import (
    LabelsFileError,
    LabelsLog,
    final_decisions,
    read_labels_log,
    session_classes,
)

label = pytest.importorskip("sklearn_taskres.label", reason="needs the app extra")
from sklearn_taskres.label import audit_estimates, next_images, wilson_interval  # noqa: E402
from sklearn_taskres.label._estimate import prefer_trained  # noqa: E402
from sklearn_taskres.label._policy import coverage_clusters, coverage_images  # noqa: E402


def _proba(n_images, n_classes, seed):
    rng = np.random.RandomState(seed)
    logits = rng.normal(size=(n_images, n_classes)) * 3
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


# ---------------------------------------------------------------- the policy


def test_policy_asks_first_for_the_classes_with_fewest_labels():
    """Without audits, consecutive picks rotate through the classes with the fewest labels."""
    proba = _proba(300, 5, 0)
    picks = next_images(proba, np.ones(300, bool), np.array([3, 0, 3, 0, 3]), 0,
                        n_images=2, audit_share=0)
    # Each pick is among the images most likely of a class without labels (1 or 3).
    asked = {int(np.argmax(proba[index])) for index, _ in picks}
    assert asked == {1, 3}
    assert all(not audit for _, audit in picks)


def test_policy_picks_the_smallest_margin_among_the_likely_images_of_a_class():
    """The pick for a class is, of its most likely images, the one of smallest margin."""
    # Nine images, three classes: the three most likely of class 0 are 0, 2 and 1.
    proba = np.array([[.98, .01, .01], [.50, .45, .05], [.9, .05, .05], [.1, .8, .1],
                      [.1, .1, .8], [.05, .15, .8], [.2, .7, .1], [.1, .2, .7], [.3, .6, .1]])
    [(index, audit)] = next_images(proba, np.ones(9, bool), np.array([0, 5, 5]), 0,
                                   audit_share=0)
    assert (index, audit) == (1, False)


def test_policy_is_class_balanced_where_margin_alone_is_not():
    """Twenty picks of the policy cover every class; the twenty smallest margins may not."""
    rng = np.random.RandomState(1)
    # Classes 0 and 1 are confident everywhere: smallest margin never picks them.
    proba = _proba(500, 10, 1)
    proba[100:, :2] = 1e-4
    proba[100:] /= proba[100:].sum(axis=1, keepdims=True)
    proba[:100] = np.eye(10)[np.repeat([0, 1], 50)] * 0.9 + 0.01
    counts = np.zeros(10)
    available = np.ones(500, bool)
    for _ in range(20):
        [(index, _)] = next_images(proba, available, counts, rng, audit_share=0)
        available[index] = False
        counts[int(np.argmax(proba[index]))] += 1
    assert (counts >= 1).all()
    margins = np.sort(proba, axis=1)[:, -1] - np.sort(proba, axis=1)[:, -2]
    smallest = np.argsort(margins)[:20]
    assert not np.isin(np.argmax(proba[smallest], axis=1), [0, 1]).any()


def _blobs(sizes, seed=0):
    rng = np.random.RandomState(seed)
    centres = rng.normal(size=(len(sizes), 16)) * 5
    features = np.concatenate([centre + rng.normal(size=(size, 16))
                               for centre, size in zip(centres, sizes, strict=True)])
    return features, np.repeat(np.arange(len(sizes)), sizes), centres


def test_coverage_clusters_are_numbered_by_size_and_typical_images_lie_at_their_centres():
    """Four blobs: cluster 0 is the largest; the most typical image is near its blob's centre."""
    features, blob, centres = _blobs([60, 30, 20, 10])
    clusters, typicality = coverage_clusters(features, 4, random_state=0)
    assert np.bincount(clusters).tolist() == [60, 30, 20, 10]
    for cluster in range(4):
        members = np.flatnonzero(clusters == cluster)
        typical = members[np.argmax(typicality[members])]
        unit = centres[blob[typical]] / np.linalg.norm(centres[blob[typical]])
        cosines = features[members] @ unit / np.linalg.norm(features[members], axis=1)
        assert cosines[members == typical][0] >= np.quantile(cosines, 0.75)


def test_coverage_picks_every_uncovered_cluster_once_before_any_twice():
    """One pick per uncovered cluster, largest first; then the fewest labels per image."""
    features, _, _ = _blobs([60, 30, 20, 10])
    clusters, typicality = coverage_clusters(features, 4, random_state=0)
    decided = np.zeros(len(features), bool)
    decided[np.flatnonzero(clusters == 1)[0]] = True
    available = ~decided
    picks = coverage_images(clusters, typicality, available, decided, n_images=5)
    # Then in proportion to the sizes: cluster 0 has 2 of 60 (as 1 has 1 of 30) and is larger.
    assert clusters[picks].tolist() == [0, 2, 3, 0, 0]
    assert len(set(picks)) == 5 and available[picks].all()


def test_policy_audits_are_uniform_over_the_available_images():
    """audit_share=1 draws every available image equally often, and only available ones."""
    proba = _proba(10, 3, 2)
    available = np.zeros(10, bool)
    available[[1, 4, 7]] = True
    rng = np.random.RandomState(0)
    seen = [next_images(proba, available, np.zeros(3), rng, audit_share=1)[0] for _ in range(600)]
    indices = [index for index, _ in seen]
    assert all(audit for _, audit in seen)
    assert set(indices) == {1, 4, 7}
    assert min(indices.count(i) for i in (1, 4, 7)) > 150


def test_policy_audit_share_is_respected():
    """About audit_share of the picks are audits."""
    proba = _proba(2000, 4, 3)
    picks = next_images(proba, np.ones(2000, bool), np.zeros(4), 0, n_images=800,
                        audit_share=0.25)
    share = np.mean([audit for _, audit in picks])
    assert 0.2 < share < 0.3
    assert len({index for index, _ in picks}) == 800  # never the same image twice


def test_policy_with_nothing_available_picks_nothing():
    """No available image, no pick."""
    assert next_images(_proba(5, 2, 0), np.zeros(5, bool), np.zeros(2), 0, n_images=3) == []


# ---------------------------------------------------------------- the estimate


def test_wilson_interval_matches_the_formula_and_holds_the_proportion():
    """Known values; the interval holds k/n and stays in [0, 1]."""
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(0, 5), (5, 5), (3, 7)]:
        low, high = wilson_interval(k, n)
        assert 0 <= low <= k / n <= high <= 1


def test_audit_estimates_compare_the_models_on_the_same_images_in_a_window():
    """Each model is scored on the same audits; only the last `window` count."""
    audits = [("a", "b", "a")] * 10 + [("a", "a", "b")] * 4
    trained, start = audit_estimates(audits, window=4)
    assert (trained.accuracy, start.accuracy, trained.n) == (1.0, 0.0, 4)
    trained, start = audit_estimates(audits, window=100)
    assert trained.accuracy == pytest.approx(4 / 14) and start.accuracy == pytest.approx(10 / 14)
    assert audit_estimates([]) == (None, None)


def test_the_starting_model_is_served_only_on_clear_paired_evidence():
    """Zero-shot replaces the trained model once it wins two more disagreements than it loses."""
    assert prefer_trained([])
    agree = [("a", "a", "a"), ("a", "b", "b")]  # both right, both wrong: no evidence
    start_wins, trained_wins = ("a", "b", "a"), ("a", "a", "b")
    assert prefer_trained(agree * 10 + [start_wins])
    assert not prefer_trained(agree * 10 + [start_wins] * 2)
    assert prefer_trained([start_wins] * 3 + [trained_wins] * 2)
    assert not prefer_trained([start_wins] * 4 + [trained_wins] * 2)
    assert prefer_trained([start_wins] * 2 + agree * 60)  # out of the window of 50


# ---------------------------------------------------------------- the labels log


def test_labels_log_rows_are_durable_and_the_last_decision_wins(tmp_path):
    """Rows appended are on disk at once; undo withdraws; the last label of a path wins."""
    path = tmp_path / "labels.csv"
    log = LabelsLog(path)
    log.append("class", label="cat", name="cat")
    log.append("class", label="dog", name="dog")
    log.append("label", path="/a.jpg", label="cat", predicted="dog", start_predicted="dog",
               audit=True)
    log.append("label", path="/b.jpg", label="dog")
    log.append("label", path="/a.jpg", label="dog")
    log.append("none", path="/c.jpg")
    log.append("undo", path="/b.jpg")
    rows = read_labels_log(path)  # read while the writer is still open: nothing buffered
    log.close()
    assert [row["event"] for row in rows] == ["class", "class", "label", "label", "label",
                                              "none", "undo"]
    assert session_classes(rows) == {"cat": "cat", "dog": "dog"}
    assert final_decisions(rows) == {"/a.jpg": "dog", "/c.jpg": None}
    assert rows[2]["audit"] == "1" and rows[2]["predicted"] == "dog"


def test_labels_log_drops_a_row_cut_short_and_appends_after_it(tmp_path):
    """A kill in the middle of a row: reopening cuts it off; the next row is whole."""
    path = tmp_path / "labels.csv"
    log = LabelsLog(path)
    log.append("label", path="/a.jpg", label="cat")
    log.close()
    with open(path, "ab") as file:
        file.write(b'/b.jpg,dog,label,2026-12-0')
    assert [row["path"] for row in read_labels_log(path)] == ["/a.jpg"]
    log = LabelsLog(path)
    log.append("label", path="/c.jpg", label="dog")
    log.close()
    assert [row["path"] for row in read_labels_log(path)] == ["/a.jpg", "/c.jpg"]


def test_labels_log_keeps_file_names_with_commas_quotes_and_newlines(tmp_path):
    """Paths are CSV fields: any character survives the round trip."""
    name = '/photos/a, "b"\nc.jpg'
    log = LabelsLog(tmp_path / "labels.csv")
    log.append("label", path=name, label="x,y")
    log.close()
    [row] = read_labels_log(tmp_path / "labels.csv")
    assert (row["path"], row["label"]) == (name, "x,y")


def test_labels_log_refuses_another_file(tmp_path):
    """A CSV that is not a labels file is refused, not appended to."""
    path = tmp_path / "predictions.csv"
    path.write_text("path,label,error\n/a.jpg,cat,\n")
    with pytest.raises(LabelsFileError, match="expected a labels file"):
        LabelsLog(path)
    assert path.read_text() == "path,label,error\n/a.jpg,cat,\n"
