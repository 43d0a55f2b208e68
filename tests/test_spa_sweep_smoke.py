"""benchmarks/spa_sweep.py end to end on the tiny set, and `asnet localisation` from the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from asnet.cli import main as asnet_main

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "spa_sweep.py"


def test_spa_sweep_reports_validation_iou_per_setting(in_tiny_workdir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep.csv"
    cmd = [sys.executable, str(SCRIPT), "--set", "preset=tiny", "--set", "spa.reward=oracle_iou", "--checkpoint", "none",
           "--updates", "2", "--gammas", "0", "0.9", "--state-norms", "running", "--lrs", "1e-3", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=in_tiny_workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "validation videos" in proc.stdout and "best constant box" in proc.stdout, proc.stdout
    table = pd.read_csv(out)
    assert list(table["gamma"]) == [0.0, 0.9] and set(table["state_norm"]) == {"running"}
    assert table["val_iou"].between(0, 1).all() and table["best_constant_val_iou"].nunique() == 1


def test_localisation_cli_writes_the_table_with_missing_runs_empty(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert asnet_main(["localisation", "--set", "preset=tiny", "--no-progress"]) == 0
    table = pd.read_csv(tmp_path / "results/localisation.csv")
    assert len(table) == 6 and table["Mean IoU"].isna().all()
