"""The first training step of a run: its measured memory, and a clear stop when it does not fit.

A GPU run that does not fit fails at step 1, minutes after it starts; what the user needs
then is not torch's allocator dump but what the step needs and the `train.accum_steps` that
would fit (asnet.plan measures both without a GPU). `train.memory_limit_gib` caps the
device's memory for the run: on CUDA through the caching allocator (a real out-of-memory
error past it), on the CPU by asnet.plan's measurement of the configured step (the real step
on fake tensors) before the first step runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

import torch

from asnet.config import Config
from asnet.device import Runtime
from asnet.variants import Variant

log = logging.getLogger(__name__)
GIB = 2**30


class StepMemoryError(RuntimeError):
    """The first training step needs more memory than the run may use."""


def apply_memory_limit(cfg: Config, rt: Runtime) -> None:
    """Cap the CUDA caching allocator at train.memory_limit_gib for this process (no-op at 0
    or on the CPU, where `first_step_guard` checks the first step's peak instead)."""
    limit = cfg.train.memory_limit_gib * GIB
    if limit and rt.device.type == "cuda":
        total = torch.cuda.get_device_properties(rt.device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, limit / total), rt.device)


def _limit_bytes(cfg: Config, rt: Runtime) -> int:
    if cfg.train.memory_limit_gib:
        return int(cfg.train.memory_limit_gib * GIB)
    if rt.device.type == "cuda":
        return int(torch.cuda.get_device_properties(rt.device).total_memory)
    return 0


GUARDED_STEPS = 2  # the second step is the first to hold the previous step's gradients and SGD's momentum


def _advice(cfg: Config, variant: Variant, num_classes: int, rt: Runtime, run_dir: Path, measured: int | None) -> str:
    """The message of a step that does not fit: need, limit, the accum_steps that would fit."""
    from asnet import plan

    return plan.oom_message(cfg, variant.name, num_classes, _limit_bytes(cfg, rt), str(run_dir),
                            device_type=rt.device.type, measured=measured)


@contextlib.contextmanager
def first_step_guard(cfg: Config, variant: Variant, num_classes: int, rt: Runtime, run_dir: Path,
                     step: int | None) -> Iterator[None]:
    """Around step `step` (0, 1, ...) of a run's first epoch (None: a later step, unguarded).
    On CUDA: log the peak memory after each of the first GUARDED_STEPS steps and turn an
    out-of-memory error in them into one StepMemoryError naming the preset, the step's need
    and the train.accum_steps that would fit. On the CPU with train.memory_limit_gib: stop
    with that error before step 0 when asnet.plan's measured need is above the limit."""
    if step is None or step >= GUARDED_STEPS:
        yield
        return
    cuda = rt.device.type == "cuda"
    limit = _limit_bytes(cfg, rt)
    if cuda and step == 0:
        torch.cuda.reset_peak_memory_stats(rt.device)
    if not cuda and limit and step == 0:
        from asnet import plan

        micro = cfg.train.batch_size // cfg.train.nproc_per_node // cfg.train.accum_steps
        need = plan.step_peak_bytes(cfg, variant.name, num_classes, micro, rt.device.type)
        log.info("%s: one training step needs %.3f GiB (asnet plan), limit %.3f GiB", run_dir, need / GIB,
                 limit / GIB)
        if need > limit:
            raise StepMemoryError(_advice(cfg, variant, num_classes, rt, run_dir, None))
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        raise StepMemoryError(_advice(cfg, variant, num_classes, rt, run_dir, None)) from exc
    if cuda:
        log.info("%s: step %d peak memory %.2f GiB (torch.cuda.max_memory_allocated)", run_dir, step + 1,
                 torch.cuda.max_memory_allocated(rt.device) / GIB)
