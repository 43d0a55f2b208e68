"""GPU classes `asnet plan` plans for: memory and an *assumed* achieved throughput.

The TFLOP/s are what a 3D-CNN training step of this project is assumed to reach (torch's FLOP
convention, 2 per multiply-add), not the datasheet peak: grouped 3D convolutions (ResNeXt)
and small kernels reach a fraction of it. They are stated in every plan and replaced by a
measurement with ``asnet plan --measure`` on the GPU itself. The A100 value is the one the
issue's estimate used (30 TFLOP/s with fp16 AMP); the others are scaled from it by the cards'
dense fp16 / TF32 tensor-core ratios and rounded down.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GPUClass:
    name: str
    memory_gib: float  # what the card has; the CUDA context and cuDNN workspace come out of it
    tflops_fp16: float  # assumed achieved, fp16 / bf16 autocast
    tflops_fp32: float  # assumed achieved, fp32 (TF32 where the card has it)
    examples: str

    def tflops(self, precision: str) -> float:
        """Assumed achieved TFLOP/s at `precision` (fp16, bf16 or fp32)."""
        return self.tflops_fp32 if precision == "fp32" else self.tflops_fp16


GPU_CLASSES: dict[str, GPUClass] = {g.name: g for g in (
    GPUClass("rtx2080ti", 11, 10, 5, "RTX 2080 Ti (11 GB)"),
    GPUClass("rtx3090", 24, 15, 8, "RTX 3090 / A10 (24 GB)"),
    GPUClass("rtx4090", 24, 25, 12, "RTX 4090 (24 GB)"),
    GPUClass("a100-40", 40, 30, 15, "A100 40 GB"),
    GPUClass("a100-80", 80, 30, 15, "A100 80 GB"),
    GPUClass("h100", 80, 60, 30, "H100 80 GB (SXM)"),
)}

# The memory sizes every plan row is checked against (GiB).
MEMORY_CLASSES_GIB: tuple[int, ...] = (11, 24, 40, 80)
DEFAULT_GPU = "a100-40"


def get_gpu(name: str) -> GPUClass:
    """A GPU class by name; ValueError listing the known ones otherwise."""
    try:
        return GPU_CLASSES[name]
    except KeyError:
        raise ValueError(f"--gpu {name!r}: unknown GPU class; choose one of {', '.join(GPU_CLASSES)} "
                         "(asnet/plan/gpus.py)") from None
