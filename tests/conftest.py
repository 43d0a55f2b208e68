"""Shared fixtures: a tiny synthetic dataset, prepared and extracted once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from asnet import stages
from asnet.config import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory holding data/synthetic_tiny (videos, manifests, frames)."""
    work = tmp_path_factory.mktemp("tiny")
    old = os.getcwd()
    os.chdir(work)
    try:
        cfg = load_config(overrides=["preset=tiny"])
        stages.prepare(cfg, "synthetic_tiny", progress=False)
        stages.extract(cfg, "synthetic_tiny", progress=False)
    finally:
        os.chdir(old)
    return work


@pytest.fixture()
def in_tiny_workdir(tiny_workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tiny_workdir)
    return tiny_workdir


# What the tiny preset's full build makes: Table 6, the probes and Figure 4.
TINY_BUILD_TARGETS = ("results/table6.tex", "results/probes.tex", "results/figure4.pdf")


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workdir where Snakemake built TINY_BUILD_TARGETS on the tiny preset, once per test
    process. Tests read it as it is or go on from a copy (`copy_build`), never write to it."""
    work = tmp_path_factory.mktemp("tiny_build")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(work),
           "--cores", "2", *TINY_BUILD_TARGETS, "--config", "preset=tiny"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return work


def copy_build(build: Path, dst: Path) -> Path:
    """A copy of a built workdir, Snakemake's metadata and every mtime included."""
    shutil.copytree(build, dst, symlinks=True, dirs_exist_ok=True)
    return dst
