"""Where the time of sklearn-taskres goes, and how it compares with the alternatives.

The benchmarks are the package ``taskres_bench`` beside this script, which
runs them: ``python benchmarks/run.py --help`` lists the options, and
benchmarks/README.md explains the configurations, the targets and a result.
"""

import sys
from pathlib import Path

# The checkout's own sklearn_taskres, whatever is installed; taskres_bench is beside this file.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from taskres_bench.main import main  # noqa: E402

if __name__ == "__main__":
    main()
