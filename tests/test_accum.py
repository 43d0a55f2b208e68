"""Gradient accumulation (train.accum_steps) and BatchNorm in eval mode (train.norm_eval).

An accumulated step must be the step of the whole batch: the same data, augmentation and
SPA episodes, gradients that add up to the batch's mean, one optimizer step and one PPO
update per batch. With BatchNorm's statistics out of the picture (norm_eval) two runs that
differ only in accum_steps end with the same weights up to the order of float sums.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from asnet import paths
from asnet.config import ConfigError, load_config
from asnet.train import checkpoint
from asnet.train.loop import micro_batches, train_run

DATASET, SPLIT = "synthetic_tiny", 1


def test_micro_batches_cover_the_batch_in_equal_parts() -> None:
    assert micro_batches(8, 1) == [(0, 8)]
    assert micro_batches(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert micro_batches(7, 2) == [(0, 3), (3, 7)]  # a batch shrunk by a skipped video
    assert micro_batches(2, 4) == [(0, 1), (1, 2)]  # never an empty micro-batch


def test_batch_must_split_into_equal_micro_batches() -> None:
    with pytest.raises(ConfigError, match=r"train\.accum_steps: batch_size 4 .* one of 1, 2, 4"):
        load_config(overrides=["preset=tiny", "train.accum_steps=3"])
    with pytest.raises(ConfigError, match=r"nproc_per_node 2 x accum_steps 4"):
        load_config(overrides=["preset=paper", "train.nproc_per_node=2", "train.accum_steps=4", "train.batch_size=12"])


def _train(workdir: Path, name: str, variant: str, overrides: list[str]) -> tuple[dict, Counter]:
    """Train one tiny run; its model.pt and the optimizer steps taken, by optimizer class."""
    steps: Counter = Counter()
    hook = register_optimizer_step_post_hook(
        lambda opt, args, kwargs: steps.update([type(opt).__name__]))
    try:
        cfg = load_config(overrides=["preset=tiny", "train.epochs=1", *overrides])
        out = train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), workdir / f"{name}_{variant}", variant,
                        progress=False)
    finally:
        hook.remove()
    return checkpoint.load(out), steps


@pytest.mark.parametrize("variant", ["asnet", "single"])
def test_accumulated_steps_train_what_the_whole_batch_trains(in_tiny_workdir: Path, variant: str) -> None:
    one, steps_one = _train(in_tiny_workdir, "accum1", variant, ["train.norm_eval=true"])
    two, steps_two = _train(in_tiny_workdir, "accum2", variant, ["train.norm_eval=true", "train.accum_steps=2"])
    assert steps_one == steps_two and steps_one["SGD"] > 0  # SGD: the CNN; AdamW: SPA's PPO minibatches
    if variant == "asnet":
        assert steps_one["AdamW"] > 0
    for key, want in one["model"].items():
        got = two["model"][key]
        if want.is_floating_point():
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(got, want), key
        if "running_" in key:  # norm_eval: BatchNorm's statistics stay those it started with
            start = torch.zeros_like(want) if key.endswith("running_mean") else torch.ones_like(want)
            assert torch.equal(want, start), key
    for key, want in (one["agent"] or {}).items():
        torch.testing.assert_close(two["agent"][key], want, rtol=1e-4, atol=1e-5, msg=key)
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    scratch = _train(in_tiny_workdir, "accum2_bn", variant, ["train.accum_steps=2"])[0]
    changed = sum(not torch.equal(scratch["model"][k], two["model"][k]) for k in two["model"] if "running_" in k)
    assert changed, "without norm_eval, BatchNorm's running statistics must train"
