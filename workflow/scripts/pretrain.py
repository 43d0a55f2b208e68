"""Snakemake wrapper: asnet.stages.pretrain (same as `asnet pretrain`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
if not cfg.is_source(snakemake.wildcards.source):  # noqa: F821
    raise ValueError(f"{snakemake.wildcards.source} is not the configured pretraining source")  # noqa: F821
stages.pretrain(cfg)
