"""The labelling session and its trainer as plain Python, and its HTTP layer in-process."""

import numpy as np
import pytest
from PIL import Image

from sklearn_taskres import load_model, zero_shot_classifier
from sklearn_taskres._labels_log import final_decisions, read_labels_log

pytest.importorskip("sklearn_taskres.label", reason="needs the app extra")
from starlette.testclient import TestClient  # noqa: E402

from sklearn_taskres.label import LabellingSession, SessionError, refit  # noqa: E402
from sklearn_taskres.label._encoding import Encoder  # noqa: E402
from sklearn_taskres.label._guard import cookie_name  # noqa: E402
from sklearn_taskres.label._http import build_app  # noqa: E402
from sklearn_taskres.label._policy import COLD_START_PER_CLASS  # noqa: E402
from sklearn_taskres.label._trainer import Trainer, write_atomically  # noqa: E402

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230)}
XSS_NAME = "<img src=x onerror=alert(1)>.png"
PORT = 8765


def write_folder(folder, n_per_class=6):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for name, colour in COLOURS.items():
        for index in range(n_per_class):
            pixels = np.clip(np.add(colour, rng.randint(-30, 31, (32, 32, 3))), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{index}.png")
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(folder / XSS_NAME)
    (folder / "broken.png").write_bytes(b"not a png")
    return sorted(str(path) for path in folder.iterdir())


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "photos")


@pytest.fixture(scope="module")
def start_model(tiny_model):
    return zero_shot_classifier({name: name for name in COLOURS}, model=tiny_model,
                                pretrained=None, device="cpu", max_iter=30,
                                learning_rate=0.05, random_state=0)


def encoded_session(start_model, folder, labels_file, **params):
    session = LabellingSession(start_model, folder, labels_file, random_state=0, **params)
    Encoder(session).run()  # in this thread: the test waits for it
    return session


def true_label(session, index):
    name = session.paths[index].rsplit("/", 1)[1]
    return name.split("_")[0] if "_" in name else "blue"  # the gray image: any class


# ---------------------------------------------------------------- the session


@pytest.mark.auto_precision
def test_session_encodes_every_image_and_reports_the_unreadable_one(start_model, folder,
                                                                    tmp_path):
    """Every readable image gets features; the broken file is listed, not fatal."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    broken = session.paths.index(str(tmp_path / "photos" / "broken.png"))
    assert set(session.failed) == {broken}
    assert session.encoded.sum() == len(folder) - 1
    expected = start_model._features([path for path in folder if "broken" not in path])
    np.testing.assert_allclose(session.features[session.encoded], expected, atol=1e-5)
    state = session.state()
    assert (state["n_images"], state["n_encoded"], state["n_failed"]) == (len(folder),
                                                                         len(folder) - 1, 1)


@pytest.mark.auto_precision
def test_a_second_session_reads_the_features_from_the_store(tiny_model, folder, tmp_path,
                                                            encoded_rows):
    """With a cache_dir, a new session (a new process's memory) on the folder encodes nothing."""
    from sklearn_taskres import clear_feature_cache

    model = zero_shot_classifier({name: name for name in COLOURS}, model=tiny_model,
                                 pretrained=None, device="cpu", cache_dir=tmp_path / "store")
    clear_feature_cache()
    first = encoded_session(model, folder, tmp_path / "first.csv")
    assert encoded_rows["rows"] == len(folder) - 1
    clear_feature_cache()  # as a new process would start
    second = encoded_session(model, folder, tmp_path / "second.csv")
    assert encoded_rows["rows"] == len(folder) - 1
    np.testing.assert_array_equal(second.features, first.features)
    first.close()
    second.close()


@pytest.mark.auto_precision
def test_session_queue_never_offers_decided_held_or_unreadable_images(start_model, folder,
                                                                      tmp_path):
    """Queue picks are new images: not decided, not held by the page, not broken."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    first = session.queue(3)
    session.decide(first[0]["index"], "red")
    held = [item["index"] for item in first[1:]]
    items = session.queue(20, hold=held)
    assert [item["index"] for item in items[:2]] == held
    new = [item["index"] for item in items[2:]]
    assert first[0]["index"] not in new and not set(held) & set(new)
    assert not set(new) & set(session.failed)
    assert len(new) == len(folder) - 1 - 1 - 2


@pytest.mark.auto_precision
def test_session_decisions_reach_the_labels_file_before_they_count(start_model, folder,
                                                                   tmp_path):
    """decide, none of these and undo are rows on disk; undo shows the image again first."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    a, b = (item["index"] for item in session.queue(2))
    session.decide(a, "green")
    session.decide(b, None)
    rows = read_labels_log(tmp_path / "labels.csv")
    assert [row["event"] for row in rows] == ["class"] * 3 + ["label", "none"]
    assert rows[3]["path"] == session.paths[a] and rows[3]["label"] == "green"
    undone = session.undo()
    assert undone["index"] == b
    assert session.queue(1)[0]["index"] == b
    assert final_decisions(read_labels_log(tmp_path / "labels.csv")) == {
        session.paths[a]: "green"}
    with pytest.raises(SessionError, match="expected a class of"):
        session.decide(a, "purple")
    with pytest.raises(SessionError, match="expected an image index"):
        session.decide(10_000, "red")


@pytest.mark.auto_precision
def test_session_resumes_from_the_labels_file(start_model, folder, tmp_path):
    """A new session on the same file keeps every decision and does not offer them again."""
    labels = tmp_path / "labels.csv"
    session = encoded_session(start_model, folder, labels)
    picked = [item["index"] for item in session.queue(5)]
    for index in picked[:4]:
        session.decide(index, true_label(session, index))
    session.undo()
    session.decide(picked[4], None)
    session.close()
    again = encoded_session(start_model, folder, labels)
    assert again.decisions == {index: true_label(session, index) for index in picked[:3]} | {
        picked[4]: None}
    offered = {item["index"] for item in again.queue(50)}
    assert not offered & set(picked[:3] + picked[4:])
    assert again.labels_changed.is_set()  # the trainer refits on what was resumed
    again.close()


@pytest.mark.auto_precision
def test_session_none_of_these_sharpens_the_score_and_is_no_class(start_model, folder,
                                                                  tmp_path):
    """'None of these' images go to the refit as "_none": no class, they feed the score."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    assert session.state()["n_rejected"] is None  # zero-shot: no none-of-these score yet
    a, b = (item["index"] for item in session.queue(2))
    session.decide(a, None)
    assert session.training_data() is None  # none alone trains nothing
    session.decide(b, "blue")
    _, _, X, y = session.training_data()
    assert y.tolist() == ["_none", "blue"]
    np.testing.assert_array_equal(X, session.features[[a, b]])
    Trainer(session).step()
    model = session.trained_model
    assert model.classes_.tolist() == ["red", "green", "blue"]
    np.testing.assert_allclose(model.head_.none_features_[0] * np.linalg.norm(X[0]), X[0],
                               rtol=1e-5, atol=1e-6)
    session.decide(session.queue(1)[0]["index"], "red")
    Trainer(session).step()
    serving = session.serving_model()
    if hasattr(serving.head_, "unknown_threshold_"):
        pool = [i for i in np.flatnonzero(session.encoded) if i not in session.decisions]
        expected = int(np.sum(serving.head_.score_unknown(session.features[pool])
                              > serving.head_.unknown_threshold_))
        assert session.state()["n_rejected"] == expected


@pytest.mark.auto_precision
def test_session_adds_a_class_by_name(start_model, folder, tmp_path):
    """A class added during the session is a button, a log row, and a class of every model."""
    labels = tmp_path / "labels.csv"
    session = encoded_session(start_model, folder, labels)
    session.decide(session.queue(1)[0]["index"], "red")
    Trainer(session).step()
    assert session.add_class("  gray_ish ") == "gray_ish"
    assert session.classes == ["red", "green", "blue", "gray_ish"]
    assert session.start_model.classnames["gray_ish"] == "gray ish"
    assert len(session.trained_model.classes_) == 4
    assert len(session.queue(1)[0]["proba"]) == 4
    with pytest.raises(SessionError, match="already a class"):
        session.add_class("red")
    session.close()
    resumed = LabellingSession(start_model, folder, labels)
    assert resumed.classes == ["red", "green", "blue", "gray_ish"]
    resumed.close()


@pytest.mark.auto_precision
def test_session_refuses_a_labels_file_of_other_classes(start_model, folder, tmp_path,
                                                        tiny_model):
    """Resuming with other classes is an error, not a silent mix."""
    labels = tmp_path / "labels.csv"
    LabellingSession(start_model, folder, labels).close()
    other = zero_shot_classifier(["cat", "dog"], model=tiny_model, pretrained=None, device="cpu")
    with pytest.raises(SessionError, match="to be of the classes"):
        LabellingSession(other, folder, labels)


@pytest.mark.auto_precision
def test_grid_confirms_the_rest_and_shows_the_rejected_next(start_model, folder, tmp_path):
    """The grid labels the accepted images of its class; the rejected come first in the queue."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    label = session.queue(1)[0]["suggestion"]
    grid = session.grid(label, 5)
    assert grid and all(item["suggestion"] == label for item in grid)
    probabilities = [item["proba"][session.classes.index(label)] for item in grid]
    assert probabilities == sorted(probabilities, reverse=True)
    accepted, rejected = [item["index"] for item in grid[1:]], [grid[0]["index"]]
    session.confirm_grid(label, accepted, rejected)
    assert all(session.decisions[index] == label for index in accepted)
    assert rejected[0] not in session.decisions
    assert session.queue(1)[0]["index"] == rejected[0]


# ---------------------------------------------------------------- the trainer


@pytest.mark.auto_precision
def test_refit_learns_from_the_labels_and_is_an_ordinary_classifier(start_model, folder,
                                                                    tmp_path):
    """The trainer's model fits the labelled images and saves and loads as any classifier."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    readable = np.flatnonzero(session.encoded)
    for index in readable:
        if "_" in session.paths[index].rsplit("/", 1)[1]:
            session.decide(int(index), true_label(session, index))
    trainer = Trainer(session, tmp_path / "model.skops")
    trainer.step()
    _, _, X, y = session.training_data()
    model = session.trained_model
    assert session.trained_after == len(y) == 18
    assert np.mean(model.head_.predict(X) == y) == 1.0
    assert model.residual_.any()
    loaded = load_model(tmp_path / "model.skops")
    np.testing.assert_allclose(loaded.head_.predict_proba(X),
                               session.serving_model().head_.predict_proba(X))
    reference = refit(start_model, X, y)
    np.testing.assert_allclose(reference.residual_, model.residual_, atol=1e-6)


@pytest.mark.auto_precision
def test_trainer_folds_decisions_made_during_a_refit_into_the_next(start_model, folder,
                                                                   tmp_path):
    """The trainer fits the latest labels; a refit of stale labels is never installed last."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    trainer = Trainer(session)
    trainer.start()
    try:
        for item in session.queue(8, hold=()):
            session.decide(item["index"], true_label(session, item["index"]))
        deadline = 200
        while (session.trained_version != session.version or session.labels_changed.is_set()
               or session.refitting) and deadline:
            trainer.join(0.05)
            deadline -= 1
        assert session.trained_version == session.version
        assert session.trained_after == 8
        assert trainer.n_refits <= 8
    finally:
        trainer.stop()
        trainer.join(10)


@pytest.mark.auto_precision
def test_trainer_refits_on_one_thread_of_its_own(start_model, folder, tmp_path, monkeypatch):
    """The trainer thread refits with one torch thread; the caller's thread count is unchanged."""
    import torch

    from sklearn_taskres.label import _trainer

    seen = []

    def counting_refit(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return refit(*args, **kwargs)

    monkeypatch.setattr(_trainer, "refit", counting_refit)
    threads = torch.get_num_threads()
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    trainer = Trainer(session)
    trainer.start()
    try:
        session.decide(session.queue(1)[0]["index"], "red")
        for _ in range(400):
            if seen:
                break
            trainer.join(0.05)
    finally:
        trainer.stop()
        trainer.join(10)
    assert seen == [1]
    assert torch.get_num_threads() == threads


@pytest.mark.auto_precision
@pytest.mark.parametrize("alpha", ["auto", 0.5])
def test_serving_model_with_a_fixed_alpha_is_the_starting_one_when_audits_say_it_is_better(
        start_model, folder, tmp_path, alpha):
    """Audits where the retrained model erred and zero-shot did not.

    With a fixed alpha, zero-shot is served. With alpha="auto", the refit chose
    between zero-shot and the residual on every label: it is served.
    """
    session = encoded_session(start_model, folder, tmp_path / "labels.csv", alpha=alpha)
    items = session.queue(4)
    session.decide(items[0]["index"], "red")
    Trainer(session).step()
    assert session.serving_model() is session.trained_model
    for item in items[1:]:
        index = item["index"]
        session._audits[index] = ("blue", "green")  # as a resumed log would hold them
        session.decide(index, "green")
    trained, start = session.estimates()
    assert (trained.accuracy, start.accuracy, trained.n) == (0.0, 1.0, 3)
    assert session.trained_model.alpha == alpha
    served = session.start_model if alpha == 0.5 else session.trained_model
    assert session.serving_model() is served
    state = session.state()
    assert state["model"]["serving"] == ("start" if alpha == 0.5 else "trained")
    assert state["estimate"]["start"]["n"] == 3


@pytest.mark.auto_precision
def test_audit_decisions_record_both_predictions(start_model, folder, tmp_path):
    """An image the queue drew at random is logged as an audit with both models' predictions."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv", audit_share=1.0)
    [item] = session.queue(1)
    assert item["audit"]
    session.decide(item["index"], "red")
    row = read_labels_log(tmp_path / "labels.csv")[-1]
    assert row["audit"] == "1"
    assert row["predicted"] == row["start_predicted"] == item["suggestion"]


def test_model_file_is_replaced_atomically(start_model, tmp_path):
    """A save that fails half-way leaves the old file whole and no temporary behind."""
    path = tmp_path / "model.skops"
    write_atomically(start_model, path)
    before = path.read_bytes()

    def broken_save(model, target):
        target.write_bytes(b"half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(start_model, path, broken_save)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skops"]


# ---------------------------------------------------------------- the HTTP layer


@pytest.fixture
def client(start_model, folder, tmp_path):
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    app = build_app(session, "s3cret", PORT)
    with TestClient(app, base_url=f"http://127.0.0.1:{PORT}") as test_client:
        test_client.session = session
        yield test_client
    session.close()


def authorised(client):
    client.cookies.set(cookie_name(PORT), "s3cret")
    return client


JSON_POST = {"origin": f"http://127.0.0.1:{PORT}", "content-type": "application/json"}


@pytest.mark.auto_precision
def test_http_token_in_the_url_becomes_a_cookie(client):
    """Without the token: 403; /?token= sets an HttpOnly SameSite cookie and drops it."""
    assert client.get("/").status_code == 403
    assert client.get("/api/state").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    response = client.get("/?token=s3cret", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/api/state").status_code == 200
    assert "token" not in client.get("/").text


@pytest.mark.auto_precision
def test_http_refuses_other_hosts(client):
    """DNS rebinding: a Host other than localhost / 127.0.0.1 / [::1] with the port is refused."""
    authorised(client)
    for host in (f"localhost:{PORT}", f"127.0.0.1:{PORT}", f"[::1]:{PORT}"):
        assert client.get("/api/state", headers={"host": host}).status_code == 200
    for host in ("evil.example", f"evil.example:{PORT}", "127.0.0.1", f"127.0.0.1:{PORT + 1}",
                 f"localhost.evil.example:{PORT}"):
        assert client.get("/api/state", headers={"host": host}).status_code == 403, host


@pytest.mark.auto_precision
def test_http_changes_need_post_json_and_the_pages_origin(client):
    """A decision from another origin, without an origin, or as a form is refused."""
    authorised(client)
    index = client.get("/api/queue?n=1").json()[0]["index"]
    body = {"index": index, "label": "red"}
    refused = [
        client.post("/api/decide", json=body, headers={"origin": "http://evil.example"}),
        client.post("/api/decide", json=body),
        client.post("/api/decide", data=body, headers={"origin": JSON_POST["origin"]}),
        client.get("/api/decide"),
        client.put("/api/decide", json=body, headers=JSON_POST),
    ]
    assert [response.status_code for response in refused] == [403, 403, 415, 405, 405]
    assert client.session.decisions == {}
    assert client.post("/api/decide", json=body, headers=JSON_POST).status_code == 200
    assert client.session.decisions == {index: "red"}


@pytest.mark.auto_precision
def test_http_serves_images_by_index_only(client):
    """Images by index; paths, traversal and unknown indices are 404."""
    authorised(client)
    response = client.get("/api/image/0")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert client.get("/api/image/0?size=thumbnail").status_code == 200
    broken = client.session.paths.index(
        next(path for path in client.session.paths if "broken" in path))
    for path in (f"/api/image/{broken}", "/api/image/999", "/api/image/-1",
                 "/api/image/../../etc/passwd", "/api/image/%2e%2e%2fetc%2fpasswd",
                 "/api/image//etc/passwd", "/static/../_session.py", "/static/%2e%2e/_http.py"):
        assert client.get(path).status_code == 404, path


@pytest.mark.auto_precision
def test_http_sends_a_strict_content_security_policy(client):
    """Every answer forbids scripts of other origins and inline ones, and framing."""
    authorised(client)
    policy = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert client.get("/api/state").headers["x-content-type-options"] == "nosniff"


@pytest.mark.auto_precision
def test_http_decide_undo_grid_and_classes(client):
    """The JSON API drives the session: decide, undo, grid confirmation, a new class."""
    authorised(client)
    first, second = client.get("/api/queue?n=2").json()
    state = client.post("/api/decide", json={"index": first["index"], "label": "green"},
                        headers=JSON_POST).json()
    assert state["n_labelled"] == 1 and state["recent"][-1]["label"] == "green"
    assert client.post("/api/decide", json={"index": second["index"], "none": True},
                       headers=JSON_POST).json()["n_none"] == 1
    undone = client.post("/api/undo", json={}, headers=JSON_POST).json()["item"]
    assert undone["index"] == second["index"]
    bad = client.post("/api/decide", json={"index": first["index"], "label": "purple"},
                      headers=JSON_POST)
    assert bad.status_code == 400 and "expected a class" in bad.json()["error"]
    assert client.post("/api/decide", content=b"{not json", headers=JSON_POST).status_code == 400
    assert client.get("/api/queue?n=lots").status_code == 400
    label = first["suggestion"]
    grid = client.get(f"/api/grid?label={label}&n=3").json()
    accepted = [item["index"] for item in grid]
    state = client.post("/api/grid", json={"label": label, "accepted": accepted, "rejected": []},
                        headers=JSON_POST).json()
    assert all(client.session.decisions[index] == label for index in accepted)
    answer = client.post("/api/classes", json={"name": "purple"}, headers=JSON_POST).json()
    assert answer["label"] == "purple"
    assert [cls["label"] for cls in answer["state"]["classes"]][-1] == "purple"


# ---------------------------------------------------------------- the lanes and the changes


@pytest.mark.auto_precision
def test_next_images_covers_the_pool_then_waits_for_the_refit_of_the_latest_decision(
        start_model, tmp_path):
    """Cold start: distinct clusters first; then the model's picks, fitted on every decision."""
    session = encoded_session(start_model, write_folder(tmp_path / "photos", 12),
                              tmp_path / "labels.csv")
    trainer = Trainer(session)
    trainer.start()
    try:
        n_cold = COLD_START_PER_CLASS * len(COLOURS)
        lanes = session.next_images(n_cold, 4)
        assert lanes["kind"] == "coverage" and session.cold_start
        clusters, _ = session._coverage_of_pool()
        ranked = [item["index"] for item in lanes["ranked"]]
        random = [item["index"] for item in lanes["random"]]
        assert len(set(clusters[ranked])) == n_cold  # one image of each cluster
        assert not set(ranked) & set(random) and len(random) == 4
        assert all(item["audit"] for item in lanes["random"])
        for index in ranked:
            session.decide(index, true_label(session, index))
        assert not session.cold_start
        lanes = session.next_images(3, 2, hold=random, after=session.version)
        assert lanes["kind"] == "model" and lanes["missing"] == 0
        assert session.trained_after == n_cold
        assert not {item["index"] for item in lanes["ranked"] + lanes["random"]} & (
            set(ranked) | set(random))
    finally:
        trainer.stop()
        trainer.join()
        session.close()


@pytest.mark.auto_precision
def test_changes_apply_in_order_and_once_however_often_sent(start_model, folder, tmp_path):
    """A change sent twice (the page resends on closing) is one row; an undo names its image."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    first, second = (int(index) for index in np.flatnonzero(session.encoded)[:2])
    changes = [{"id": "p-1", "op": "decide", "index": first, "label": "red"},
               {"id": "p-2", "op": "decide", "index": second, "none": True},
               {"id": "p-3", "op": "undo", "index": first}]
    assert [result["ok"] for result in session.apply(changes)] == [True, True, True]
    assert session.apply(changes[1:] + [{"id": "p-4", "op": "decide", "index": first,
                                         "label": "green"}])[-1] == {"id": "p-4", "ok": True}
    rows = [row for row in read_labels_log(tmp_path / "labels.csv") if row["event"] != "class"]
    assert [row["event"] for row in rows] == ["label", "none", "undo", "label"]
    assert session.decisions == {second: None, first: "green"}
    [refused] = session.apply([{"id": "p-5", "op": "undo", "index": 10**6}])
    assert refused == {"id": "p-5", "ok": False, "error": "expected a decided image to undo; "
                       "got 1000000, which is not decided"}
    with pytest.raises(SessionError, match="expected change 0 to be an object with an 'id'"):
        session.apply([{"op": "skip"}])
    session.close()


@pytest.mark.auto_precision
def test_refits_choose_alpha_again_once_the_labels_grow_by_a_quarter(start_model, folder,
                                                                     tmp_path):
    """alpha="auto": chosen at the first refit and whenever labels grew 1.25x, reused between."""
    session = encoded_session(start_model, folder, tmp_path / "labels.csv")
    trainer = Trainer(session)
    chosen, reused = [], []
    for n_labels, item in enumerate(session.queue(10), start=1):
        session.decide(item["index"], list(COLOURS)[n_labels % 3])
        before = trainer.alpha_choice
        trainer.step()
        if session.trained_model.alpha == "auto":
            chosen.append(n_labels)
            assert trainer.alpha_choice == (n_labels, session.trained_model.alpha_)
        else:
            reused.append(n_labels)
            assert session.trained_model.alpha == before[1] == session.trained_model.alpha_
    assert chosen == [1, 2, 3, 4, 5, 7, 9] and reused == [6, 8, 10]
    assert session.serving_model() is session.trained_model
