import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_feature_store_benchmark_compares_both_stores(tmp_path):
    """500 vectors: one file each in the old layout, three files in the packed store."""
    output = tmp_path / "results.json"
    command = [sys.executable, str(BENCHMARK), "--config", "store", "--n", "500", "--width", "16",
               "--repeats", "1", "--dir", str(tmp_path), "--json", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "one file per vector" in result.stdout and "packed shards" in result.stdout
    stores = json.loads(output.read_text())["stores"]
    assert stores["one file per vector"]["files"] == 500
    assert stores["packed shards"]["files"] == 3
    assert stores["packed shards"]["bytes_in_files"] < 500 * (16 * 4 + 64) + 200
    for figures in stores.values():
        assert figures["write_seconds"] > 0 and figures["read_seconds"] > 0
    assert [path.name for path in tmp_path.iterdir()] == ["results.json"]  # cleaned up
