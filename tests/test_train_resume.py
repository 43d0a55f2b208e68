"""Training: a run killed with SIGKILL and restarted ends exactly where an uninterrupted
run ends (same weights, same metrics); seeded CPU runs are identical."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asnet import paths, stages
from asnet.config import LAUNCH_ONLY_KEYS, TRAINING_SECTIONS, Config, load_config
from asnet.train import checkpoint
from asnet.train.evaluate import evaluate_run
from asnet.train.loop import _check_resumable, train_run

OVERRIDES = ["preset=tiny", "train.epochs=4"]
DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "asnet"


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(in_tiny_workdir: Path) -> None:
    cfg = load_config(overrides=OVERRIDES)
    ref_dir = in_tiny_workdir / "reference"
    train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), ref_dir, VARIANT, progress=False)
    ref_metrics = evaluate_run(
        ref_dir / "model.pt", paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), ref_dir / "eval", progress=False
    )

    run_dir = paths.run_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(run_dir, ignore_errors=True)  # the shared workdir may hold this run from another test
    cmd = [sys.executable, "-m", "asnet.cli", "train", "--dataset", DATASET, "--split", str(SPLIT),
           "--variant", VARIANT, "--no-progress"] + [a for o in OVERRIDES for a in ("--set", o)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "state" / "last.pt"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert state.exists(), "the first epoch's checkpoint never appeared"
    assert not (run_dir / "model.pt").exists(), "the run finished before it could be killed"
    killed_at = checkpoint.load(state)["epoch"]
    assert killed_at < 3

    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    resumed = checkpoint.load(run_dir / "model.pt")
    reference = checkpoint.load(ref_dir / "model.pt")
    assert _state_equal(resumed["model"], reference["model"])
    assert _state_equal(resumed["agent"], reference["agent"])
    assert resumed["history"] == reference["history"]
    metrics = stages.evaluate(cfg, DATASET, SPLIT, VARIANT, progress=False)
    assert metrics == ref_metrics
    saved = json.loads((paths.eval_dir(DATASET, SPLIT, VARIANT) / "metrics.json").read_text())
    assert saved["top1"] == ref_metrics["top1"]


def test_checkpoints_load_weights_only_and_carry_metadata(in_tiny_workdir: Path) -> None:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    out = in_tiny_workdir / "meta_run"
    model_path = train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False)
    ck = torch.load(model_path, weights_only=True)
    assert ck["variant"] == "single" and ck["config"]["preset"] == "tiny" and len(ck["git_sha"]) >= 7
    last = torch.load(out / "state" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "rng", "epoch"} <= set(last)
    assert isinstance(last["rng"]["torch"], torch.Tensor)
    assert not list(out.rglob("*.tmp")), "temporary checkpoint files left behind"


def test_resume_refuses_a_different_configuration(in_tiny_workdir: Path) -> None:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    out = in_tiny_workdir / "cfg_run"
    (out / "model.pt").unlink(missing_ok=True)
    train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False, stop_after_epoch=0)
    other = load_config(overrides=["preset=tiny", "train.epochs=2", "model.width=16"])
    with pytest.raises(ValueError, match=r"different configuration \(model.width\)"):
        train_run(other, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False)
    # A dataset defined differently does, even with every training section equal.
    regen = load_config(overrides=["preset=tiny", "train.epochs=1"])
    regen = dataclasses.replace(regen, datasets=(dataclasses.replace(regen.datasets[0], synthetic={
        **regen.datasets[0].synthetic, "seed": 99}),))
    with pytest.raises(ValueError, match=r"different configuration \(datasets\[synthetic_tiny\]\.synthetic\.seed\)"):
        train_run(regen, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False)
    # What says which runs exist (variants, splits, tables) does not block resuming this one.
    more = load_config(overrides=["preset=tiny", "train.epochs=1", "splits=[1,2]", "variants=[single,asnet]",
                                  "report.table2_backbones=[resnet18]"])
    train_run(more, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False)
    assert (out / "model.pt").exists()


def _changed(value: object) -> object:
    """Another value of the same kind (validity does not matter: neither side validates)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, tuple):
        return (_changed(value[0]),) + value[1:] if value else ("x",)
    if dataclasses.is_dataclass(value):  # e.g. pretrain.dataset: another source set
        first = dataclasses.fields(value)[0].name
        return dataclasses.replace(value, **{first: _changed(getattr(value, first))})
    return "x"  # None


def _variants_of_every_training_key(cfg: Config) -> list[tuple[tuple[str, str], Config]]:
    out = []
    for section in TRAINING_SECTIONS:
        part = getattr(cfg, section)
        if not dataclasses.is_dataclass(part):
            out.append(((section, ""), dataclasses.replace(cfg, **{section: _changed(part)})))
            continue
        for f in dataclasses.fields(part):
            new = dataclasses.replace(part, **{f.name: _changed(getattr(part, f.name))})
            out.append(((section, f.name), dataclasses.replace(cfg, **{section: new})))
    return out


@pytest.mark.parametrize("fine_tune", [False, True])
def test_retraining_and_resuming_agree_on_every_key(fine_tune: bool) -> None:
    """A key changes the train rule's digest exactly when it stops a run from resuming
    (frames.chunks retrains nothing and resumes), except train.epochs: more epochs retrain
    (the rule reruns) by resuming; fewer than the state already holds are refused. The
    `pretrain` section counts only for a run that fine-tunes from the pretraining run."""
    tune = ["model.pretrained=results/pretrain/synthetic_tiny_source/model.pt"] if fine_tune else []
    cfg = load_config(overrides=["preset=tiny", "train.epochs=4", *tune])
    state = {"config": cfg.to_dict(), "epoch": 1}
    digest = stages.train_signature(cfg, DATASET, "single")
    launch_only, checked = set(), 0
    for key, other in _variants_of_every_training_key(cfg):
        retrains = stages.train_signature(other, DATASET, "single") != digest
        try:
            _check_resumable(state, other, Path("run/state/last.pt"))
            refuses = False
        except ValueError:
            refuses = True
        if key == ("train", "epochs"):
            assert retrains and not refuses
        else:
            assert retrains == refuses, f"{'.'.join(key)}: changes the digest {retrains}, blocks resume {refuses}"
        launch_only |= {key} if not retrains else set()
        checked += 1
    unused = set() if fine_tune else {("pretrain", f.name) for f in dataclasses.fields(cfg.pretrain)}
    assert launch_only == set(LAUNCH_ONLY_KEYS) | unused and checked > 50  # every key of every section
    fewer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=1))
    with pytest.raises(ValueError, match=r"2 epochs.*train\.epochs is 1"):
        _check_resumable(state, fewer, Path("run/state/last.pt"))
