"""Per-video predictions of every replicate seed's run (`seeds:`, asnet.seeds), for the audit:
asnet.report.audit.load_predictions reads one run per split, indexed by (split, video); this
reads each configured seed's, indexed by (seed, split, video)."""

from __future__ import annotations

import pandas as pd

from asnet import paths
from asnet.config import Config
from asnet.report.audit import load_predictions
from asnet.seeds import seed_runs
from asnet.variants import run_variant


def replicate_eval_dirs(cfg: Config, dataset: str, variant: str, splits: tuple[int, ...]) -> dict[int, list]:
    """{seed: the evaluation folder of each split} of the run the row `variant` reads
    (asnet.variants.run_variant), for every configured seed, the config's `seed` first."""
    run = run_variant(cfg, variant)
    return {seed: [paths.eval_dir(dataset, s, run, path) for s in splits] for seed, path in seed_runs(cfg)}


def replicate_predictions(cfg: Config, dataset: str, variant: str, splits: tuple[int, ...]) -> pd.DataFrame | None:
    """The predictions.csv of `variant` on `splits` of every configured seed, indexed by
    (seed, split, video) (split as audit.load_predictions writes it, `split<k>`); None if any
    run's file is missing, as the audit leaves a claim without all its runs unjudged."""
    dirs = replicate_eval_dirs(cfg, dataset, variant, splits)
    if not all((d / "predictions.csv").exists() for ds in dirs.values() for d in ds):
        return None
    return pd.concat({seed: load_predictions(ds) for seed, ds in dirs.items()}, names=["seed"])
