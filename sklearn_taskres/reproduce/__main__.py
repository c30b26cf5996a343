"""``python -m sklearn_taskres.reproduce``: the reproduction harness's command line."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
