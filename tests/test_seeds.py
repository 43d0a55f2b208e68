"""Seeds as replicates (`seeds:`, asnet.seeds): the run of `seed` keeps its paths and digest,
every other seed is a run of its own, and the tables report mean +- sd over the seeds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import copy_build

from asnet import paths, stages
from asnet.cli import main
from asnet.config import ConfigError, load_config
from asnet.report.replicates import replicate_predictions
from asnet.report.tables import write_experiment_table
from asnet.seeds import path_seed, run_seeds, seed_config

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


@pytest.mark.parametrize(("value", "message"), [
    ("[0, 0, 1]", "seeds: 0 listed more than once"),
    ("[0, a]", "seeds: item 1 ('a') is not a non-negative integer"),
    ("[0, 1.5]", "seeds: item 1 (1.5) is not a non-negative integer"),
    ("[0, true]", "seeds: item 1 (True) is not a non-negative integer"),
    ("[0, -1]", "seeds: item 1 (-1) is not a non-negative integer"),
    ("3", "seeds: 3 is not a non-empty list of seeds"),
    ("[]", "seeds: [] is not a non-empty list of seeds"),
    ("[1, 2]", "seeds: [1, 2] does not hold `seed` (0)"),
])
def test_bad_seeds_are_one_line_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(overrides=["preset=tiny", f"seeds={value}"])
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_the_run_of_seed_keeps_its_paths_and_digest() -> None:
    plain = load_config(overrides=["preset=default"])
    one, three = (load_config(overrides=["preset=default", f"seeds={s}"]) for s in ("[0]", "[0, 1, 2]"))
    assert run_seeds(plain) == run_seeds(one) == (0,) and run_seeds(three) == (0, 1, 2)
    for v in plain.variants:
        digest = stages.train_signature(plain, "synthetic", v)
        assert stages.train_signature(one, "synthetic", v) == digest
        assert stages.train_signature(three, "synthetic", v) == digest
        assert stages.train_signature(three, "synthetic", v, 0) == digest
        assert stages.train_signature(three, "synthetic", v, 1) not in (digest, stages.train_signature(three, "synthetic", v, 2))
    assert stages.metric_files(one) == stages.metric_files(plain)
    assert stages.experiment_table_inputs(one, "table3") == stages.experiment_table_inputs(plain, "table3")
    assert str(paths.run_dir("synthetic", 1, "asnet")) == "results/checkpoints/synthetic/split1/asnet"
    assert paths.run_dir("synthetic", 1, "asnet", path_seed(three, 0)) == paths.run_dir("synthetic", 1, "asnet")
    replicate = paths.eval_dir("synthetic", 2, "asnet", path_seed(three, 2))
    assert str(replicate) == "results/eval/synthetic/split2/asnet/seed2"
    assert paths.parse_run_dir(replicate) == ("synthetic", 2, "asnet", 2)
    assert paths.parse_run_dir(paths.run_dir("synthetic", 3, "single")) == ("synthetic", 3, "single", None)
    assert len(stages.metric_files(three)) == 3 * len(stages.metric_files(plain))
    # a run's configuration holds its one seed, not the list of runs
    assert (seed_config(three, 2).seed, seed_config(three, 2).seeds) == (2, None)


def test_a_seed_not_configured_is_refused_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--set", "preset=tiny", "--set", "seeds=[0, 1]", "--dataset", "synthetic_tiny",
                 "--split", "1", "--variant", "single", "--seed", "5", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "seed 5 is not configured (seeds: 0, 1); pass --seed 0 or 1" in err, err


def _metrics(root: Path, variant: str, seed: int | None, top1: float) -> Path:
    d = root / paths.eval_dir("synthetic", 1, variant, seed)
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({"top1": top1, "videos": 4, "clips": 4}))
    pd.DataFrame({"video": list("abcd"), "correct": [1, 1, 0, int(top1 > 0.5)]}).to_csv(d / "predictions.csv",
                                                                                         index=False)
    return d / "metrics.json"


def test_experiment_table_rows_are_mean_and_sd_over_seeds(tmp_path: Path) -> None:
    runs = {v: {s: _metrics(tmp_path, v, s, acc) for s, acc in zip((None, 1, 2), accs, strict=True)}
            for v, accs in {"single": (0.5, 0.75, 0.5), "asnet": (0.75, 0.75, 1.0)}.items()}
    rows = [{"dataset": "synthetic", "variant": v, "run": v, "metrics": r[None], "baseline": runs["single"][None],
             "paper_row": v, "paper_col": "top1", "replicates": [r[1], r[2]]} for v, r in runs.items()]
    wide = write_experiment_table("table1", rows, tmp_path / "t1.tex").set_index("run")
    top1 = pd.Series([0.75, 0.75, 1.0]) * 100
    assert wide.loc["asnet", "Top-1"] == pytest.approx(top1.mean())
    assert wide.loc["asnet", "Top-1 sd"] == pytest.approx(top1.std(ddof=1))
    assert wide.loc["asnet", "Runs"] == 3
    assert f"{top1.mean():.1f} $\\pm$ {top1.std(ddof=1):.1f} & 3" in (tmp_path / "t1.tex").read_text()
    # one seed: the table as before replicates, without sd or runs
    for r in rows:
        r["replicates"] = []
    assert "Runs" not in write_experiment_table("table1", rows, tmp_path / "t1.tex").columns
    assert "pm" not in (tmp_path / "t1.tex").read_text()


def _snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(work), "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_build")
def test_two_seeds_train_two_runs_and_table6_is_their_mean_and_sd(tiny_build: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    work = copy_build(tiny_build, tmp_path / "work")
    # `seeds: [0]` is the build as it is: nothing to do
    dry = _snakemake(work, "-n", "results/table6.tex", "--config", "preset=tiny", "seeds=[0]")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout[-2000:]
    # the run of `seed` has one path: no rule makes a seed folder for it
    missing = subprocess.run([*SNAKEMAKE, "--directory", str(work), "-n", "--cores", "1",
                              "results/checkpoints/synthetic_tiny/split1/single/seed0/model.pt",
                              "--config", "preset=tiny", "seeds=[0,1]"], cwd=REPO, capture_output=True, text=True)
    assert missing.returncode != 0 and "MissingRuleException" in missing.stdout + missing.stderr
    run = _snakemake(work, "results/table6.tex", "--config", "preset=tiny", "seeds=[0,1]", "variants=[single]")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", run.stdout + run.stderr, re.M))
    assert {k: v for k, v in jobs.items() if k not in ("total", "count")} == {
        "train_seed": "1", "evaluate_seed": "1", "table6": "1"}, run.stdout[-3000:]
    ck = {s: torch.load(work / paths.run_dir("synthetic_tiny", 1, "single", s) / "model.pt", weights_only=False)
          for s in (None, 1)}
    assert (ck[None]["config"]["seed"], ck[1]["config"]["seed"], ck[1]["config"]["seeds"]) == (0, 1, None)
    name = next(k for k, v in ck[1]["model"].items() if v.is_floating_point())
    assert not torch.equal(ck[None]["model"][name], ck[1]["model"][name])  # other seed, other weights
    top1 = pd.Series([100 * json.loads((work / paths.eval_dir("synthetic_tiny", 1, "single", s)
                                        / "metrics.json").read_text())["top1"] for s in (None, 1)])
    row = pd.read_csv(work / "results/table6.csv").iloc[0]
    assert row["Runs"] == 2
    assert row["Split 1"] == pytest.approx(top1.mean(), abs=1e-4)
    assert row["Split 1 sd"] == pytest.approx(top1.std(ddof=1), abs=1e-4)
    assert row["Mean (1 splits) sd"] == pytest.approx(top1.std(ddof=1), abs=1e-4)
    tex = (work / "results/table6.tex").read_text()
    assert f"{top1.mean():.1f} $\\pm$ {top1.std(ddof=1):.1f}" in tex
    # the audit's helper: both seeds' predictions, indexed by (seed, split, video)
    monkeypatch.chdir(work)
    cfg = load_config(overrides=["preset=tiny", "seeds=[0, 1]"])
    preds = replicate_predictions(cfg, "synthetic_tiny", "single", (1,))
    assert preds is not None and preds.index.names == ["seed", "split", "video"]
    assert set(preds.index.get_level_values("seed")) == {0, 1}
    assert 100 * preds.loc[1, "correct"].mean() == pytest.approx(top1[1])
    assert replicate_predictions(load_config(overrides=["preset=tiny", "seeds=[0, 2]"]), "synthetic_tiny", "single",
                                 (1,)) is None
