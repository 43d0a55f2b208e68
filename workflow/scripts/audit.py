"""Snakemake wrapper: asnet.stages.audit (same as `asnet audit`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.audit(cfg, Path(snakemake.output.md))  # noqa: F821
