"""Launch one training run as a multi-process torchrun job (`train.nproc_per_node` > 1).

The Snakemake train rule runs in one process and holds the configuration Snakemake resolved
(preset + config/config.yaml + --config/--configfile). torchrun's workers are new
processes that cannot see it, so the rule writes it to a YAML file and every worker runs

    python -m torch.distributed.run --standalone --nproc_per_node N \\
        -m asnet.cli train --config FILE --dataset D --split K --variant V

i.e. the same `asnet train` work (asnet/train/distributed.py: gloo on CPU, NCCL with one
GPU per process on CUDA). The file is checked to load back to the identical Config before
anything starts, so the workers train exactly what Snakemake resolved.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import IO

import yaml

from asnet.config import Config, load_config

log = logging.getLogger(__name__)


def write_run_config(cfg: Config, path: Path) -> Path:
    """Write `cfg` as a YAML config file that `asnet --config` loads back to the same Config.

    Written atomically (a concurrent reader never sees half a file) and checked by loading
    it again: a mismatch raises RuntimeError rather than training something else.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(
        "# Resolved configuration of one training run, written by the Snakemake train rule for\n"
        "# its torchrun workers (`asnet train --config` this file). Regenerated on every run.\n"
        + yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    )
    os.replace(tmp, path)
    if load_config(path) != cfg:
        raise RuntimeError(f"{path}: the written configuration does not load back to the resolved one")
    return path


def torchrun_command(config_file: Path, dataset: str, split: int, variant: str, nproc: int,
                     seed: int | None = None) -> list[str]:
    """The torchrun command line of one run (torchrun as `python -m torch.distributed.run`,
    so the workers use this interpreter and its packages, whatever `torchrun` is on PATH);
    `seed`: a replicate's (asnet.seeds)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
        "-m", "asnet.cli", "train", "--config", str(config_file),
        "--dataset", dataset, "--split", str(split), "--variant", variant,
        *(["--seed", str(seed)] if seed is not None else []),
    ]


def run_torchrun(
    cfg: Config, dataset: str, split: int, variant: str, config_file: Path, output: IO[str] | None = None,
    seed: int | None = None,
) -> None:
    """Train (dataset, split, variant) in `cfg.train.nproc_per_node` processes under torchrun.

    `config_file` receives the resolved configuration; the workers' stdout and stderr go to
    `output` (the rule's log file) when given. Raises RuntimeError when torchrun fails.
    """
    nproc = cfg.train.nproc_per_node
    write_run_config(cfg, config_file)
    cmd = torchrun_command(config_file, dataset, split, variant, nproc, seed)
    log.info("training in %d processes: %s", nproc, shlex.join(cmd))
    if output is not None:
        output.flush()  # keep our lines before the workers' in a shared log file
    # --standalone: a rendezvous on localhost with a free port, so concurrent runs on one
    # node do not collide. Variables of an enclosing torchrun would confuse the workers.
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    proc = subprocess.run(cmd, env=env, stdout=output, stderr=subprocess.STDOUT if output is not None else None,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun ({nproc} processes) exited with status {proc.returncode}: {shlex.join(cmd)}")
