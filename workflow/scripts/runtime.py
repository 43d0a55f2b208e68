"""Snakemake wrapper: asnet.stages.runtime (same as `asnet runtime`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

setup(snakemake)  # noqa: F821
stages.runtime(Path(snakemake.output.csv))  # noqa: F821
