"""Shared fixtures: a tiny synthetic dataset, prepared and extracted once per session."""

from __future__ import annotations

import os
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
