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


def _one_line_error(proc: subprocess.CompletedProcess, command: str) -> str:
    """stderr of a run that must fail as bad input: exit 2, one `asnet CMD: error:` line, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(f"asnet {command}: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "train.epochs=[1"], "override 'train.epochs=[1': not a plain YAML value"),
        (["--set", "k=!!python/object/apply:os.system [id]"], "YAML tags are not allowed (!!python/object/apply"),
        (["--set", "train=5", "--set", "train.epochs=3"], "train was already set to 5"),
        (["--config", "."], "is a directory; expected a YAML config file"),
        (["--set", "model.depth=121"], "model.depth: resnet has no depth 121"),
        (["--split", "4"], "split 4 is not configured (splits: 1); pass --split 1"),
        (["--split", "2"], "split 2 is not configured (splits: 1); pass --split 1 or add it to `splits` in "
                           "your config (config/config.yaml, or the file given with --config / Snakemake's "
                           "--configfile) (--set 'splits=[1, 2]')"),
        (["--split", "1"], "data/synthetic_tiny/manifests/split1.csv: manifest not found; write it with "
                           "`asnet prepare --dataset synthetic_tiny`"),
    ],
)
def test_bad_input_is_one_error_with_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    proc = _asnet("train", "--dataset", "synthetic_tiny", "--variant", "single", "--set", "preset=tiny",
                  *(["--split", "1"] if "--split" not in args else []), *args, cwd=tmp_path)
    assert expected in _one_line_error(proc, "train")
    assert not (tmp_path / "results").exists()


def test_yaml12_float_override_passes_validation(tmp_path: Path) -> None:
    """`--set train.lr=1e-3` passes validation (it then stops at the missing manifest)."""
    proc = _asnet("train", "--dataset", "synthetic_tiny", "--split", "1", "--variant", "single",
                  "--set", "preset=tiny", "--set", "train.lr=1e-3", cwd=tmp_path)
    assert "manifest not found" in _one_line_error(proc, "train")


def test_missing_frames_name_the_command(tmp_path: Path, tiny_workdir: Path) -> None:
    (tmp_path / "data" / "synthetic_tiny").mkdir(parents=True)
    (tmp_path / "data" / "synthetic_tiny" / "manifests").symlink_to(tiny_workdir / "data/synthetic_tiny/manifests")
    proc = _asnet("train", "--dataset", "synthetic_tiny", "--split", "1", "--variant", "single",
                  "--set", "preset=tiny", cwd=tmp_path)
    assert "frames not extracted; run `asnet extract --dataset synthetic_tiny`" in _one_line_error(proc, "train")


def test_missing_model_names_the_command(tmp_path: Path, tiny_workdir: Path) -> None:
    (tmp_path / "data").symlink_to(tiny_workdir / "data")
    proc = _asnet("evaluate", "--dataset", "synthetic_tiny", "--split", "1", "--variant", "asnet",
                  "--set", "preset=tiny", cwd=tmp_path)
    assert ("results/checkpoints/synthetic_tiny/split1/asnet/model.pt: no trained model; run `asnet train "
            "--dataset synthetic_tiny --split 1 --variant asnet`") in _one_line_error(proc, "evaluate")


@pytest.mark.parametrize("content", [b"hello, not a checkpoint", b"", "pickled object"])
def test_unreadable_checkpoint_names_the_file(tmp_path: Path, tiny_workdir: Path, content: bytes | str) -> None:
    """A model.pt that is no safe checkpoint: one error naming it, never torch's weights_only=False advice."""
    import torch

    (tmp_path / "data").symlink_to(tiny_workdir / "data")
    model = tmp_path / "results/checkpoints/synthetic_tiny/split1/single/model.pt"
    model.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        model.write_bytes(content)
    else:  # loads only with weights_only=False: torch's UnpicklingError suggests exactly that
        torch.save({"config": Path("x")}, model)
    proc = _asnet("evaluate", "--dataset", "synthetic_tiny", "--split", "1", "--variant", "single",
                  "--set", "preset=tiny", cwd=tmp_path)
    line = _one_line_error(proc, "evaluate")
    assert f"{model.relative_to(tmp_path)}: not a checkpoint that loads safely with weights_only=True" in line
    assert not (tmp_path / "results/eval").exists()


def test_pretrained_file_that_is_no_safe_checkpoint(tmp_path: Path, tiny_workdir: Path) -> None:
    """model.pretrained naming a file of pickled objects: exit 2, never the advice to load it unsafely."""
    import torch

    (tmp_path / "data").symlink_to(tiny_workdir / "data")
    weights = tmp_path / "kinetics.pth"
    torch.save({"state_dict": Path("x")}, weights)
    proc = _asnet("train", "--dataset", "synthetic_tiny", "--split", "1", "--variant", "single",
                  "--set", "preset=tiny", "--set", f"model.pretrained={weights}", cwd=tmp_path)
    line = _one_line_error(proc, "train")
    assert "model.pretrained" in line or weights.name in line


def test_pretrain_says_what_is_missing(tmp_path: Path) -> None:
    error = _one_line_error(_asnet("pretrain", cwd=tmp_path), "pretrain")
    assert "data/synthetic_source/manifests/pretrain.csv: manifest not found" in error
    assert "asnet prepare --dataset synthetic_source" in error
    proc = _asnet("pretrain", "--set", "pretrain=null", "--set", "model.pretrained=null", cwd=tmp_path)
    assert "no `pretrain:` section" in _one_line_error(proc, "pretrain")


def test_check_pretrained_command(tmp_path: Path) -> None:
    """`asnet check-pretrained`: what planning the workflow checks, by hand; one error line for
    a file that is no checkpoint, "none" when every run starts from scratch."""
    weights = tmp_path / "kinetics.pth"
    weights.write_bytes(b"PK\x03\x04 the first bytes of a zip and nothing else")
    proc = _asnet("check-pretrained", "--set", "preset=tiny", "--set", f"model.pretrained={weights}",
                  "--set", "model.pretrained_release=hara2018", cwd=tmp_path)
    line = _one_line_error(proc, "check-pretrained")
    assert f"model.pretrained: the file variant single starts from does not load: {weights}" in line
    proc = _asnet("check-pretrained", "--set", "preset=tiny", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "none", proc.stderr
