"""Multi-process training under `torchrun`: process-group setup and the few collectives
`train_run` needs (metric sums, barriers, buffer broadcast, per-rank RNG states).

    torchrun --standalone --nproc_per_node N -m asnet.cli train --dataset D --split S --variant V

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT
in every worker. Without them (a plain `asnet train`), or with WORLD_SIZE=1, everything
here is a no-op and training is the single-process code path, bit for bit.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job. world_size 1: no process group, nothing distributed."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    is_main: bool = True
    backend: str | None = None  # "nccl" / "gloo"; None when not distributed
    device: torch.device | None = None  # cuda:local_rank on GPU jobs, else None (keep the configured device)
    owns_group: bool = False  # this call created the process group (so cleanup() destroys it)
    host_group: object | None = None  # a gloo group of every rank for host-side agreements (no GPU wait)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    """WORLD_SIZE as set by torchrun, 1 when absent."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def under_torchrun() -> bool:
    """True in a torchrun worker, whatever its WORLD_SIZE (1 included)."""
    return all(k in os.environ for k in _ENV)


def launched_by_torchrun() -> bool:
    """True when torchrun's variables describe a job of more than one process."""
    return all(k in os.environ for k in _ENV) and env_world_size() > 1


def init_from_env(device: str | torch.device = "cpu") -> DistInfo:
    """Join the process group torchrun describes in the environment.

    `device` is the run's resolved device (Runtime.device): "cuda" selects the nccl
    backend and this process's GPU, cuda:LOCAL_RANK; anything else uses gloo. Without
    torchrun's variables, or with WORLD_SIZE=1, returns DistInfo() and touches nothing.
    """
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    rank, world, local_rank = int(os.environ["RANK"]), env_world_size(), int(os.environ["LOCAL_RANK"])
    cuda = torch.device(device).type == "cuda"
    dev = None
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "use --nproc_per_node <= the number of GPUs"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    backend = "nccl" if cuda else "gloo"
    owns = False
    if not dist.is_initialized():
        # env:// reads MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE.
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world,
                                device_id=dev if cuda else None)
        owns = True
    if dist.get_world_size() != world or dist.get_rank() != rank:
        raise RuntimeError("the existing process group disagrees with RANK / WORLD_SIZE")
    # Every rank creates the host group here, in the same order (new_group is a collective).
    host = dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo")
    return DistInfo(rank, world, local_rank, rank == 0, dist.get_backend(), dev, owns, host)


def local_world_size() -> int:
    """Processes on this machine (torchrun's LOCAL_WORLD_SIZE), 1 outside torchrun."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def _comm_device(info: DistInfo) -> torch.device:
    return info.device if info.backend == "nccl" and info.device is not None else torch.device("cpu")


def all_reduce_sums(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Sum each value over all ranks (float64). Identity (same objects) when not distributed."""
    if not info.enabled:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return dict(zip(keys, t.cpu().tolist(), strict=True))


@dataclass(frozen=True)
class StepPlan:
    """What every rank agreed on before a training step: the usable clips of each rank's batch
    (its videos less the unreadable ones). All ranks hold the same plan, so they run or skip
    the step together and make the same number of collective calls in it."""

    counts: tuple[int, ...]  # usable clips per rank, rank order
    rank: int = 0
    info: DistInfo = DistInfo()

    @property
    def distributed(self) -> bool:
        return len(self.counts) > 1

    @property
    def run(self) -> bool:
        """Every rank has a clip: a rank with none could not take part in the step's
        collectives (DDP's gradient all-reduce, PPO's), so then no rank steps."""
        return min(self.counts) > 0

    @property
    def share(self) -> float:
        """This rank's loss weight: DDP averages gradients over ranks, so the weight
        c_r * W / sum(c) makes that average the mean over every usable clip of the global
        batch. Exactly 1.0 when the ranks hold as many clips."""
        c = self.counts
        return c[self.rank] * len(c) / sum(c)

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over every rank (a new tensor on t's device); `t` itself in one process."""
        if not self.distributed:
            return t
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def step_plan(count: int, info: DistInfo) -> StepPlan:
    """Agree on a step: one all-reduce (on the host group) of every rank's usable clip count.
    Every rank must call it at every step. One process: the plan of its own count."""
    if not info.enabled:
        return StepPlan((count,))
    t = torch.zeros(info.world_size, dtype=torch.int64)
    t[info.rank] = count
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=info.host_group)
    return StepPlan(tuple(int(v) for v in t.tolist()), info.rank, info)


def broadcast_buffers(module: torch.nn.Module, info: DistInfo, src: int = 0) -> None:
    """Copy rank `src`'s buffers (BatchNorm running statistics) to every rank."""
    if not info.enabled:
        return
    for buf in module.buffers():
        dist.broadcast(buf.data, src=src)


def all_gather_objects(obj: object, info: DistInfo) -> list[object]:
    """[obj of rank 0, obj of rank 1, ...] on every rank; [obj] when not distributed."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if not info.enabled:
        return
    if info.backend == "nccl" and info.device is not None:
        dist.barrier(device_ids=[info.device.index])
    else:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    """Destroy the process group if `init_from_env` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
