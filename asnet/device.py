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
    the CPU keeps the contiguous format.
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


def set_threads(requested: int) -> int:
    """torch intra-op threads: `requested` (0 = all cores), never more than the machine has.

    Snakemake passes its `threads`; capping at os.cpu_count() avoids OpenMP oversubscription
    when a user asks for --cores 8 on a 2-core machine.
    """
    cores = os.cpu_count() or 1
    n = cores if requested <= 0 else min(requested, cores)
    torch.set_num_threads(n)
    return n
