import json
import math
import os
import subprocess
import sys
from pathlib import Path

from doc_blocks import ROOT, block

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"
PAGE = "docs/user_guide/benchmarks.rst"

RATIOS = {
    "residual_training": "1. residual training",
    "fit_vs_official": "2. fit",
    "grid_search_vs_fit": "3. grid search",
    "predict_vs_encoder": "4. predict",
    "taskres_vs_logistic": "5. TaskRes vs LogisticRegression",
    "fit_vs_encoding": "6. fit vs encoding",
}


def test_tiny_benchmark_prints_every_ratio_and_writes_them_to_json(tmp_path):
    """The smoke run of docs/user_guide/benchmarks.rst, as printed, offline: six ratios, JSON."""
    (command,) = block(PAGE, 0).commands
    (tmp_path / "benchmarks").symlink_to(BENCHMARK.parent)  # run.py of this checkout
    output = tmp_path / "tiny.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    for title in RATIOS.values():
        assert f"[tiny] {title}" in result.stdout
    assert "same residual: yes" in result.stdout and "with sample weights" in result.stdout
    assert "EXTRAPOLATED linearly" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("config"))
    for stage in ("load", "text", "decode", "encode", "train", "predict"):
        assert stage in header

    results = json.loads(output.read_text())
    assert results["config"] == "tiny" and results["device"] == "cpu"
    assert {"date", "device_name", "torch", "breakdown"} <= results.keys()
    ratios = results["ratios"]["tiny"]
    assert set(ratios) == set(RATIOS)
    training = ratios["residual_training"]
    assert training["same_residual"] is True
    assert training["weighted_max_relative_difference"] <= training["tolerance"]
    for entry in ratios.values():
        assert isinstance(entry["ratio"], float)
        assert math.isfinite(entry["ratio"]) and entry["ratio"] > 0


def test_every_configuration_measures_registered_ratios(monkeypatch):
    """Every configuration measures registered ratios; by default the six, in printed order.

    Ratios 7 and 9 (Ray Data) are measured by the ``ray`` configuration alone.
    """
    monkeypatch.syspath_prepend(str(BENCHMARK.parent))
    from taskres_bench.configs import CONFIGS
    from taskres_bench.registry import MEASUREMENTS

    defaults = {key: m.title for key, m in MEASUREMENTS.items() if m.default}
    assert defaults == RATIOS
    assert MEASUREMENTS["predict_dataset_vs_predict"].title == "7. Ray Data predict_dataset"
    assert CONFIGS["ray"].ratios == ("predict_dataset_vs_predict",
                                     "ray_photos_bytes_vs_read_images")
    assert MEASUREMENTS["ray_photos_bytes_vs_read_images"].title == "9. Ray Data photos"
    assert not CONFIGS["ray"].in_all
    assert CONFIGS["tiny"].ratios == tuple(RATIOS)
    for config in CONFIGS.values():
        assert config.ratios and set(config.ratios) <= MEASUREMENTS.keys()


def test_every_configuration_the_page_names_is_one_run_py_takes(monkeypatch):
    """The benchmarks page names only configurations that exist, and documents each one."""
    import re

    monkeypatch.syspath_prepend(str(BENCHMARK.parent))
    from taskres_bench.configs import CONFIGS

    page = (ROOT / PAGE).read_text(encoding="utf-8")
    terms = re.findall(r"^``([a-z-]+)``( \(.*\))?$", page, flags=re.MULTILINE)
    listed = {name for name, _ in terms}
    assert listed == {*CONFIGS, "all", "store"}
