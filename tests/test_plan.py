"""`asnet plan`: the fake-tensor step peak, the plan table on the tiny and paper presets, and
--measure's real steps on the CPU agreeing with the fake ones."""

from __future__ import annotations

import gc
from pathlib import Path

import pandas as pd
import pytest
import torch

from asnet.cli import main
from asnet.config import load_config
from asnet.memory import LiveBytes
from asnet.plan import jobs
from asnet.plan.step import GIB, oom_message, step_peak_bytes, train_peak_bytes
from asnet.plan.table import plan

TINY = load_config(overrides=["preset=tiny"])


def test_live_bytes_counts_storages_once_and_releases_them() -> None:
    with LiveBytes() as live:
        a = torch.empty(1000)
        view = a.view(10, 100)
        b = a * 2
        assert live.current == 8000 and live.peak == 8000
        del b
        gc.collect()
        assert live.current == 4000 and live.peak == 8000
        del a, view
        gc.collect()
        assert live.current == 0


def test_plan_on_the_tiny_preset(tmp_path: Path, capsys) -> None:
    out = tmp_path / "plan.csv"
    assert main(["plan", "--set", "preset=tiny", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "assumed achieved TFLOP/s" in printed and "a100-40" in printed
    df = pd.read_csv(out)
    assert list(df["job"]) == ["train", "evaluate", "train", "evaluate"]
    assert set(df["variant"]) == {"single", "asnet"} and (df["jobs"] == 1).all()
    train = df[df["job"] == "train"].set_index("variant")
    assert train.loc["asnet", "peak_gib"] > train.loc["single", "peak_gib"] > 0
    assert train.loc["asnet", "gflop_step"] > train.loc["single", "gflop_step"]
    assert (train["steps_epoch"] == 2).all()  # 12 training videos - 20% validation = 10, batch 4, last dropped
    assert (df[[c for c in df if c.startswith("fit_")]] == "ok").all().all()


def test_plan_on_the_paper_preset_needs_no_data_and_no_gpu() -> None:
    cfg = load_config(overrides=["preset=paper", "splits=[1]", "variants=[asnet]"])
    df = plan(cfg)
    train = df[df["job"] == "train"].set_index("dataset")
    assert list(train.index) == ["ucf101", "hmdb51"] and (train["precision"] == "fp16").all()
    # 9537 UCF-101 split-1 training videos less 10% validation, batches of 32
    assert train.loc["ucf101", "steps_epoch"] == (9537 - 954) // 32
    assert 5 < train.loc["ucf101", "peak_gib"] < 12  # ResNeXt-101, 2 x 32 clips of 16 x 112^2, fp16
    assert train.loc["ucf101", "fit_24g"] == "ok" and train.loc["ucf101", "gpu_h_job"] > 0


def test_measure_on_the_cpu_times_real_steps_whose_peak_is_the_fake_one() -> None:
    df = plan(TINY, measure=True, measure_steps_n=3)
    train = df[df["job"] == "train"]
    assert (train["tflops_source"] == "measured").all() and (train["measured_s_step"] > 0).all()
    # the same step on real CPU tensors holds what the fake step predicted (LiveBytes on both)
    ratio = train["measured_peak_gib"] / train["peak_gib"]
    assert ratio.between(0.99, 1.01).all(), ratio


def test_oom_message_names_the_preset_the_need_and_the_accumulation_that_fits() -> None:
    need = step_peak_bytes(TINY, "asnet", 3, 4, "cpu")
    half = train_peak_bytes(TINY, "asnet", 3, 2, "cpu", accum_steps=2)
    assert half < need
    msg = oom_message(TINY, "asnet", 3, half, "synthetic_tiny/split1/asnet", device_type="cpu")
    assert "preset tiny" in msg and "train.accum_steps=2" in msg and "nproc_per_node=2" in msg
    assert f"{need / GIB:.2f} GiB" in msg
    none = oom_message(TINY, "asnet", 3, 1000, "synthetic_tiny/split1/asnet", device_type="cpu")
    assert "no split fits" in none


def test_official_ucf101_split_sizes_are_the_lists_line_counts() -> None:
    lists = Path("/work/shared/datasets/ucf101/ucfTrainTestlist")
    if not lists.exists():
        pytest.skip("official UCF-101 split lists not on this machine")
    for split, (train, test) in jobs.OFFICIAL_SPLITS["ucf101"].items():
        count = lambda n: sum(1 for line in (lists / n).read_text().splitlines() if line.strip())  # noqa: E731
        assert (count(f"trainlist0{split}.txt"), count(f"testlist0{split}.txt")) == (train, test)


def test_unknown_target_and_gpu_are_named() -> None:
    with pytest.raises(ValueError, match="--target 'table9'"):
        jobs.target_runs(TINY, "table9")
    with pytest.raises(ValueError, match="--gpu 'v100'"):
        plan(TINY, gpu="v100")


def test_plan_counts_every_replicate_seed() -> None:
    one = plan(load_config(overrides=["preset=tiny"]))
    three = plan(load_config(overrides=["preset=tiny", "seeds=[0, 1, 2]"]))
    assert (three["jobs"] == 3 * one["jobs"]).all()
