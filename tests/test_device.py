"""select_runtime: the CPU path is the same on every CPU (fp32 + channels_last_3d), so seeded runs
give the same numbers on any host; bf16 is opt-in and then contiguous (torch 2.13's bf16 backward
of channels_last_3d convolutions corrupts the heap on AVX512-BF16 CPUs)."""

from __future__ import annotations

import torch

from asnet.device import select_runtime


def test_cpu_auto_is_fp32_channels_last_whatever_the_cpu_flags() -> None:
    rt = select_runtime("cpu", "auto", "auto")
    assert rt.amp_dtype is None and rt.channels_last


def test_cpu_bf16_is_opt_in_and_contiguous() -> None:
    rt = select_runtime("cpu", "bf16", "auto")
    assert rt.amp_dtype == torch.bfloat16 and not rt.channels_last
    assert select_runtime("cpu", "bf16", True).channels_last  # an explicit request is honoured
    assert select_runtime("cpu", "off", "auto").amp_dtype is None
