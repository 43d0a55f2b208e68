"""Snakemake wrapper: asnet.stages.run_report (same as `asnet run-report RUN_DIR`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

setup(snakemake)  # noqa: F821
stages.run_report(Path(snakemake.input.model).parent, Path(snakemake.output.curves).parent)  # noqa: F821
