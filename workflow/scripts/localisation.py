"""Snakemake wrapper: asnet.stages.localisation (same as `asnet localisation`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.localisation(cfg, Path(snakemake.output.tex))  # noqa: F821
