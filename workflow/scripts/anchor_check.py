"""Snakemake wrapper: asnet.stages.anchor_check (same as `asnet anchor-check`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.anchor_check(cfg, Path(snakemake.output.tex), progress=False)  # noqa: F821
