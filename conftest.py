"""Collection settings shared by the tests and the doctests of the package."""

import importlib.util

# sklearn_taskres.ray needs the ray extra; without it (the minimum-versions
# environment) its doctests are not collected instead of failing to import.
collect_ignore = [] if importlib.util.find_spec("ray") else ["sklearn_taskres/ray.py"]
