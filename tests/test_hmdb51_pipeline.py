"""HMDB-51 through the pipeline stages: prepare (manifests) and extract (frames) on a tiny
copy of the official layout, from folders and from the official archive layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archive_fixtures import hmdb51_archives, hmdb51_split_lines, hmdb51_videos, require_unar

from asnet import paths, stages
from asnet.config import Config, ConfigError, load_config

CLASSES = ["wave", "brush_hair", "cartwheel"]  # not alphabetical: labels must follow sorted order
PER_CLASS = 4  # per class and split: 1 test, 2 train, 1 unused


def _config(name: str, **entry: str) -> Config:
    fields = ", ".join(f"{k}: '{v}'" for k, v in {"name": name, "kind": "hmdb51", **entry}.items())
    # datasets is a list, so the override replaces the preset's list as a whole
    return load_config(overrides=["preset=tiny", f"datasets=[{{{fields}}}]", "splits=[1, 2]"])


def _check_manifest(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["video", "path", "label", "class_name", "subset"]
    assert (df["subset"].value_counts() == pd.Series({"train": 6, "test": 3})).all()
    assert dict(zip(df["class_name"], df["label"], strict=True)) == {"brush_hair": 0, "cartwheel": 1, "wave": 2}
    assert all(p == f"{c}/{v}.avi" for p, c, v in zip(df["path"], df["class_name"], df["video"], strict=True))
    assert not df["video"].str.endswith("_3").any()  # flag 0 (unused) videos are dropped


def test_prepare_and_extract_hmdb51(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    videos = hmdb51_videos(CLASSES, PER_CLASS)
    for rel, data in videos.items():
        (tmp_path / "hmdb51" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "hmdb51" / rel).write_bytes(data)
    lists = tmp_path / "testTrainMulti_7030_splits"
    lists.mkdir()
    for c in CLASSES:
        for k in (1, 2, 3):
            (lists / f"{c}_test_split{k}.txt").write_text(hmdb51_split_lines(videos, c))
    cfg = _config("hmdb_tiny", root="hmdb51", splits_dir="testTrainMulti_7030_splits")

    manifests = stages.prepare(cfg, "hmdb_tiny", progress=False)

    assert manifests == [paths.manifest("hmdb_tiny", 1), paths.manifest("hmdb_tiny", 2)]
    for m in manifests:
        _check_manifest(pd.read_csv(m))
    index = stages.extract(cfg, "hmdb_tiny", progress=False)
    assert len(index) == 9 and (index["status"] == "ok").all(), index
    for video in pd.read_csv(manifests[0])["video"]:
        frames = np.load(paths.frames_dir("hmdb_tiny") / f"{video}.npy")
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] >= cfg.input.clip_len
        assert min(frames.shape[1:3]) == cfg.frames.short_side


def test_prepare_unpacks_official_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_unar()
    rar, splits_rar, videos = hmdb51_archives(tmp_path / "downloads", CLASSES, PER_CLASS)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    entry = {"root": "data/raw/hmdb51", "splits_dir": "data/raw/testTrainMulti_7030_splits",
             "archive": str(rar), "splits_archive": str(splits_rar)}

    stages.prepare(_config("hmdb_arch", **entry), "hmdb_arch", progress=False)

    _check_manifest(pd.read_csv(paths.manifest("hmdb_arch", 1)))
    for rel, data in videos.items():
        assert (work / "data/raw/hmdb51" / rel).read_bytes() == data
    # a root the archives cannot produce is refused before anything is unpacked
    bad = {**entry, "root": "data/elsewhere/HMDB"}
    with pytest.raises(ConfigError, match=r"datasets\[hmdb_bad\]\.root: the archives unpack to .*hmdb51"):
        stages.prepare(_config("hmdb_bad", **bad), "hmdb_bad", progress=False)
    assert not (work / "data/elsewhere").exists()


def test_archive_needs_its_partner_keys() -> None:
    with pytest.raises(ConfigError, match="splits_archive"):
        _config("x", root="r", splits_dir="s", archive="a.rar")
