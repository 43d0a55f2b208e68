"""Snakemake wrapper: asnet.stages.extract_chunk (`asnet extract` runs every chunk)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.extract_chunk(cfg, snakemake.wildcards.dataset, int(snakemake.wildcards.chunk))  # noqa: F821
