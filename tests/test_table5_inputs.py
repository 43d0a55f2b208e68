"""Table 5's inputs: the usable videos (excluded ones counted), its dataset key, its device."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from asnet import paths, stages
from asnet.config import ConfigError, load_config
from asnet.data.frames import INDEX_COLUMNS, STATUS_EXCLUDED, read_index
from asnet.report.svm import table5, video_features
from asnet.train.loop import train_run

DATASET, SPLIT = "synthetic_tiny", 1


@pytest.fixture(scope="module")
def tiny_runs(tiny_workdir: Path) -> dict[str, Path]:
    """A 1-epoch single-stream and ASNet run of the tiny preset (absolute paths)."""
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    manifest, frames = tiny_workdir / paths.manifest(DATASET, SPLIT), tiny_workdir / paths.frames_dir(DATASET)
    return {v: train_run(cfg, manifest, frames, tiny_workdir / "t5_runs" / v, v, progress=False)
            for v in ("single", "asnet")}


def _store_with_exclusions(tiny_workdir: Path, root: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A copy of the tiny store where one training video is marked excluded, and a manifest
    listing one more test video that extraction excluded (it has no frames at all)."""
    frames = root / "data" / DATASET / "frames"
    shutil.copytree(tiny_workdir / paths.frames_dir(DATASET), frames)
    manifest = pd.read_csv(tiny_workdir / paths.manifest(DATASET, SPLIT))
    dropped = str(manifest.loc[manifest["subset"] == "train", "video"].iloc[0])
    ghost = manifest.loc[manifest["subset"] == "test"].iloc[[0]].assign(video="ghost_video")
    manifest = pd.concat([manifest, ghost], ignore_index=True)
    index = read_index(frames)
    index.loc[index["video"] == dropped, ["status", "reason"]] = [STATUS_EXCLUDED, "decode error"]
    index = pd.concat([index, pd.DataFrame([["ghost_video", 0, 0, 0, float("nan"), 0, STATUS_EXCLUDED, "missing"]],
                                           columns=INDEX_COLUMNS)], ignore_index=True)
    index.to_csv(frames / "index.csv", index=False)
    path = root / "data" / DATASET / "manifests" / f"split{SPLIT}.csv"
    path.parent.mkdir(parents=True)
    manifest.to_csv(path, index=False)
    return path, frames, manifest


def test_table5_with_excluded_videos_runs_and_counts_them(tiny_workdir: Path, tiny_runs: dict[str, Path],
                                                          tmp_path: Path) -> None:
    manifest_path, frames, manifest = _store_with_exclusions(tiny_workdir, tmp_path)
    tex = tmp_path / "out" / "table5.tex"
    with pytest.warns(UserWarning, match="skipping 2 of"):
        df = table5(tiny_runs["single"], tiny_runs["asnet"], manifest_path, frames, tex, progress=False, device="cpu")
    n_train, n_test = int((manifest["subset"] == "train").sum()), int((manifest["subset"] == "test").sum())
    assert len(df) == 6 and df["Top-1"].between(0, 100).all()
    assert (df["Excluded"] == 2).all()
    assert (df["Train videos"] == n_train - 1).all() and (df["Test videos"] == n_test - 1).all()
    csv = pd.read_csv(tex.with_suffix(".csv"))
    assert csv.shape == (6, 12) and (csv["Excluded"] == 2).all()
    text = tex.read_text()
    assert f"Videos: {len(manifest) - 2} of {len(manifest)} (2 excluded at frame extraction" in text
    preds = pd.read_csv(tex.with_name("table5_predictions.csv"))
    assert len(preds) == 6 * (n_test - 1) and "ghost_video" not in set(preds["video"])


def test_table5_honours_device_cpu(tiny_workdir: Path, tiny_runs: dict[str, Path]) -> None:
    manifest = pd.read_csv(tiny_workdir / paths.manifest(DATASET, SPLIT))
    manifest = manifest.groupby("subset").head(2).reset_index(drop=True)  # a few videos suffice
    frames = tiny_workdir / paths.frames_dir(DATASET)
    vf = video_features(tiny_runs["single"], tiny_runs["asnet"], manifest, frames, progress=False, device="cpu")
    assert vf.device == "cpu" and vf.excluded == 0 and vf.listed == len(manifest)
    assert vf.feats["single"]["xc"].shape[0] == len(vf.rows) == len(manifest)
    if not torch.cuda.is_available():
        # The device is the caller's choice, not fixed: asking for CUDA where there is none fails.
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            video_features(tiny_runs["single"], tiny_runs["asnet"], manifest, frames, progress=False, device="cuda")


def test_table5_dataset_key_picks_the_dataset() -> None:
    cfg = load_config(overrides=["preset=tiny"])
    assert stages.table5_dataset(cfg) == cfg.datasets[0].name  # null: the first dataset
    paper = load_config(overrides=["preset=paper"])
    assert [d.name for d in paper.datasets][0] == "ucf101" and stages.table5_dataset(paper) == "hmdb51"
    assert all(DATASET not in str(p) and "hmdb51" in str(p) for p in stages.table5_inputs(paper))
    picked = load_config(overrides=["preset=paper", "report.table5_dataset=ucf101"])
    assert stages.table5_dataset(picked) == "ucf101"


def test_unknown_table5_dataset_names_the_key_and_the_choices() -> None:
    cfg = load_config(overrides=["preset=paper", "report.table5_dataset=kinetics"])
    with pytest.raises(ConfigError, match=r"report\.table5_dataset: 'kinetics'.*configured: ucf101, hmdb51"):
        stages.table5_inputs(cfg)
