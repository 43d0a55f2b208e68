"""asnet-repro: a reproducibility pipeline for ASNet (Zhang et al., Sensors 2021)."""

__version__ = "0.1.0"
