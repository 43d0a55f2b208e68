"""The first training step of a run: its measured memory, and a clear stop when it does not fit.

A GPU run that does not fit fails at step 1, minutes after it starts; what the user needs
then is not torch's allocator dump but what the step needs and the `train.accum_steps` that
would fit (asnet.plan measures both without a GPU). `train.memory_limit_gib` caps the
device's memory for the run: on CUDA through the caching allocator (a real out-of-memory
error past it), on the CPU by measuring the first step's peak of live tensors.
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


def _advice(cfg: Config, variant: Variant, num_classes: int, rt: Runtime, run_dir: Path, measured: int | None) -> str:
    """The message of a first step that does not fit: need, limit, the accum_steps that would fit."""
    from asnet import plan

    return plan.oom_message(cfg, variant.name, num_classes, _limit_bytes(cfg, rt), str(run_dir), measured=measured)


@contextlib.contextmanager
def first_step_guard(cfg: Config, variant: Variant, num_classes: int, rt: Runtime, run_dir: Path,
                     active: bool) -> Iterator[None]:
    """Around a run's first step (`active`): log its peak memory; turn an out-of-memory error
    (or, on the CPU, a peak over train.memory_limit_gib) into one StepMemoryError naming the
    preset, the step's need and the train.accum_steps that would fit."""
    if not active:
        yield
        return
    cuda = rt.device.type == "cuda"
    limit = _limit_bytes(cfg, rt)
    tracker: contextlib.AbstractContextManager = contextlib.nullcontext()
    if cuda:
        torch.cuda.reset_peak_memory_stats(rt.device)
    elif limit:
        from asnet.memory import LiveBytes

        tracker = LiveBytes()
    try:
        with tracker:
            yield
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        raise StepMemoryError(_advice(cfg, variant, num_classes, rt, run_dir, None)) from exc
    peak = torch.cuda.max_memory_allocated(rt.device) if cuda else getattr(tracker, "peak", None)
    if peak is not None:
        log.info("%s: first step peak memory %.2f GiB (%s)", run_dir, peak / GIB,
                 "torch.cuda.max_memory_allocated" if cuda else "live tensors")
    if not cuda and limit and peak is not None and peak > limit:
        raise StepMemoryError(_advice(cfg, variant, num_classes, rt, run_dir, peak))
