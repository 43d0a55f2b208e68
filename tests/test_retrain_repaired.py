"""A repaired store file retrains the run that skipped it, under real Snakemake, and only once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from asnet import paths
from asnet.train import checkpoint, skips
from asnet.train.loop import split_validation

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "single"


def _snakemake(work: Path, config: Path, *args: str) -> str:
    proc = subprocess.run(SNAKEMAKE + ["--directory", str(work), "--cores", "1", *args, "--configfile", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_restoring_a_skipped_store_file_retrains_its_run_once(tiny_workdir: Path, tmp_path: Path) -> None:
    """Train with one training video's .npy truncated: the run records it, and `snakemake -n`
    has nothing to do. Restore the original bytes: the dry run lists that run's train job
    (its `store` param changed), the run trains from scratch with the video, and `snakemake
    -n` is clean again (the param is stable after the retrain)."""
    work = tmp_path
    shutil.copytree(tiny_workdir / "data", work / "data")  # prepared and extracted (mtimes kept)
    config = work / "run.yaml"
    # One batch of every training video (none dropped), so the victim is read.
    config.write_text("preset: tiny\nvariants: [single]\ntrain: {epochs: 1, batch_size: 64, val_fraction: 0.2}\n")
    manifest = pd.read_csv(work / paths.manifest(DATASET, SPLIT))
    train_df, _ = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True), 0.2, 0)
    victim = str(train_df["video"].iloc[0])
    bad = work / paths.frames_dir(DATASET) / f"{victim}.npy"
    original = bad.read_bytes()
    bad.write_bytes(original[:-1000])
    target = str(paths.run_dir(DATASET, SPLIT, VARIANT) / "model.pt")
    run = work / paths.run_dir(DATASET, SPLIT, VARIANT)

    _snakemake(work, config, target)
    assert checkpoint.load(run / "model.pt")["history"][0]["skipped_videos"] == 1
    rec = skips.read_record(run)
    assert rec[["video", "where"]].values.tolist() == [[victim, "train"]]
    assert int(rec["size"].iloc[0]) == bad.stat().st_size
    assert "Nothing to be done" in _snakemake(work, config, target, "-n")

    bad.write_bytes(original)
    dry = _snakemake(work, config, target, "-n")
    assert "Params have changed" in dry and "train" in dry[dry.index("Job stats:"):], dry
    out = _snakemake(work, config, target)
    assert "Nothing to be done" not in out
    history = checkpoint.load(run / "model.pt")["history"]
    assert len(history) == 1 and "skipped_videos" not in history[0]
    assert not skips.record_path(run).exists()
    log = (work / "results/logs" / DATASET / f"split{SPLIT}" / VARIANT / "train.log").read_text()
    assert "training from scratch" in log
    assert "Nothing to be done" in _snakemake(work, config, target, "-n")
