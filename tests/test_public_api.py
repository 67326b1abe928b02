"""Each package's public surface is its `__all__`; the layering rules of STYLE.md hold."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LEAVES = {"monitor", "monitor.errors", "monitor.model", "monitor.units"}


@pytest.mark.parametrize("package", ["monitor", "rules", "storage", "notifiers"])
def test_all_names_exist(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    assert exported, f"{package} declares no __all__"
    for name in exported:
        assert hasattr(module, name), f"{package}.__all__ names missing {name}"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", ["rules", "storage", "notifiers"])
def test_layers_never_import_the_core(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if (name == "monitor" or name.startswith("monitor.")) and name not in LEAVES:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


@pytest.mark.parametrize("leaf", sorted(LEAVES - {"monitor"}))
def test_leaf_modules_import_nothing_of_the_project(leaf: str) -> None:
    path = ROOT / (leaf.replace(".", "/") + ".py")
    project = {"monitor", "rules", "storage", "notifiers"}
    own = {n for n in _imports(path) if n.split(".")[0] in project}
    assert own == set()
