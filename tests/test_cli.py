"""The `asnet` command line as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASNET_SHARED", REPO.parent / "shared"))
UCF_LISTS = SHARED / "datasets" / "ucf101" / "ucfTrainTestlist"


def _asnet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asnet.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not UCF_LISTS.is_dir(), reason=f"official UCF-101 lists not found at {UCF_LISTS}")
@pytest.mark.parametrize("split, train, test", [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)])
def test_manifest_from_official_ucf101_lists(tmp_path: Path, split: int, train: int, test: int) -> None:
    out = tmp_path / f"split{split}.csv"
    proc = _asnet("manifest", "--dataset", "ucf101", "--splits", str(UCF_LISTS), "--split", str(split),
                  "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    df = pd.read_csv(out)
    assert list(df.columns) == ["video", "path", "label", "class_name", "subset"]
    assert (df["subset"] == "train").sum() == train and (df["subset"] == "test").sum() == test
    assert df["label"].nunique() == 101


def test_bad_override_is_a_clear_error(tmp_path: Path) -> None:
    proc = _asnet("prepare", "--dataset", "synthetic", "--set", "frames.short_side=tiny", cwd=tmp_path)
    assert proc.returncode == 2
    assert "frames.short_side:" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "data").exists()


def test_unknown_dataset_name(tmp_path: Path) -> None:
    proc = _asnet("prepare", "--dataset", "ucf", cwd=tmp_path)
    assert proc.returncode == 2 and "no dataset named 'ucf'" in proc.stderr


def test_real_dataset_without_root_says_what_to_set(tmp_path: Path) -> None:
    proc = _asnet("prepare", "--dataset", "ucf101", "--set", "preset=paper", cwd=tmp_path)
    assert proc.returncode == 2
    assert "datasets[ucf101].root" in proc.stderr and "config/config.yaml" in proc.stderr


def test_pretrain_says_what_is_missing(tmp_path: Path) -> None:
    proc = _asnet("pretrain", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "data/synthetic_source/manifests/pretrain.csv not found" in proc.stderr
    assert "asnet prepare --dataset synthetic_source" in proc.stderr
    proc = _asnet("pretrain", "--set", "pretrain=null", "--set", "model.pretrained=null", cwd=tmp_path)
    assert proc.returncode == 2 and "no `pretrain:` section" in proc.stderr
