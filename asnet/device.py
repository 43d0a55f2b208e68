"""Device, precision and memory-format choices, made once per run."""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

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


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 matmul units (AVX512-BF16 or AMX).

    Without them, oneDNN has no bf16 3D-convolution kernel and PyTorch falls back to a
    reference implementation: measured 20-80x slower than fp32 on an AVX2-only EPYC.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def select_runtime(device: str = "auto", amp: str = "auto", channels_last: bool | str = "auto") -> Runtime:
    """CUDA if present (fp16 AMP there), else CPU: bf16 autocast only where the CPU has
    native bf16 (see cpu_has_fast_bf16), channels_last_3d always (1.5-1.9x faster in fp32)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device: {device!r} requested but CUDA is not available; use device: auto or cpu")
    if amp == "auto":
        if dev.type == "cuda":
            amp_dtype = torch.float16
        else:
            amp_dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    elif amp == "off":
        amp_dtype = None
    else:
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    cl = True if channels_last == "auto" else bool(channels_last)
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
