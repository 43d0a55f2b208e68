"""Device, precision and memory-format choices, made once per run."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: full fp32
    channels_last: bool
    crop_method: str | None = None  # None: asnet.data.crops.default_crop_method of the device

    def autocast(self) -> AbstractContextManager:
        """Autocast context for forward passes (a no-op without AMP)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_input(self, x: torch.Tensor) -> torch.Tensor:
        """Move a (B, 3, T, H, W) batch to the device in the chosen memory format."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x


def select_runtime(device: str = "auto", amp: str = "auto", channels_last: bool | str = "auto") -> Runtime:
    """CUDA if present (fp16 AMP there), else CPU in fp32 with channels_last_3d (1.5-1.9x faster).

    CPU `amp: auto` is fp32 on every CPU, so that a seeded run gives the same numbers on any
    machine: choosing bf16 by CPU flags made results depend on the host. bf16 is opt-in
    (`train.amp: bf16`): on CPUs without AVX512-BF16/AMX it runs 3D convolutions 20-80x
    slower than fp32, and with it torch 2.13's bf16 backward of channels_last_3d convolutions
    corrupts the heap (`free(): invalid next size`, seen on an AVX512-BF16 EPYC), so bf16 on
    the CPU keeps the contiguous format; on that CPU its oneDNN bf16 convolution backward
    also returns NaN weight gradients in about one step in twelve, in either format.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {device!r} requested but CUDA is not available; use device: auto or cpu")
    if amp == "auto":
        amp_dtype = torch.float16 if dev.type == "cuda" else None
    elif amp == "off":
        amp_dtype = None
    else:
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    cpu_bf16 = dev.type == "cpu" and amp_dtype == torch.bfloat16
    cl = (not cpu_bf16) if channels_last == "auto" else bool(channels_last)
    return Runtime(dev, amp_dtype, cl)


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask, else the machine's count.

    On a cluster node `os.cpu_count()` is the node's cores, not the job's: SLURM
    (--cpus-per-task), `taskset`, cgroup cpusets and `docker --cpuset-cpus` restrict the
    affinity mask, and sizing thread pools by the node would oversubscribe the job's CPUs.
    `os.sched_getaffinity` is missing on macOS and Windows, where the machine's count is used.
    """
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:  # a sandbox may refuse the syscall
            pass
    return os.cpu_count() or 1


def set_threads(requested: int) -> int:
    """torch intra-op threads: `requested` (0 = all available cores), never more than that.

    Available cores are `available_cores()`: the affinity mask, so a SLURM job with
    --cpus-per-task 8 on a 64-core node uses 8 threads. Snakemake passes its `threads`;
    the cap avoids OpenMP oversubscription when a user asks for --cores 8 on 2 cores.
    """
    cores = available_cores()
    n = cores if requested <= 0 else min(requested, cores)
    torch.set_num_threads(n)
    return n


# cuBLAS needs a fixed workspace for reproducible matmuls (CUDA >= 10.2); ":16:8" is the
# smaller alternative NVIDIA documents, and a user's choice of it is kept.
CUBLAS_DETERMINISTIC = (":4096:8", ":16:8")


def configure_backends(rt: Runtime, deterministic: bool, *, benchmark: bool = True) -> None:
    """Set the CUDA backend flags of this process for `rt`; on the CPU it changes nothing.

    Call it once per process, after `select_runtime` (and, under torchrun, after the
    process group and device are set up) and before the first CUDA matmul: the training
    run with `configure_backends(rt, cfg.train.deterministic)`, evaluation with
    `benchmark=False` (each of its batches is one video's clips, so most batches have a new
    shape and would be autotuned again). The flags are process-global: a later call
    replaces them.

    CUDA, `deterministic=False` (the default run): `cudnn.benchmark = benchmark` (cuDNN
    times its algorithms for each new input shape and keeps the fastest; a training run's
    shapes are fixed, so the tuning is paid once). The results are close to, but not
    bit-identical with, a rerun's: the fastest algorithm may differ between runs, and many
    CUDA kernels (e.g. pooling backwards) accumulate with atomics in no fixed order.

    CUDA, `deterministic=True`: no autotuning, `cudnn.deterministic = True`,
    `torch.use_deterministic_algorithms(True)` (an op with no deterministic CUDA kernel
    raises instead of running; the models' pooling switches to deterministic means, see
    `asnet.models.resnet3d.GlobalAvgPool3d`) and `CUBLAS_WORKSPACE_CONFIG=:4096:8` in
    `os.environ`. torch sizes its cuBLAS workspace from that variable once, at the
    process's first CUDA matmul (e.g. a Linear layer's forward), and keeps it: set later,
    the variable passes torch's check but the workspace stays the one already chosen. Reruns
    and resumes on the same GPU model, software and process count are then bit-identical,
    at some speed.

    TF32 is left at torch's defaults (cuDNN convolutions may use it, matmuls do not): it
    is deterministic, so it does not affect reruns, and changing it would change the
    numbers of existing GPU runs (the default CUDA run trains in fp16 autocast anyway).

    CPU: nothing is set. The CPU kernels the models use are deterministic already (the
    tests compare reruns and resumes bit for bit), and the global
    deterministic mode would swap some of them (e.g. `index_put` with accumulate) and fill
    uninitialised memory, so a CPU run gives the same numbers whatever `deterministic` is.
    """
    if rt.device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = benchmark and not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic and os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_DETERMINISTIC:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC[0]
    torch.use_deterministic_algorithms(deterministic)
