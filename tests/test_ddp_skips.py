"""Unreadable training videos under torchrun (CPU, gloo): the ranks agree on every step.

A rank whose whole batch is unreadable would miss the step's collectives (DDP's gradient
all-reduce, PPO's), and a rank with part of its batch would run fewer PPO minibatches: the
job hung or crashed on a collective mismatch. Here real store files are truncated so that,
by the job's own (seed, epoch) sharding, one rank loses its whole batch at one step and part
of it at another; the job must finish (bounded by a timeout: a hang is a failure), every
rank must end with the same parameters, and the epoch log must count every rank's skips.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch.utils.data import DistributedSampler
from torchrun_job import run_job

from asnet import paths
from asnet.config import load_config
from asnet.train import checkpoint, skips
from asnet.train.loop import split_validation

DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "asnet"
TIMEOUT_S = 120  # a 2-epoch tiny job takes 10-15 s; a hang must fail, never stall CI

# Run by torchrun instead of `-m asnet.cli`: the same CLI; every rank writes its own
# parameters after each epoch's state is saved (only rank 0 writes files otherwise).
SPY = """
import os, sys
import torch
from asnet import cli
from asnet.train import loop

_save = loop._save_state
def save_state(parts, cfg, epoch, *args, **kwargs):
    _save(parts, cfg, epoch, *args, **kwargs)
    params = {f"model.{k}": p.detach().clone() for k, p in parts.model.named_parameters()}
    params.update({f"agent.{k}": p.detach().clone() for k, p in parts.agent.named_parameters()})
    torch.save(params, f"params_rank{os.environ['RANK']}_epoch{epoch}.pt")
loop._save_state = save_state
sys.exit(cli.main(sys.argv[1:]))
"""


def _shards(overrides: list[str], world: int, epoch: int) -> list[list[str]]:
    """Each rank's training videos of `epoch` that its steps load, in step order, as the
    job's sampler draws them (a rank's last short batch is dropped)."""
    cfg = load_config(overrides=overrides)
    manifest = pd.read_csv(paths.manifest(DATASET, SPLIT))
    train_df, _ = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True),
                                   cfg.train.val_fraction, cfg.seed)
    videos = train_df["video"].astype(str).tolist()
    out = []
    for rank in range(world):
        sampler = DistributedSampler(range(len(videos)), num_replicas=world, rank=rank, shuffle=True,
                                     seed=cfg.seed * 100_003, drop_last=True)
        sampler.set_epoch(epoch)
        shard, batch = [videos[i] for i in sampler], cfg.train.batch_size // world
        out.append(shard[: len(shard) // batch * batch] if len(shard) > batch else shard)
    return out


def _truncate(video: str) -> None:
    f = paths.frames_dir(DATASET) / f"{video}.npy"
    f.write_bytes(f.read_bytes()[:-1000])


def _run(work: Path, world: int, overrides: list[str], victims: list[str], monkeypatch: pytest.MonkeyPatch) -> dict:
    """Truncate `victims` in a copy of the tiny data in `work`, train `world` ranks for 2
    epochs there; the job must end in time."""
    shutil.copytree(Path.cwd() / "data", work / "data")
    (work / "spy.py").write_text(SPY)
    monkeypatch.chdir(work)
    for v in victims:
        _truncate(v)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world), "spy.py",
           "train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT, "--no-progress",
           *[a for o in overrides for a in ("--set", o)]]
    proc = run_job(cmd, work, TIMEOUT_S, f"{world}-rank job with unreadable videos")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return {"stderr": proc.stderr, "final": checkpoint.load(work / paths.run_dir(DATASET, SPLIT, VARIANT) / "model.pt")}


def _assert_ranks_equal(work: Path, world: int) -> None:
    for epoch in (0, 1):
        ref = torch.load(work / f"params_rank0_epoch{epoch}.pt", weights_only=True)
        for rank in range(1, world):
            got = torch.load(work / f"params_rank{rank}_epoch{epoch}.pt", weights_only=True)
            assert got.keys() == ref.keys()
            diff = [k for k in ref if not torch.equal(got[k], ref[k])]
            assert not diff, f"epoch {epoch}: rank {rank}'s parameters differ from rank 0's: {diff[:5]}"


def _expected_skips(overrides: list[str], world: int, victims: list[str]) -> list[int]:
    """Per epoch, the truncated videos that the epoch's shards hold (drop_last leaves some out)."""
    return [sum(v in victims for shard in _shards(overrides, world, e) for v in shard) for e in (0, 1)]


@pytest.mark.slow
def test_two_ranks_one_losing_its_whole_batch_and_part_of_another(in_tiny_workdir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """2 ranks x batch 2: in epoch 0 rank 0's first batch is all unreadable (every rank skips
    that step) and rank 1's second batch loses one of its two videos (trimmed weights, PPO
    minibatches as many as rank 0's)."""
    overrides = ["preset=tiny"]
    shards = _shards(overrides, 2, 0)
    victims = [shards[0][0], shards[0][1], shards[1][2]]
    out = _run(tmp_path, 2, overrides, victims, monkeypatch)
    _assert_ranks_equal(tmp_path, 2)
    history = out["final"]["history"]
    assert [h.get("skipped_videos", 0) for h in history] == _expected_skips(overrides, 2, victims)
    assert "no process trains this step" in out["stderr"]
    rec = skips.read_record(tmp_path / paths.run_dir(DATASET, SPLIT, VARIANT))
    assert sorted(set(rec["video"])) == sorted(victims) and set(rec["where"]) == {"train"}
    assert all(torch.isfinite(t).all() for t in out["final"]["model"].values())


@pytest.mark.slow
def test_three_ranks_with_part_of_a_batch_and_a_whole_batch_unreadable(in_tiny_workdir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """3 ranks x batch 2 (global 6, one step per epoch): a rank loses one of its two videos in
    epoch 0 (PPO: 3 minibatches on every rank, its own of half the size), and a rank its
    whole batch in epoch 1 (no rank trains that step). With train.sync_bn (a collective in
    every training forward) and 2 micro-batches, which the short rank must run as many of."""
    overrides = ["preset=tiny", "train.batch_size=6", "spa.minibatch=6", "train.sync_bn=true", "train.accum_steps=2"]
    first, second = _shards(overrides, 3, 0), _shards(overrides, 3, 1)
    # Some rank's whole epoch-1 batch, chosen so that epoch 0 keeps a rank with one of its two videos.
    def partial_ranks(victims: set[str]) -> list[int]:
        return [r for r in range(3) if sum(v in victims for v in first[r]) == 1]
    choices = [{first[2][0], *second[r]} for r in range(3)]
    victims = sorted(next(c for c in choices if partial_ranks(c)))
    out = _run(tmp_path, 3, overrides, victims, monkeypatch)
    _assert_ranks_equal(tmp_path, 3)
    history = out["final"]["history"]
    assert [h.get("skipped_videos", 0) for h in history] == _expected_skips(overrides, 3, victims)
    assert "no process trains this step" in out["stderr"]
