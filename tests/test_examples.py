import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True,
                          text=True, env=env, timeout=600)


def test_quickstart_runs_offline_and_says_it_is_a_smoke_run():
    """Without weights the quickstart explains why and runs the pipeline on a tiny model."""
    result = run_example("quickstart.py")
    assert result.returncode == 0, result.stderr
    assert "cannot be compared on this machine" in result.stdout
    assert "pretrained='/path/to/" in result.stdout
    assert "its accuracy means nothing" in result.stdout
    assert "zero-shot CLIP accuracy:" in result.stdout
    assert "TaskRes accuracy:" in result.stdout
