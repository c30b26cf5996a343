import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, *args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_quickstart_runs_offline_on_the_trained_tiny_clip(tiny_digits_clip):
    """Without weights the quickstart says why, and TaskRes beats zero-shot on the tiny CLIP."""
    result = run_example("quickstart.py")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # the explanations are wrapped
    assert "cannot be used on this machine" in text
    assert "pretrained='/path/to/" in text
    assert "a tiny CLIP trained offline on scikit-learn's handwritten digits" in text
    zero_shot = float(re.search(r"zero-shot CLIP accuracy: ([0-9.]+)", result.stdout)[1])
    taskres = float(re.search(r"TaskRes accuracy: +([0-9.]+)", result.stdout)[1])
    assert 0.25 < zero_shot < taskres - 0.1


def test_diagnostics_example_writes_its_plots(tmp_path):
    """The diagnostics example runs and writes its three plots."""
    result = run_example("diagnostics.py", "--output", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "confusion_matrix.png", "loss_curve.png", "residual_norms.png"]
    assert "TaskRes accuracy:" in result.stdout
