"""The command of docs/user_guide/reproducing.rst, as printed, offline, on a small CoOp root.

The root holds the three datasets the command names, in CoOp's layout, with 16 training
images per class so that every shot count draws; RN50 with OpenAI's weights loads from a
local Hugging Face cache holding random RN50 weights under the name open_clip downloads.
"""

import csv
import os
import subprocess
import sys

import pytest
from doc_blocks import block
from helpers import cache_random_weights
from test_reproduce import DTD, EUROSAT, write_split_dataset

PAGE = "docs/user_guide/reproducing.rst"
PETS = [("abyssinian", "abyssinian"), ("beagle", "beagle"), ("pug", "pug")]
SIZES = {"train": 16, "val": 1, "test": 2}


@pytest.mark.auto_precision
def test_the_reproduction_command_runs_as_printed(tmp_path, monkeypatch):
    """Zero-shot, linear probe and TaskRes for every dataset, shot count and seed."""
    import test_reproduce

    monkeypatch.setattr(test_reproduce, "SPLIT_SIZES", SIZES)
    root = tmp_path / "coop"
    write_split_dataset(root, "eurosat", "2750", "split_zhou_EuroSAT.json", EUROSAT, seed=0)
    write_split_dataset(root, "dtd", "images", "split_zhou_DescribableTextures.json", DTD,
                        seed=1)
    write_split_dataset(root, "oxford_pets", "images", "split_zhou_OxfordPets.json", PETS,
                        seed=2)
    cache = cache_random_weights(tmp_path / "hub", "RN50", "openai")
    (command,) = block(PAGE, 0).commands
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), TQDM_DISABLE="1",
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr
    results = tmp_path / "taskres-results"
    rows = [row for path in results.glob("*.csv") for row in csv.DictReader(path.open())]
    assert rows, sorted(path.name for path in results.iterdir())
    trained = {(row["dataset"], row["method"], row["shots"], row["seed"]) for row in rows
               if row["method"] != "zero-shot"}
    for dataset in ("eurosat", "dtd", "oxford_pets"):
        for shots in ("1", "2", "4", "8", "16"):
            for seed in ("1", "2", "3"):
                assert (dataset, "taskres", shots, seed) in trained
