"""Renders docs/_static/review_page.png: the review page of the walkthrough, on the digits CLIP.

Runs the first steps of "Labelling a photo folder" (zero-shot from the names, predict,
review) on 300 held-out digit scans written as image files, then screenshots the page
with headless Chromium. Offline; about a minute. Run it from the repository root:

    .venv/bin/python docs/tools/review_screenshot.py
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

from sklearn_taskres.cli import main
from sklearn_taskres.testing import load_held_out_digits, trained_tiny_clip

OUTPUT = Path(__file__).resolve().parents[1] / "_static" / "review_page.png"


def run():
    model, checkpoint = trained_tiny_clip()
    X, _ = load_held_out_digits()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the page names the files as the walkthrough does
        root = Path(".")
        photos = root / "photos"
        photos.mkdir()
        for index, pixels in enumerate(X[:300]):
            Image.fromarray(pixels).save(photos / f"scan_{index:04d}.png")
        (photos / "scan_broken.jpg").write_bytes(b"not a jpeg")
        tiny = ["--model", model, "--pretrained", str(checkpoint), "--device", "cpu"]
        assert main(["zero-shot", "--classes", *map(str, range(10)), "-o",
                     str(root / "zero_shot.skops"), "--templates",
                     'a photo of the number: "{}".', *tiny]) == 0
        assert main(["predict", str(root / "zero_shot.skops"), str(photos), "--proba",
                     "--output", str(root / "predictions.csv")]) == 3
        page = root / "review.html"
        assert main(["review", str(root / "predictions.csv"), "-o", str(page), "--next", "12",
                     "--per-class", "6", "--thumbnail-size", "64"]) == 0
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            sys.exit("needs headless Chromium (apt-get install chromium)")
        screenshot = root / "page.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={Path(tmp) / 'profile'}", f"--screenshot={screenshot}",
                        "--window-size=900,1100", "--hide-scrollbars", page.resolve().as_uri()],
                       check=True, capture_output=True)
        image = Image.open(screenshot).convert("RGB")
        image.quantize(colors=64).save(OUTPUT, optimize=True)
        os.chdir(OUTPUT.parent)
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    run()
