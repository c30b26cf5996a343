"""Packaging configuration: one source of truth in pyproject.toml, setup.cfg only for the rest."""

import configparser
import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # tomllib is Python 3.11+; we support 3.10


def test_setup_cfg_holds_only_what_pyproject_cannot():
    """setup.cfg configures flake8 alone (it reads no pyproject.toml), nothing of setuptools."""
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    assert setup_cfg.sections() == ["flake8"]


def test_flake8_agrees_with_ruff():
    """The line length is ruff's: the two linters never contradict each other."""
    setup_cfg = configparser.ConfigParser()
    setup_cfg.read(ROOT / "setup.cfg")
    ruff = re.search(r"^\[tool\.ruff\]\nline-length = (\d+)$", PYPROJECT, re.MULTILINE)
    assert setup_cfg.getint("flake8", "max-line-length") == int(ruff.group(1))


def test_every_dependency_has_a_lower_bound_tested_by_min_versions():
    """The pins of .ci/min-versions are the lower bounds of pyproject.toml, one for one."""
    block = re.search(r"^dependencies = \[\n(.*?)^\]", PYPROJECT, re.MULTILINE | re.DOTALL)
    requirements = re.findall(r'^\s+"([^"]+)",$', block.group(1), re.MULTILINE)
    bounds = dict(requirement.split(">=") for requirement in requirements)
    script = (ROOT / ".ci" / "min-versions").read_text()
    pins = dict(line.strip().strip('"').split("==") for line in
                script.split("pins=(")[1].split(")")[0].strip().splitlines())
    untested = {"torch"}  # reused from the main environment: see .ci/min-versions
    assert set(pins) == set(bounds) - untested
    for name, version in pins.items():
        assert bounds[name] == version, name


def test_every_subpackage_is_shipped():
    """setuptools finds every package folder of sklearn_taskres (reproduce/ and the others)."""
    block = re.search(r"^\[tool\.setuptools\.packages\.find\]\ninclude = \[(.*)\]$", PYPROJECT,
                      re.MULTILINE)
    include = re.findall(r'"([^"]+)"', block.group(1))
    folders = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "sklearn_taskres").rglob("__init__.py")
    }
    assert {"sklearn_taskres.reproduce", "sklearn_taskres._feature_store"} <= folders
    # find's include patterns match dotted package names as fnmatch does.
    assert all(any(fnmatch.fnmatchcase(name, pattern) for pattern in include) for name in folders)
