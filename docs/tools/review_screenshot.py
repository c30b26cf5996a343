"""Renders the review page's pictures of the documentation, on the digits CLIP.

Runs the first steps of "Labelling a photo folder" as the guide prints them (100 held-out
digit scans and a file that is not an image, ``zero-shot`` from the names with
``--model TinyDigitsCLIP``, ``predict``, ``review``), then screenshots the page with
headless Chromium:

- ``docs/_static/review_page.png``: the top of the page (the guide's figure);
- ``docs/_static/review_page_next.png``: the counts per class and "label these next" alone,
  at twice the pixel density, readable at the width of the landing page.

Offline; about a minute. Run it from the repository root:

    .venv/bin/python docs/tools/review_screenshot.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from sklearn_taskres.cli import main
from sklearn_taskres.testing import save_held_out_digits

STATIC = Path(__file__).resolve().parents[1] / "_static"
PAGE = STATIC / "review_page.png"
NEXT = STATIC / "review_page_next.png"


def screenshot(chromium, page, output, width, height, scale, profile):
    """A PNG of ``page`` in a ``width`` x ``height`` window at ``scale`` pixels per CSS pixel."""
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={profile}", f"--screenshot={output}",
                    f"--window-size={width},{height}", f"--force-device-scale-factor={scale}",
                    "--hide-scrollbars", Path(page).resolve().as_uri()],
                   check=True, capture_output=True)
    return Image.open(output).convert("RGB")


def trim_bottom(image, margin):
    """``image`` without the white rows below its content, ``margin`` rows left."""
    pixels = np.asarray(image.convert("L"))
    rows = np.flatnonzero((pixels < 250).any(axis=1))
    return image.crop((0, 0, image.width, min(image.height, rows[-1] + 1 + margin)))


def run():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs headless Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page names the files as the guide does
        save_held_out_digits("photos", 100)
        Path("photos/scan_broken.jpg").write_text("not an image\n")
        assert main(["zero-shot", "--classes", *map(str, range(10)), "-o", "zero_shot.skops",
                     "--model", "TinyDigitsCLIP", "--templates",
                     'a photo of the number: "{}".']) == 0
        assert main(["predict", "zero_shot.skops", "photos/", "--proba",
                     "--output", "predictions.csv"]) == 3
        assert main(["review", "predictions.csv", "-o", "review.html", "--per-class", "6",
                     "--thumbnail-size", "64"]) == 0
        profile = Path(tmp) / "profile"
        page = screenshot(chromium, "review.html", "page.png", 900, 1100, 1, profile)
        page.quantize(colors=64).save(PAGE, optimize=True)

        # The counts and "label these next": the page cut before the first class.
        text = Path("review.html").read_text(encoding="utf-8")
        Path("next.html").write_text(text.split('<h2 id="class-0">')[0] + "</body></html>\n",
                                     encoding="utf-8")
        top = screenshot(chromium, "next.html", "next.png", 880, 1200, 2, profile)
        trim_bottom(top, margin=24).quantize(colors=64).save(NEXT, optimize=True)
        os.chdir(STATIC)
    for path in (PAGE, NEXT):
        print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    run()
