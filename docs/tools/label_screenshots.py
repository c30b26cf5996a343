"""Renders the screenshots of the labelling page for "Labelling a photo folder".

Serves the page of 300 held-out digit scans with the tiny digits CLIP (in this process,
through :class:`sklearn_taskres.label.LabellingServer`), labels 24 of them by key as a
person would, and screenshots the page with Playwright driving the system Chromium:

- ``docs/_static/label_page.png``: one image at a time, at 1280 pixels wide;
- ``docs/_static/label_page_grid.png``: the grid, one image clicked as "not this class";
- ``docs/_static/label_page_narrow.png``: the page on a phone, 390 pixels wide.

Offline; about a minute. Run it from the repository root:

    .venv/bin/python docs/tools/label_screenshots.py
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from sklearn_taskres import zero_shot_classifier
from sklearn_taskres.label import LabellingServer
from sklearn_taskres.testing import load_held_out_digits, trained_tiny_clip

STATIC = Path(__file__).resolve().parents[1] / "_static"


def save_small(source, name):
    """Quantised PNG: a screenshot of flat colours stays well under 200 KiB."""
    target = STATIC / name
    Image.open(source).convert("RGB").quantize(colors=96).save(target, optimize=True)
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")


def run():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Chromium (apt-get install chromium)")
    model, checkpoint = trained_tiny_clip()
    X, y = load_held_out_digits()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        photos = Path("photos")
        photos.mkdir()
        truth = {}
        for index, pixels in enumerate(X[:300]):
            name = f"scan_{index:04d}.png"
            Image.fromarray(pixels).resize((64, 64), Image.NEAREST).save(photos / name)
            truth[name] = str(y[index])
        classifier = zero_shot_classifier(
            {str(digit): str(digit) for digit in range(10)}, model=model,
            pretrained=str(checkpoint), templates=['a photo of the number: "{}".'],
            device="cpu", random_state=0)
        paths = sorted(str(path) for path in photos.iterdir())
        with LabellingServer(classifier, paths, "labels.csv", "taskres.skops").start() as server, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(server.url)
            page.wait_for_selector("#frame img")
            keys = {str(digit): str((digit + 1) % 10) for digit in range(10)}
            for _ in range(24):
                name = page.locator("#filename").text_content()
                page.keyboard.press(keys[truth[name]])
                page.wait_for_function(
                    "name => document.getElementById('filename').textContent !== name", arg=name)
                time.sleep(0.15)
            while server.session.trained_version != server.session.version:
                time.sleep(0.1)
            time.sleep(1.5)  # the next state poll shows the last refit
            page.screenshot(path="single.png")
            page.keyboard.press("g")
            page.wait_for_selector("#grid-images figure")
            time.sleep(0.5)
            label = page.locator("#grid-class").input_value()
            figures = page.locator("#grid-images figure")
            for position in range(figures.count()):  # click the first one the model got wrong
                caption = figures.nth(position).locator("figcaption").text_content()
                if truth[caption.split(" ")[0]] != label:
                    figures.nth(position).click()
                    break
            page.screenshot(path="grid.png")
            page.keyboard.press("Escape")
            page.set_viewport_size({"width": 390, "height": 844})
            time.sleep(0.5)
            page.screenshot(path="narrow.png", full_page=True)
            browser.close()
        save_small("single.png", "label_page.png")
        save_small("grid.png", "label_page_grid.png")
        save_small("narrow.png", "label_page_narrow.png")
        os.chdir(STATIC)


if __name__ == "__main__":
    run()
