"""End to end, for real: Snakemake runs every rule on the tiny preset; DVC wraps it and
reports nothing to do on a second `dvc repro`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import TINY_BUILD_TARGETS
from worktree import clone_worktree

from asnet import dvc_yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


# Written but deliberately not rule outputs: a run's resume state and live logs (Snakemake
# deletes a job's declared outputs before it reruns it, and a killed run resumes from them).
UNDECLARED_BY_DESIGN = ("results/checkpoints/*/state/*", "results/checkpoints/*/dvclive/*")
# Declared, as the rules' `benchmark:` files, but `snakemake --summary` lists outputs and logs only.
BENCHMARKS = "results/benchmarks/*.tsv"


def _undeclared_results(work: Path, *targets: str) -> list[str]:
    """Files under results/ that no job of `targets` declares as output or log (`snakemake --summary`)."""
    proc = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(work), "--cores", "1",
                             "--summary", *targets, "--config", "preset=tiny"], REPO)
    declared = set()
    for line in proc.stdout.splitlines()[1:]:  # output_file, date, rule, log-file(s), status, plan
        cols = line.split("\t")
        declared |= {cols[0], *cols[3].split(",")}
    written = {p.relative_to(work).as_posix() for p in (work / "results").rglob("*") if p.is_file()}
    return sorted(f for f in written - declared
                  if not any(fnmatch(f, pat) for pat in (*UNDECLARED_BY_DESIGN, BENCHMARKS)))


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_build")
def test_snakemake_table6_tiny(tiny_build: Path) -> None:
    tmp_path = tiny_build  # built by Snakemake from scratch (conftest), only read here
    # Every file the rules wrote is one they declare: Snakemake tracks and cleans it.
    assert _undeclared_results(tmp_path, *TINY_BUILD_TARGETS) == []
    # run times come from the rules' benchmark files (results/benchmarks/<rule>[/<wildcards>].tsv)
    bench = pd.read_csv(tmp_path / "results/benchmarks/train/synthetic_tiny/split1/asnet.tsv", sep="\t")
    assert len(bench) == 1 and bench["s"].iloc[0] > 0
    assert (tmp_path / "results/benchmarks/extract_chunk/synthetic_tiny/chunk0.tsv").exists()
    assert set(pd.read_csv(tmp_path / "results/probes_metrics.csv")["variant"]) == {
        "probe_full", "probe_center", "probe_oracle"}
    tex = (tmp_path / "results/table6.tex").read_text()
    assert "\\toprule" in tex and "ASNet (SPA)" in tex and "Single stream" in tex
    table = pd.read_csv(tmp_path / "results/table6.csv")
    assert set(table["Model"]) == {"Single stream", "ASNet (SPA)"}
    assert table["Split 1"].between(0, 100).all()
    for variant in ("single", "asnet"):
        preds = pd.read_csv(tmp_path / f"results/eval/synthetic_tiny/split1/{variant}/predictions.csv")
        # The table's number is the run's own: mean correctness of its per-video predictions.
        row = table[table["Model"] == ("ASNet (SPA)" if variant == "asnet" else "Single stream")]
        assert abs(float(row["Split 1"].iloc[0]) - 100 * preds["correct"].mean()) < 1e-3  # csv keeps 4 decimals
    for name in ("model.pt", "state/last.pt", "dvclive/metrics.json"):
        assert (tmp_path / "results/checkpoints/synthetic_tiny/split1/asnet" / name).exists(), name
    for name in ("scores.npz", "confusion.png"):  # the evaluate rule's declared outputs
        assert (tmp_path / "results/eval/synthetic_tiny/split1/asnet" / name).stat().st_size > 0, name
    # train.nproc_per_node 1: trained in the rule's own process, no torchrun (tests/test_ddp.py has 2).
    assert "world_size" not in torch.load(tmp_path / "results/checkpoints/synthetic_tiny/split1/asnet/state/last.pt",
                                          weights_only=True)
    assert not (tmp_path / "results/logs/synthetic_tiny/split1/asnet/train_config.yaml").exists()
    # Nothing left to do: a second invocation is a no-op.
    dry = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                            "results/table6.tex", "--config", "preset=tiny", "-n"], REPO)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    # A config edit that changes what is trained retrains (the rule's params); one that only
    # changes how it is launched (threads) does not.
    lr = tmp_path / "lr.yaml"
    lr.write_text("preset: tiny\ntrain: {lr: 0.02}\n")
    dry = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                            "results/table6.tex", "--configfile", str(lr), "-n"], REPO)
    assert "Params have changed" in dry.stdout and "train" in dry.stdout, dry.stdout
    threads = tmp_path / "threads.yaml"
    threads.write_text("preset: tiny\ntrain: {threads: 2}\n")
    dry = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                            "results/table6.tex", "--configfile", str(threads), "-n"], REPO)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout
    # Another test protocol re-evaluates the runs (the evaluate rule's params) without retraining.
    views = tmp_path / "views.yaml"
    views.write_text("preset: tiny\neval: {views: mmaction_10x3}\n")
    dry = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                            "results/table6.tex", "--configfile", str(views), "-n"], REPO)
    jobs = dry.stdout[dry.stdout.index("Job stats:"):]
    assert "evaluate" in jobs and "train" not in jobs, dry.stdout


@pytest.mark.slow
def test_bad_config_fails_before_any_job(tmp_path: Path) -> None:
    proc = subprocess.run(
        SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
                     "results/table6.tex", "--config", "preset=tiny", "splits=[7]"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode != 0
    assert "splits.0" in proc.stdout + proc.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the repository")
def test_dvc_repro_wraps_snakemake_and_is_then_up_to_date(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    # Uncommitted work in the developer's tree is what is under test: laid over the clone.
    clone_worktree(clone, ("dvc.yaml", "Snakefile", "workflow", "config", "asnet"))
    # tiny's stages differ from the committed default's (no backbone pretrainings): write its own,
    # as a user switching presets does (`asnet dvc-yaml --preset tiny`)
    dvc_yaml.write("tiny", root=clone)
    dvc = [sys.executable, "-m", "dvc"]
    _run(dvc + ["repro"], clone)
    first = (clone / "results/table6.tex").read_text()
    second = _run(dvc + ["repro"], clone)
    assert "didn't change" in second.stdout or "up to date" in second.stdout, second.stdout
    status = _run(dvc + ["status"], clone)
    assert "up to date" in status.stdout.lower(), status.stdout
    assert (clone / "results/table6.tex").read_text() == first


@pytest.mark.slow
def test_experiment_table_tiny(tmp_path: Path) -> None:
    """Table 3 (fusions) end to end: every row trained with its own fusion, paper values beside."""
    _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                      "results/table3.tex", "--config", "preset=tiny"], REPO)
    table = pd.read_csv(tmp_path / "results/table3.csv")
    assert len(table) == 6 and table["Top-1"].between(0, 100).all()
    assert (table["CI low"] <= table["Top-1"]).all() and (table["Top-1"] <= table["CI high"]).all()
    assert set(table["Paper UCF-101"]) == {91.7, 93.7, 92.8, 92.7, 92.6, 92.1}
    import torch

    ck = torch.load(tmp_path / "results/checkpoints/synthetic_tiny/split1/asnet_fusion_sum/model.pt", weights_only=True)
    assert ck["config"]["model"]["fusion"] == "sum"
    assert "Table 3: fusion of the two streams" in (tmp_path / "results/table3.tex").read_text()
    # The cheaper SPA beside the paper's: only asnet_fast_spa is new (single and asnet exist).
    proc = _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2",
                             "results/spa_cost.tex", "--config", "preset=tiny"], REPO)
    trained = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip() in ("rule train:", "localrule train:")]
    assert len(trained) == 1, proc.stderr[-2000:]
    cost = pd.read_csv(tmp_path / "results/spa_cost.csv").set_index("run")
    assert list(cost.index) == ["single", "asnet", "asnet_fast_spa"]
    assert cost.loc["single", "Train FLOPs (x single)"] == pytest.approx(1.0)
    assert 1.0 < cost.loc["asnet_fast_spa", "Train FLOPs (x single)"] < cost.loc["asnet", "Train FLOPs (x single)"]
    assert 0.0 <= cost.loc["asnet_fast_spa", "McNemar p vs paper's SPA"] <= 1.0
    assert cost.loc["asnet_fast_spa", "SPA sees"] == "2x16x16" and cost.loc["asnet", "SPA sees"] == "4x32x32"
    ck = torch.load(tmp_path / "results/checkpoints/synthetic_tiny/split1/asnet_fast_spa/model.pt", weights_only=True)
    assert (ck["config"]["spa"]["state_scale"], ck["config"]["spa"]["state_stride"]) == (0.5, 2)
    assert _undeclared_results(tmp_path, "results/table3.tex", "results/spa_cost.tex") == []


def test_snakemake_reads_yaml12_floats_and_checks_arch_depth(tmp_path: Path) -> None:
    """Snakemake parses config files itself (YAML 1.1: `lr: 1e-3` is a string there); the
    workflow still takes it as a number, and an impossible arch/depth fails before any job."""
    good = tmp_path / "lr.yaml"
    good.write_text("preset: tiny\ntrain: {lr: 1e-3}\n")
    _run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "1",
                      "-n", "results/table6.tex", "--configfile", str(good)], REPO)
    bad = tmp_path / "depth.yaml"
    bad.write_text("preset: tiny\nmodel: {arch: resnet, depth: 121}\n")
    proc = subprocess.run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                                       "--cores", "1", "-n", "results/table6.tex", "--configfile", str(bad)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "model.depth: resnet has no depth 121" in proc.stdout + proc.stderr


def _failed_prepare_log(tmp_path: Path, config: Path) -> str:
    """Run the prepare job of dataset ucf_tiny under Snakemake with `config`; it must fail: its log."""
    proc = subprocess.run(SNAKEMAKE + ["--directory", str(tmp_path), "--cores", "1", "data/ucf_tiny/manifests/split1.csv",
                                       "--configfile", str(config)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return (tmp_path / "results" / "logs" / "ucf_tiny" / "prepare.log").read_text()


def test_a_job_error_ends_the_job_log_with_the_cli_line(tmp_path: Path) -> None:
    """An expected error in a job (here: split lists not where `splits_dir` says) leaves its
    traceback in the job's log for debugging and, as the log's last line, the one line
    `asnet prepare` prints for it."""
    (tmp_path / "raw" / "ucfTrainTestlist").mkdir(parents=True)
    (tmp_path / "raw" / "ucfTrainTestlist" / "classInd.txt").write_text("1 Archery\n")
    (tmp_path / "videos" / "Archery").mkdir(parents=True)
    config = tmp_path / "ucf.yaml"
    config.write_text("preset: tiny\ndatasets: [{name: ucf_tiny, kind: ucf101, "
                      f"root: {tmp_path / 'videos'}, splits_dir: {tmp_path / 'raw'}}}]\n")
    lines = _failed_prepare_log(tmp_path, config).rstrip("\n").splitlines()
    assert lines[-1] == (
        f"asnet prepare: error: datasets[ucf_tiny].splits_dir: split file not found: {tmp_path / 'raw' / 'classInd.txt'} "
        f"(classInd.txt is in {tmp_path / 'raw' / 'ucfTrainTestlist'}: is that the split lists' folder?); splits_dir is "
        f"{tmp_path / 'raw'}, which should directly hold classInd.txt, trainlist0k.txt, testlist0k.txt; set "
        "datasets[ucf_tiny].splits_dir in your config (config/config.yaml, or the file given with --config / "
        "Snakemake's --configfile) to that folder (see docs/real-data.md)"
    )
    assert any(line.startswith("Traceback") for line in lines[:-1])


def test_a_job_error_of_many_lines_ends_the_log_with_its_first_line(tmp_path: Path) -> None:
    """A message that lists things (here: the missing videos of the official UCF-101 lists)
    stays whole in the job log, and the log's last line is still the one `asnet ... error:` line."""
    lists = REPO.parent / "shared" / "datasets" / "ucf101" / "ucfTrainTestlist"
    if not lists.is_dir():
        pytest.skip(f"the official UCF-101 split lists are not at {lists}")
    (tmp_path / "videos" / "ApplyEyeMakeup").mkdir(parents=True)
    config = tmp_path / "ucf.yaml"
    config.write_text("preset: tiny\ndatasets: [{name: ucf_tiny, kind: ucf101, "
                      f"root: {tmp_path / 'videos'}, splits_dir: {lists}}}]\n")
    text = _failed_prepare_log(tmp_path, config)
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("asnet prepare: error: ") and last.endswith("(in full above)"), last
    assert "... and 13300 more" in text and "allow_missing: true" in text
