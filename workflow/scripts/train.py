"""Snakemake wrapper: asnet.stages.train (same as `asnet train`), or torchrun running it
in `train.nproc_per_node` processes when that is > 1."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir)))  # noqa: F821
from _common import setup  # noqa: E402

from asnet import stages  # noqa: E402
from asnet.train.launch import run_torchrun  # noqa: E402

cfg = setup(snakemake)  # noqa: F821
w = snakemake.wildcards  # noqa: F821
if cfg.train.nproc_per_node > 1:
    # torchrun's workers are new processes: they read the configuration resolved here from
    # a file beside the rule's log (kept, so the log says what was trained).
    config_file = Path(snakemake.log[0]).with_name("train_config.yaml")  # noqa: F821
    run_torchrun(cfg, w.dataset, int(w.split), w.variant, config_file, output=sys.stderr)
else:
    stages.train(cfg, w.dataset, int(w.split), w.variant)
