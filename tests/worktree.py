"""A git clone of this repository with the developer's uncommitted work laid over it, so
tests that need a real clone (DVC, fresh-clone flows) test the tree under development."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clone_worktree(dst: Path, paths: Iterable[str]) -> Path:
    """`git clone` REPO into `dst`, then copy `paths` (files or folders) from the working tree over it."""
    subprocess.run(["git", "clone", "-q", str(REPO), str(dst)], check=True, capture_output=True, timeout=300)
    for rel in paths:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, dst / rel, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst / rel)
    return dst
