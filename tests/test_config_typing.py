"""Snakemake's `--config` values are typed as `asnet --set` types them, then validated by the
schema: `--config "train={batch_size: 4}"` is the integer 4 (Snakemake itself reads it as
text), and a wrong value still fails in one line naming the key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asnet.config import deep_merge, parse_overrides, resolve, typed_snakemake_config

REPO = Path(__file__).resolve().parents[1]


def test_config_values_are_typed_like_set_values() -> None:
    # What Snakemake's parser makes of `preset=tiny "train={batch_size: 4, lr: 1e-3}"
    # "model={pretrained: null}" "splits=[1, 2]"` (YAML base loader: all text), over config-file values.
    given = {"preset": "tiny", "train": {"batch_size": "4", "lr": "1e-3"}, "model": {"pretrained": "null"},
             "splits": ["1", "2"]}
    config = {"preset": "tiny", "train": {"batch_size": "4", "lr": "1e-3", "epochs": 3},
              "model": {"pretrained": "null", "width": 8}, "splits": ["1", "2"]}
    typed = typed_snakemake_config(config, given)
    assert typed == {"preset": "tiny", "train": {"batch_size": 4, "lr": 0.001, "epochs": 3},
                     "model": {"pretrained": None, "width": 8}, "splits": [1, 2]}
    by_set = parse_overrides(["train.batch_size=4", "train.lr=1e-3", "model.pretrained=null", "splits=[1, 2]"])
    for key in ("train", "model"):
        assert {k: typed[key][k] for k in by_set[key]} == by_set[key]
    assert typed["splits"] == by_set["splits"]
    # Both ways resolve to the same configuration.
    assert resolve(deep_merge({"preset": "tiny"}, typed_snakemake_config({}, {"train": {"batch_size": "4"}}))) == \
        resolve(deep_merge({"preset": "tiny"}, parse_overrides(["train.batch_size=4"])))
    # Values Snakemake already typed (top-level numbers), and config-file text it did not give, stay.
    assert typed_snakemake_config({"seed": 3, "device": "cpu"}, {"seed": 3}) == {"seed": 3}


def _dry(tmp_path: Path, *config: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--cores", "1", "-n", "results/table6.tex", "--config", "preset=tiny", *config],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_snakemake_takes_a_nested_config_value_as_a_user_writes_it(tmp_path: Path) -> None:
    ok = _dry(tmp_path, "train={batch_size: 4, lr: 1e-3}")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert "train" in ok.stdout
    bad = _dry(tmp_path, "train={batch_size: four}")
    assert bad.returncode != 0
    lines = [line for line in (bad.stdout + bad.stderr).splitlines() if "train.batch_size" in line]
    assert lines == ["  train.batch_size: 'four' is not of type 'integer'"], bad.stderr[-3000:]
