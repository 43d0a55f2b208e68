"""Snakemake wrapper: asnet.stages.figure5 (same as `asnet figure5`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.figure5(cfg, Path(snakemake.output.pdf))  # noqa: F821
