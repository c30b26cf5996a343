"""The package's import graph has no cycle: no two modules need each other, at any depth.

Every import statement counts, wherever it is: at module level, inside a
function or an ``if TYPE_CHECKING:`` block, relative or absolute. A module
that needs another only inside a function still needs it (see STYLE.md,
item 13).
"""

import ast
import graphlib
from pathlib import Path

import pytest

import sklearn_taskres

PACKAGE = Path(sklearn_taskres.__file__).parent


def module_names(root):
    """``{dotted name: path}`` of every module under the package folder ``root``."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(name, path, modules):
    """``(imported module, line)`` of every import in ``path`` of a module of ``modules``."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                anchor = parts[: len(parts) - node.level + is_package]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                # ``from . import x`` imports the module x when there is one, else a name of .
                submodule = f"{base}.{alias.name}"
                found.append((submodule if submodule in modules else base, node.lineno))
    return [(target, line) for target, line in found if target in modules and target != name]


def import_cycles(root):
    """Each cycle of the import graph under ``root``, as ``a (path:line) -> b ... -> a``."""
    modules = module_names(root)
    lines = {}
    graph = {}
    for name, path in modules.items():
        graph[name] = set()
        for target, line in imports_of(name, path, modules):
            graph[name].add(target)
            lines.setdefault((name, target), f"{path.relative_to(root.parent)}:{line}")
    cycles = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as error:
            cycle = error.args[1][-1:0:-1]  # graphlib lists it against the edges
            start = cycle.index(min(cycle))  # named from its first module, alphabetically
            cycle = cycle[start:] + cycle[: start + 1]
            steps = [f"{a} ({lines[a, b]})" for a, b in zip(cycle, cycle[1:], strict=False)]
            cycles.append(" -> ".join(steps + [cycle[-1]]))
            graph[cycle[0]].discard(cycle[1])  # then look for the next one
        else:
            return cycles


def test_the_package_has_no_import_cycle():
    """No module of sklearn_taskres imports, at any depth, a module that imports it."""
    modules = module_names(PACKAGE)
    assert {"sklearn_taskres", "sklearn_taskres._config", "sklearn_taskres.reproduce"} <= set(
        modules
    )
    assert import_cycles(PACKAGE) == []


@pytest.mark.parametrize(
    "files, cycle",
    [
        pytest.param(
            {"a.py": "from .b import f\n", "b.py": "def f():\n    from .a import g\n"},
            "pkg.a (pkg/a.py:1) -> pkg.b (pkg/b.py:2) -> pkg.a",
            id="function-level",
        ),
        pytest.param(
            {"a.py": "import pkg.b\n", "b.py": "from pkg.a import g\n"},
            "pkg.a (pkg/a.py:1) -> pkg.b (pkg/b.py:1) -> pkg.a",
            id="absolute",
        ),
        pytest.param(
            {"a.py": "from . import b\n", "b.py": "from . import a\n"},
            "pkg.a (pkg/a.py:1) -> pkg.b (pkg/b.py:1) -> pkg.a",
            id="from-dot-import-module",
        ),
        pytest.param(
            {"sub/__init__.py": "from ._x import f\n", "sub/_x.py": "from . import g\n"},
            "pkg.sub (pkg/sub/__init__.py:1) -> pkg.sub._x (pkg/sub/_x.py:1) -> pkg.sub",
            id="a-name-of-the-package",
        ),
        pytest.param(
            {"sub/__init__.py": "", "sub/_x.py": "from ...pkg.a import f\n",
             "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from .sub._x import h\n"},
            "pkg.a (pkg/a.py:3) -> pkg.sub._x (pkg/sub/_x.py:1) -> pkg.a",
            id="two-levels-up-and-type-checking",
        ),
    ],
)
def test_cycles_are_found_and_named(tmp_path, files, cycle):
    """Each way of writing an import counts; the cycle is named with its import lines."""
    root = tmp_path / "pkg"
    for relative, text in {"__init__.py": "", **files}.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    assert import_cycles(root) == [cycle]


def test_modules_without_cycles_pass(tmp_path):
    """A package whose __init__ re-exports its modules, which import each other one way."""
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "__init__.py").write_text("from ._a import f\nfrom ._b import g\n")
    (root / "_a.py").write_text("def f():\n    from ._b import g\n    return g\n")
    (root / "_b.py").write_text("import json\nfrom os import path\ndef g():\n    pass\n")
    assert import_cycles(root) == []
