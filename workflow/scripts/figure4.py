"""Snakemake wrapper: asnet.stages.figure4 (same as `asnet figure4`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.figure4(cfg, Path(snakemake.output.pdf))  # noqa: F821
