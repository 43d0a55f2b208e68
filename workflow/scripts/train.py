"""Snakemake wrapper: asnet.stages.train (same as `asnet train`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
w = snakemake.wildcards  # noqa: F821
stages.train(cfg, w.dataset, int(w.split), w.variant)
