"""Snakemake wrapper: asnet.stages.experiment_table (same as `asnet experiment-table`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.experiment_table(cfg, snakemake.wildcards.table, Path(snakemake.output.tex))  # noqa: F821
