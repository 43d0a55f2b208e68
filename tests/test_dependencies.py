"""Every package the code imports is declared in pyproject.toml, in the list that needs it.

The bare install (`pip install -e .`) must run extract and train: what the package imports
outside asnet/report/figures.py is a core dependency. `.ci/bare_install` checks the same by
really running a tiny extract + train in a clean venv; this test says which import is missing.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Modules whose imports may come from an extra instead of the core dependencies.
EXTRA_ONLY = {"asnet/report/figures.py": "figures"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    # importlib.import_module("x.y") with a literal name (frames.py's decoder lookup)
    out |= set(re.findall(r"import_module\(\s*[\"']([A-Za-z_]\w*)", path.read_text()))
    return out - set(sys.stdlib_module_names) - {"asnet", "__future__"}


def test_every_import_is_declared_where_it_is_needed() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = {k: {_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
    dists = packages_distributions()
    missing = []
    for path in sorted((REPO / "asnet").rglob("*.py")):
        rel = str(path.relative_to(REPO))
        allowed = core | extras.get(EXTRA_ONLY.get(rel, ""), set())
        for module in sorted(_imports(path)):
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            if not names & allowed:
                missing.append(f"{rel}: import {module} (distribution {', '.join(sorted(names))})")
    assert not missing, "imported but not declared in pyproject.toml:\n" + "\n".join(missing)
