"""Snakemake wrapper: asnet.stages.merge_frames (the last step of `asnet extract`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
stages.merge_frames(cfg, snakemake.wildcards.dataset)  # noqa: F821
