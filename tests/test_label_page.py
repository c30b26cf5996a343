"""The labelling page in a real browser: Playwright for Python driving the system Chromium.

Skipped where Playwright or Chromium is not installed.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sklearn_taskres import load_model, zero_shot_classifier
from sklearn_taskres._labels_log import final_decisions, read_labels_log
from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

pytest.importorskip("sklearn_taskres.label", reason="needs the app extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs the system Chromium", allow_module_level=True)

from sklearn_taskres.label import LabellingServer  # noqa: E402

expect = sync_api.expect
# A loaded 2-core machine can take seconds to answer: retrying assertions wait longer.
expect.set_options(timeout=20_000)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230)}
KEYS = {name: str(position + 1) for position, name in enumerate(COLOURS)}
XSS_NAME = "<img src=x onerror=alert(1)>.png"
REBOUND_HOST = "rebound.example"


def write_folder(folder, n_per_class, extra=()):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    for name, colour in COLOURS.items():
        for index in range(n_per_class):
            pixels = np.clip(np.add(colour, rng.randint(-30, 31, (32, 32, 3))), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{name}_{index}.png")
    for name in extra:
        Image.fromarray(np.full((32, 32, 3), (220, 30, 30), np.uint8)).save(folder / name)
    return sorted(str(path) for path in folder.iterdir())


def colour_of(file_name):
    return file_name.split("_")[0] if "_" in file_name else "red"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # The rule maps a foreign name to this machine, as a rebinding DNS server would.
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", f"--host-resolver-rules=MAP {REBOUND_HOST} 127.0.0.1"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(f"{dialog.type}: {dialog.message}"),
                                      dialog.dismiss()))
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def start_model(tiny_model):
    return zero_shot_classifier({name: name for name in COLOURS}, model=tiny_model,
                                pretrained=None, device="cpu", max_iter=30,
                                learning_rate=0.05, random_state=0)


@pytest.fixture
def server(start_model, tmp_path):
    paths = write_folder(tmp_path / "photos", 10)
    with LabellingServer(start_model, paths, tmp_path / "labels.csv",
                         tmp_path / "model.skops").start() as running:
        yield running


def wait_for(condition, timeout=20):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def open_page(page, server):
    page.goto(server.url)
    expect(page.locator("#frame img")).to_be_visible()
    expect(page.locator("#filename")).not_to_have_text("")
    return page


def label_by_key(page, n_images):
    """Press the key of every image's true class; return the file names in order."""
    names = []
    for _ in range(n_images):
        expect(page.locator("#filename")).not_to_have_text("")
        name = page.locator("#filename").text_content()
        assert name not in names
        names.append(name)
        page.keyboard.press(KEYS[colour_of(name)])
        expect(page.locator("#filename")).not_to_have_text(name)
    return names


@pytest.mark.auto_precision
def test_page_labels_twenty_images_by_key(page, server, tmp_path):
    """Twenty key presses: twenty durable rows of the right classes, and a retrained model."""
    open_page(page, server)
    expect(page.locator("#classes kbd")).to_have_text(["1", "2", "3"])
    expect(page.locator("#classes .name")).to_have_text(list(COLOURS))
    names = label_by_key(page, 20)
    session = server.session
    wait_for(lambda: len(session.decisions) == 20 and session.trained_after == 20
             and session.trained_version == session.version)
    decisions = final_decisions(read_labels_log(tmp_path / "labels.csv"))
    assert {Path(path).name: label for path, label in decisions.items()} == {
        name: colour_of(name) for name in names}
    expect(page.locator("#labelled")).to_contain_text("Labelled 20 of 30")
    expect(page.locator("#serving")).to_contain_text("after label 20")
    expect(page.locator("#recent li")).to_have_count(10)
    assert load_model(tmp_path / "model.skops").classes_.tolist() == list(COLOURS)
    assert max(page.evaluate("window.labellingLatencies")) < 1000
    assert page.errors == []


@pytest.mark.auto_precision
def test_page_filters_the_classes_by_typing(page, server):
    """'/' then a few letters narrows the buttons; a digit picks a match, Enter the first."""
    open_page(page, server)
    first = page.locator("#filename").text_content()
    page.keyboard.press("/")
    page.keyboard.type("e")  # red, green, blue all hold an e
    expect(page.locator("#classes .name")).to_have_text(list(COLOURS))
    page.keyboard.type("e")  # only green holds "ee"
    expect(page.locator("#classes .name")).to_have_text(["green"])
    expect(page.locator("#classes kbd")).to_have_text(["1"])
    page.keyboard.press("1")
    expect(page.locator("#filename")).not_to_have_text(first)
    second = page.locator("#filename").text_content()
    page.keyboard.press("/")
    page.keyboard.type("bl")
    page.keyboard.press("Enter")
    expect(page.locator("#filename")).not_to_have_text(second)
    expect(page.locator("#classes .name")).to_have_text(list(COLOURS))
    wait_for(lambda: len(server.session.decisions) == 2)
    by_name = {Path(server.session.paths[index]).name: label
               for index, label in server.session.decisions.items()}
    assert by_name == {first: "green", second: "blue"}


@pytest.mark.auto_precision
def test_page_undo_shows_the_image_again(page, server, tmp_path):
    """Backspace withdraws the last decision (a new row) and shows its image again."""
    open_page(page, server)
    first, second = label_by_key(page, 2)
    # Saved first: an undo of a decision still on its way cancels it on the page, no row.
    wait_for(lambda: len(server.session.decisions) == 2)
    page.keyboard.press("Backspace")
    expect(page.locator("#filename")).to_have_text(second)
    wait_for(lambda: len(server.session.decisions) == 1)
    rows = read_labels_log(tmp_path / "labels.csv")
    assert [row["event"] for row in rows[-3:]] == ["label", "label", "undo"]
    assert Path(rows[-1]["path"]).name == second
    page.keyboard.press("n")  # none of these, this time
    expect(page.locator("#filename")).not_to_have_text(second)
    wait_for(lambda: len(server.session.decisions) == 2)
    assert list(server.session.decisions.values())[-1] is None
    expect(page.locator("#labelled")).to_contain_text("+1 none of these")


@pytest.mark.auto_precision
def test_page_grid_confirms_all_but_the_clicked_images(page, server):
    """In the grid, clicked images are left out; Enter labels the rest with the class."""
    open_page(page, server)
    page.keyboard.press("g")
    figures = page.locator("#grid-images figure")
    expect(figures.first).to_be_visible()
    label = page.locator("#grid-class").input_value()
    n_shown = figures.count()
    rejected = int(figures.nth(0).get_attribute("data-index"))
    figures.nth(0).click()
    expect(figures.nth(0)).to_have_class(re.compile("rejected"))
    expect(page.locator("#grid-count")).to_have_text(str(n_shown - 1))
    page.keyboard.press("Enter")
    wait_for(lambda: len(server.session.decisions) == n_shown - 1)
    assert set(server.session.decisions.values()) == {label}
    assert rejected not in server.session.decisions
    page.keyboard.press("Escape")
    expect(page.locator("#single")).to_be_visible()
    expect(page.locator("#filename")).to_have_text(Path(server.session.paths[rejected]).name)


@pytest.mark.auto_precision
def test_page_shows_file_and_class_names_as_text(page, start_model, tmp_path):
    """A file named like markup, and a class added with markup in its name, stay text."""
    paths = write_folder(tmp_path / "photos", 0, extra=[XSS_NAME, "plain.png"])
    with LabellingServer(start_model, paths, tmp_path / "labels.csv").start() as server:
        open_page(page, server)
        if page.locator("#filename").text_content() != XSS_NAME:
            page.keyboard.press("s")
        expect(page.locator("#filename")).to_have_text(XSS_NAME)
        page.locator("#new-class").fill("<b>bold</b>")
        page.locator("#new-class").press("Enter")
        expect(page.locator("#classes button").nth(3)).to_contain_text("<b>bold</b>")
        page.keyboard.press("4")
        wait_for(lambda: list(server.session.decisions.values()) == ["<b>bold</b>"])
        expect(page.locator("#recent li").first).to_contain_text(XSS_NAME)
        assert page.locator("img[src='x'], b").count() == 0
        assert page.dialogs == [] and page.errors == []


@pytest.mark.auto_precision
def test_page_needs_the_token_and_keeps_it_in_a_cookie(page, server):
    """Without the token the server refuses; with it, an HttpOnly cookie replaces it."""
    response = page.goto(server.url.split("?")[0])
    assert response.status == 403
    response = page.goto(server.url)
    assert response.status == 200 and "token" not in page.url
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] == (
        server.token)
    assert page.goto(server.url.split("?")[0] + "api/state").status == 200


@pytest.mark.auto_precision
def test_page_refuses_a_rebound_host_name(page, server):
    """A page of another name that resolves to 127.0.0.1 (DNS rebinding) gets nothing."""
    response = page.goto(server.url.replace("127.0.0.1", REBOUND_HOST))
    assert response.status == 403
    assert "Host" in page.content()
    assert page.goto(server.url.replace("127.0.0.1", "localhost")).status == 200


def _command():
    script = Path(sys.executable).with_name("sklearn-taskres")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sklearn_taskres"]


def _start_label_command(argv):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    process = subprocess.Popen(_command() + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
    assert match, line + process.stderr.read() if process.poll() is not None else line
    return process, match.group(0)


def test_label_command_resumes_after_kill_9(page, tmp_path):
    """kill -9 after five labels: the rerun keeps them all and never shows those images again."""
    photos = tmp_path / "photos"
    write_folder(photos, 5)
    config = tmp_path / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    labels, model = tmp_path / "labels.csv", tmp_path / "model.skops"
    argv = ["label", str(photos), "--classes", *COLOURS, "--labels", str(labels), "-o",
            str(model), "--model-config", str(config), "--pretrained", "none", "--device",
            "cpu", "--no-browser"]
    process, url = _start_label_command(argv)
    try:
        page.goto(url)
        expect(page.locator("#filename")).not_to_have_text("")
        names = label_by_key(page, 5)
        wait_for(lambda: len(final_decisions(read_labels_log(labels))) == 5 and model.exists())
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert load_model(model).classes_.tolist() == list(COLOURS)  # whole, despite the kill
    process, url = _start_label_command(argv)
    try:
        page.goto(url)
        expect(page.locator("#labelled")).to_contain_text("Labelled 5 of 15")
        expect(page.locator("#filename")).not_to_have_text("")
        assert page.locator("#filename").text_content() not in names
        offered = page.evaluate("fetch('/api/queue?n=50').then((r) => r.json())")
        assert len(offered) == 10
        assert not {item["name"] for item in offered} & set(names)
        label_by_key(page, 1)
        wait_for(lambda: len(final_decisions(read_labels_log(labels))) == 6)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "6 image(s) labelled" in err


PRESS_AT_ONCE = """({keys, n}) => {
    const names = [];
    for (let i = 0; i < n; i++) {
        const name = document.getElementById("filename").textContent;
        names.push(name);
        const colour = name.includes("_") ? name.split("_")[0] : "red";
        document.dispatchEvent(new KeyboardEvent("keydown", {key: keys[colour]}));
    }
    return [names, window.labellingStats];
}"""


def label_at_machine_speed(page, n_images):
    """Press the key of every image's true class as soon as it is shown; return the names."""
    names = []
    for _ in range(n_images):
        name = page.locator("#filename").text_content()
        while not name or name in names:
            time.sleep(0.002)
            name = page.locator("#filename").text_content()
        names.append(name)
        page.keyboard.press(KEYS[colour_of(name)])
    return names


@pytest.mark.auto_precision
def test_thirty_keys_at_machine_speed_then_the_tab_closed_keep_thirty_rows(
        browser, start_model, tmp_path):
    """Thirty decisions as fast as the page shows images, the tab closed at once: 30 rows."""
    paths = write_folder(tmp_path / "photos", 20)
    labels = tmp_path / "labels.csv"
    with LabellingServer(start_model, paths, labels).start() as server:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        open_page(page, server)
        wait_for(lambda: page.evaluate("page.random.length + page.ranked.length") >= 8)
        names = label_at_machine_speed(page, 25)
        wait_for(lambda: page.evaluate("page.random.length") >= 5)
        # The last five in one go, as fast as a script can press them; then the tab is closed.
        last, stats = page.evaluate(PRESS_AT_ONCE, {"keys": KEYS, "n": 5})
        page.close()  # no wait: what is not saved yet leaves on pagehide
        names += last
        context.close()
        wait_for(lambda: len(server.session.decisions) == 30)
    # (An older model's pick may be shown when no random image is decoded yet: on a loaded
    # machine that happens here, so "stale" is not asserted.)
    assert stats["changes"] == 30
    assert stats["saved"] < 30  # the tab closed with changes unsent
    decisions = final_decisions(read_labels_log(labels))
    assert {Path(path).name: label for path, label in decisions.items()} == {
        name: colour_of(name) for name in names}
    assert len([row for row in read_labels_log(labels) if row["event"] == "label"]) == 30


@pytest.mark.auto_precision
def test_page_counts_changes_not_saved_and_names_them_when_the_server_is_gone(page, tmp_path):
    """The server killed while keys are pressed: the page says what it did not get; a restart
    keeps every saved label and never shows a labelled image again."""
    photos = tmp_path / "photos"
    write_folder(photos, 5)
    config = tmp_path / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    labels, model = tmp_path / "labels.csv", tmp_path / "model.skops"
    argv = ["label", str(photos), "--classes", *COLOURS, "--labels", str(labels), "-o",
            str(model), "--model-config", str(config), "--pretrained", "none", "--device",
            "cpu", "--no-browser"]
    process, url = _start_label_command(argv)
    try:
        page.goto(url)
        saved = label_by_key(page, 4)
        wait_for(lambda: len(final_decisions(read_labels_log(labels))) == 4)
        expect(page.locator("#unsaved")).to_be_hidden()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    lost = label_by_key(page, 3)
    expect(page.locator("#unsaved")).to_have_text("3 changes not saved yet")
    offline = page.locator("#offline")
    expect(offline).to_contain_text("not answering")
    for name in lost:
        expect(offline).to_contain_text(f"{name} → {colour_of(name)}")
    assert len(final_decisions(read_labels_log(labels))) == 4
    with pytest.raises(sync_api.Error, match="ERR_ABORTED"):
        page.goto(url)  # leaving with changes unsent: the browser asks first (dismissed here)
    assert page.dialogs == ["beforeunload: "]
    process, url = _start_label_command(argv)
    page = page.context.new_page()
    try:
        page.goto(url)
        expect(page.locator("#labelled")).to_contain_text("Labelled 4 of 15")
        rest = label_by_key(page, 11)
        assert not set(rest) & set(saved)
        wait_for(lambda: len(final_decisions(read_labels_log(labels))) == 15)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "15 image(s) labelled" in err


@pytest.mark.auto_precision
def test_a_change_the_server_refuses_gets_a_4xx_that_the_page_shows(page, server, tmp_path):
    """A decision about an unknown image: 400 with the reason, shown; the channel goes on."""
    open_page(page, server)
    status, body = page.evaluate("""fetch('/api/changes', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({changes: [{id: 'x-1', op: 'decide', index: 9999, label: 'red'}]})})
        .then(async (r) => [r.status, await r.json()])""")
    assert status == 400
    assert body["results"] == [{"id": "x-1", "ok": False, "error": body["error"]}]
    assert "expected an image index in 0..29; got 9999" in body["error"]
    page.evaluate("save({op: 'decide', index: 9999, label: 'red'}, {weight: 1})")
    expect(page.locator("#message")).to_contain_text(
        "Not saved:  → red: expected an image index in 0..29; got 9999")
    label_by_key(page, 2)
    wait_for(lambda: len(server.session.decisions) == 2)
    expect(page.locator("#unsaved")).to_be_hidden()
    assert not (tmp_path / "labels.csv").read_text().count("9999")
