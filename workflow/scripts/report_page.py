"""Snakemake wrapper: asnet.stages.report_page (same as `asnet report-page NAME`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402

setup(snakemake)  # noqa: F821
stages.report_page(snakemake.params.name, Path(snakemake.output.html))  # noqa: F821
