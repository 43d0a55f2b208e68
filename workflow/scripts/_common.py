"""Shared by the rule scripts: the validated config and logging into the rule's log file."""

from __future__ import annotations

import logging
import sys

from asnet.config import Config, from_dict, resolve


def setup(snakemake) -> Config:  # noqa: ANN001 (Snakemake's injected object)
    """Send logging and stderr to the rule's log file; return the resolved Config."""
    log_file = snakemake.log[0] if snakemake.log else None
    handlers = [logging.FileHandler(log_file)] if log_file else [logging.StreamHandler()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)
    if log_file:
        sys.stderr = open(log_file, "a", buffering=1)  # noqa: SIM115 (lives for the job)
    return from_dict(resolve(dict(snakemake.config)))
