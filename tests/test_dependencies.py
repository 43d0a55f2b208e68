"""Every package asnet/ imports is a core dependency in pyproject.toml.

The bare install (`pip install -e .`) must run every stage (evaluation draws confusion.png
with matplotlib, extraction resizes with Pillow); the extras add tools around the package
(Snakemake, DVC, pytest). `.ci/bare_install` checks the same by really running a tiny
extract + train + evaluate in a clean venv; this test says which import is missing.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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


def test_every_import_is_a_core_dependency() -> None:
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    core = {_name(r) for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    dists = packages_distributions()
    missing = []
    for path in sorted((REPO / "asnet").rglob("*.py")):
        for module in sorted(_imports(path)):
            names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
            if not names & core:
                missing.append(f"{path.relative_to(REPO)}: import {module} (distribution {', '.join(sorted(names))})")
    assert not missing, "imported but not a core dependency in pyproject.toml:\n" + "\n".join(missing)
