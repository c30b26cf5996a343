"""Collection settings shared by the tests and the doctests of the package."""

import importlib.util
import os

# sklearn_taskres.ray needs the ray extra; without it (the minimum-versions
# environment) its doctests are not collected instead of failing to import.
collect_ignore = [] if importlib.util.find_spec("ray") else ["sklearn_taskres/ray.py"]

# The library's override of the CPU probe behind precision="auto"
# (sklearn_taskres._clip._encoder.NATIVE_BF16_ENV; named here so that configuring
# pytest imports neither torch nor open_clip). An environment variable, not a
# patch: the command-line, joblib and Ray tests run the library in other processes.
NATIVE_BF16_ENV = "SKLEARN_TASKRES_NATIVE_BF16"


def pytest_addoption(parser):
    parser.addoption(
        "--native-bf16", choices=("yes", "no"), default=None,
        help='answer "does this CPU have native bf16?" for the whole run, so that '
        'precision="auto" is bf16 (yes) or fp32 (no) as on the other kind of CPU '
        "(default: ask the CPU)",
    )


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        'auto_precision: the outcome depends on what precision="auto" resolves to; '
        ".ci/run runs these again with --native-bf16 answered the other way",
    )
    config.addinivalue_line(
        "markers",
        "slow: starts a server or another long-lived process (tens of seconds); part of the "
        "default run, left out with -m 'not slow'",
    )
    answer = config.getoption("--native-bf16")
    if answer is not None:
        os.environ[NATIVE_BF16_ENV] = answer


def pytest_report_header(config):
    answer = config.getoption("--native-bf16")
    if answer is not None:
        return f'native bf16: {answer} (--native-bf16), so precision="auto" is ' + (
            "bf16" if answer == "yes" else "fp32")
    return "native bf16: as this CPU answers (--native-bf16=yes|no to choose)"
