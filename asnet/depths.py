"""Depths Hara et al.'s 3D CNNs are defined for, per architecture.

Torch-free on purpose: config validation (asnet.config, also run when Snakemake parses the
workflow) checks `model.arch`/`model.depth` pairs against these tables before any job
starts, and asnet.models.resnet3d builds its backbones from the same ones.
"""

from __future__ import annotations

# Blocks per stage, as in Hara's resnet.py / resnext.py constructors.
RESNET_LAYERS: dict[int, tuple[int, int, int, int]] = {
    10: (1, 1, 1, 1),
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
    200: (3, 24, 36, 3),
}
RESNEXT_DEPTHS = (50, 101, 152)
# Dense layers per block (densenet.py); only 121 is required, the others come for free.
DENSENET_BLOCKS: dict[int, tuple[int, int, int, int]] = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}

DEPTHS: dict[str, tuple[int, ...]] = {
    "resnet": tuple(RESNET_LAYERS),
    "resnext": RESNEXT_DEPTHS,
    "densenet": tuple(DENSENET_BLOCKS),
}
