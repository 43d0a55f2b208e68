"""The HTML report: pages of the tables, per-run curves and configuration, run times per stage,
and, end to end, `snakemake --report` on the tiny preset with `dvc metrics/plots show`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import copy_build

from asnet import paths, stages
from asnet.config import load_config
from asnet.report.html import markdown_page, table_page, tex_caption
from asnet.report.runs import read_dvclive, write_run_items
from asnet.report.runtime import read_benchmarks, summarise, write_runtime
from asnet.report.tables import write_csv_and_tex
from asnet.train.checkpoint import save_atomic
from asnet.train.loop import _open_live

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_table_page_shows_every_cell_under_the_tex_caption(tmp_path: Path) -> None:
    df = pd.DataFrame({"Model": ["Single stream", "ASNet (SPA)"], "Top-1": [55.5556, 70.1389], "Paper": [None, 96.8]})
    tex = tmp_path / "table6.tex"
    write_csv_and_tex(df, df, tex, "Top-1 accuracy (\\%) over {3} splits; split 2: 90 of 96 videos.")
    assert tex_caption(tex.read_text()) == "Top-1 accuracy (%) over 3 splits; split 2: 90 of 96 videos."
    page = table_page(tex.with_suffix(".csv"), tex, "Table 6")
    assert "Top-1 accuracy (%) over 3 splits; split 2: 90 of 96 videos." in page
    for cell in ("Single stream", "ASNet (SPA)", "55.5556", "70.1389", "96.8000"):  # the csv as written
        assert f">{cell}</td>" in page, cell
    assert page.count("<tr>") == 3 and "\u2013</td>" in page  # header + 2 rows; the missing paper value
    with pytest.raises(FileNotFoundError, match="table7.csv"):
        table_page(tmp_path / "table7.csv")


def test_markdown_page_renders_the_audit_table(tmp_path: Path) -> None:
    md = tmp_path / "audit.md"
    md.write_text("# Audit\n\n| # | Claim | Verdict |\n|---|---|---|\n| 1 | ASNet <b>beats</b> | **reproduces** |\n")
    page = markdown_page(md, "Audit")
    assert "<h1>Audit</h1>" in page and "<td><strong>reproduces</strong></td>" in page
    assert "<b>" not in page  # raw HTML in the markdown is escaped, not passed through


def _write_bench(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + "".join(r + "\n" for r in rows))


def test_runtime_sums_benchmark_files_per_stage(tmp_path: Path) -> None:
    bench = tmp_path / "benchmarks"
    _write_bench(bench / "anchor_check.tsv", ["11.40\t0:00:11\t264.66\t641.29\t178.80\t189.46\t0.34\t0.01\t17.28\t2.09"])
    _write_bench(bench / "train/synthetic/split1/single.tsv", ["100.25\t0:01:40\t500\t900\t400\t410\t1\t2\t50\t90"])
    # a repeat (two rows) and values Snakemake could not measure
    _write_bench(bench / "train/synthetic/split1/asnet.tsv", ["10.5\t0:00:10\t300\t950\tNA\t-\t1\t2\t50\t9",
                                                               "12.5\t0:00:12\t310\t950\tNA\t-\t1\t2\t50\t11"])
    raw = read_benchmarks(bench)
    assert sorted(set(raw["stage"])) == ["anchor_check", "train"] and len(raw) == 4
    table = write_runtime(tmp_path / "runtime.csv", bench)
    assert table.equals(pd.read_csv(tmp_path / "runtime.csv", dtype={"h:m:s": str}).pipe(lambda d: d[table.columns]))
    train = table.set_index("stage").loc["train"]
    assert train["jobs"] == 2 and train["s"] == pytest.approx(100.25 + 10.5 + 12.5)
    assert train["max_job_s"] == pytest.approx(100.25) and train["max_rss"] == pytest.approx(500)
    assert train["cpu_time"] == pytest.approx(110) and train["h:m:s"] == "0:02:03"
    total = table.set_index("stage").loc["total"]
    assert total["jobs"] == 3 and total["s"] == pytest.approx(raw["s"].sum())
    assert list(table["stage"]) == ["train", "anchor_check", "total"]  # longest first
    (bench / "notes.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="notes.tsv: not a Snakemake benchmark file"):
        read_benchmarks(bench)
    assert summarise(read_benchmarks(tmp_path / "none")).empty


def test_run_items_from_dvclive_logs_and_model_pt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["preset=tiny"])
    run = paths.run_dir("synthetic_tiny", 1, "asnet")
    history = [{"epoch": e, "lr": 0.01, "train_loss": 1.2 - 0.1 * e, "train_acc": 0.3 + 0.1 * e,
                "spa_reward": -0.2 + 0.1 * e, "spa_loss": 1.0, "val_loss": 1.1, "val_acc": 0.4} for e in range(3)]
    _open_live(run, history).end()  # dvclive's own files, as training writes them
    with pytest.raises(FileNotFoundError, match="model.pt"):
        write_run_items(run)
    save_atomic({"model": {"w": torch.zeros(2)}, "history": history, "config": cfg.to_dict(), "variant": "asnet",
                 "num_classes": 3, "git_sha": "abc", "pretrained": None}, run / "model.pt")
    logged = read_dvclive(run)
    assert list(logged.index) == [1, 2, 3] and logged["train_loss"].tolist() == pytest.approx([1.2, 1.1, 1.0])
    items = stages.run_report(run)
    assert items["curves"] == paths.REPORT_ROOT / "runs/checkpoints/synthetic_tiny/split1/asnet/curves.png"
    assert items["curves"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = items["config"].read_text()
    assert yaml.safe_load(text) == cfg.to_dict() and "variant: asnet; classes: 3; epochs trained: 3" in text
    first = items["curves"].read_bytes()
    assert stages.run_report(run)["curves"].read_bytes() == first  # deterministic bytes
    shutil.rmtree(run / "dvclive")
    with pytest.raises(FileNotFoundError, match="dvclive"):
        stages.run_report(run)
    with pytest.raises(ValueError, match="not a run folder"):
        paths.report_run_dir(Path("results/eval/synthetic_tiny/split1/asnet"))


def test_report_inputs_follow_what_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["preset=tiny"])
    assert [p.as_posix() for p in stages.report_inputs(cfg)] == ["results/report/runtime.html"]
    Path("results").mkdir()
    Path("results/table6.csv").write_text("Model\nx\n")
    Path("results/audit.md").write_text("# a\n")
    run = paths.run_dir("synthetic_tiny", 1, "single")
    run.mkdir(parents=True)
    (run / "model.pt").write_bytes(b"")
    ev = paths.eval_dir("synthetic_tiny", 1, "single")
    ev.mkdir(parents=True)
    (ev / "confusion.png").write_bytes(b"")
    got = {p.as_posix() for p in stages.report_inputs(cfg)}
    assert got == {"results/report/table6.html", "results/report/audit.html", "results/report/runtime.html",
                   "results/report/runs/checkpoints/synthetic_tiny/split1/single/curves.png",
                   "results/report/runs/checkpoints/synthetic_tiny/split1/single/config.yaml",
                   f"{ev.as_posix()}/confusion.png"}
    runs = stages.report_runs(cfg)
    assert run in runs and paths.run_dir("synthetic_tiny", 1, "siamese_center") in runs  # Table 2's row
    assert paths.pretrain_dir("synthetic_tiny_source") in runs


def _run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _mtimes(root: Path) -> dict[str, int]:
    return {p.as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.xdist_group("tiny_build")
def test_snakemake_report_tiny(tiny_build: Path, tmp_path: Path) -> None:
    """Table 6 and Figure 4 on the tiny preset, then the report: every table, figure and
    per-run item built is in results/report.html; tables not built are absent; --report alone
    runs nothing; runtime.csv sums the real benchmark files; dvc reads the runs' logs."""
    smk = SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path), "--cores", "2"]
    tiny = ["--config", "preset=tiny"]
    copy_build(tiny_build, tmp_path)  # Table 6 and Figure 4 (and the probes) built by Snakemake
    built = _run(smk + ["-n", "results/table6.tex", "results/figure4.pdf"] + tiny, REPO)
    assert "Nothing to be done" in built.stdout + built.stderr, built.stdout + built.stderr
    before = _mtimes(tmp_path / "results")
    _run(smk + ["report_items", "--report", "results/report.html", "--report-after-run"] + tiny, REPO)
    # The report's items are new files; nothing the run wrote was rewritten.
    after = _mtimes(tmp_path / "results")
    assert {k: after[k] for k in before} == before
    html = (tmp_path / "results/report.html").read_text()
    runs = [f"checkpoints/synthetic_tiny/split1/{v}" for v in ("single", "asnet")]
    expected = ["results/table6.tex", "results/table6.csv", "results/table6_metrics.csv", "results/report/table6.html",
                "results/figure4.png", "results/figure4.pdf", "results/report/runtime.html"]
    for run in runs:
        expected += [f"results/report/runs/{run}/curves.png", f"results/report/runs/{run}/config.yaml",
                     f"results/{run.replace('checkpoints', 'eval')}/confusion.png",
                     f"results/{run.replace('checkpoints', 'eval')}/metrics.json"]
    for item in expected:
        assert f'"{item}"' in html, item
    for absent in ("results/table1.csv", "results/audit.md", "results/report/table1.html"):
        assert f'"{absent}"' not in html, absent
    for text in ("Table 6", "Runs", "Runtime", "Figures", "chance level"):
        assert text in html, text
    # The curves show the run's dvclive logs; the config is the one its model.pt trained with.
    ck = torch.load(tmp_path / "results" / runs[1] / "model.pt", weights_only=True)
    config = yaml.safe_load((tmp_path / "results/report/runs" / runs[1] / "config.yaml").read_text())
    assert config == ck["config"]
    # --report alone reads: no job runs, no output changes.
    before = _mtimes(tmp_path / "results")
    _run(smk + ["report_items", "--report", "results/report2.html"] + tiny, REPO)
    after = _mtimes(tmp_path / "results")
    assert {k: after[k] for k in before} == before
    assert sorted(set(after) - set(before)) == [(tmp_path / "results/report2.html").as_posix()]
    # runtime.csv on the real benchmark files the report's jobs wrote (Snakemake's own columns):
    # the rule ran after the runs' items, so it counted them.
    # One run report per trained run: Table 6's two and the probes' three.
    n_runs = len(list((tmp_path / "results/checkpoints").rglob("model.pt")))
    assert n_runs == 5
    assert pd.read_csv(tmp_path / "results/runtime.csv").set_index("stage").loc["run_report", "jobs"] == n_runs
    bench = tmp_path / "results/benchmarks"
    table = write_runtime(tmp_path / "runtime.csv", bench).set_index("stage")
    files = {p: pd.read_csv(p, sep="\t") for p in bench.rglob("*.tsv")}
    assert table.loc["run_report", "jobs"] == len(list((bench / "run_report").rglob("*.tsv"))) == n_runs
    assert table.loc["report_page_table6", "jobs"] == 1
    assert table.loc["total", "jobs"] == len(files)
    assert table.loc["total", "s"] == pytest.approx(sum(f["s"].sum() for f in files.values()), abs=0.02)
    assert table.loc["total", "max_rss"] == pytest.approx(max(f["max_rss"].max() for f in files.values()))
    # Wrapping outputs in report() changed no job: the run is still complete. The report's items
    # settle: a build after the first one adds the benchmark files the first one wrote, then none.
    _run(smk + ["report_items"] + tiny, REPO)
    dry = _run(smk + ["-n", "results/table6.tex", "results/figure4.pdf", "report_items"] + tiny, REPO)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout
    if shutil.which("git") is None:
        return
    # dvc.yaml's top-level metrics and plots: each run's metrics.json and dvclive logs.
    shutil.copy(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text("preset: tiny\ndataset: synthetic_tiny\nsource: synthetic_tiny_source\n")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(dvc + ["init", "-q"], cwd=tmp_path, check=True, env=env)
    shown = json.loads(_run(dvc + ["metrics", "show", "--json"], tmp_path).stdout)
    data = next(iter(shown.values()))["data"]
    for run in runs:
        ev = f"results/{run.replace('checkpoints', 'eval')}/metrics.json"
        numbers = {k: v for k, v in json.loads((tmp_path / ev).read_text()).items() if isinstance(v, int | float)}
        assert numbers and {k: data[ev]["data"][k] for k in numbers} == numbers, ev  # DVC shows scalars only
        assert data[f"results/{run}/dvclive/metrics.json"]["data"]["step"] == 1  # 2 epochs on the tiny preset
    plots = json.loads(_run(dvc + ["plots", "show", "--json"], tmp_path).stdout)["data"]
    for run in runs:
        values = plots[f"results/{run}/dvclive/plots/metrics/train_loss.tsv"][0]["content"]["data"]["values"]
        logged = pd.read_csv(tmp_path / "results" / run / "dvclive/plots/metrics/train_loss.tsv", sep="\t")
        assert [float(v["train_loss"]) for v in values] == pytest.approx(logged["train_loss"].tolist())
    assert "results/checkpoints/synthetic_tiny/split1/asnet/dvclive/plots/metrics/spa_reward.tsv" in plots
