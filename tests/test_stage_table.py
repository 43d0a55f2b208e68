"""The stage table (asnet.stage_table.STAGES) is the one place that ties a stage's function to
its `asnet` subcommand and its Snakemake rules: the CLI is built from it, every job rule runs
the one generic script through it, and every job rule has a benchmark file by the convention
results/benchmarks/<rule>[/<wildcards as in the log path>].tsv."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asnet import paths, stages
from asnet.cli import build_parser, main
from asnet.config import load_config
from asnet.stage_table import STAGES, rule_inputs, run_rule, stage_of_rule

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "workflow" / "rules"
TINY = load_config(overrides=["preset=tiny"])

# The commands users, docs and tests already call: they must keep existing.
COMMANDS = {"prepare", "manifest", "extract", "pretrain", "train", "evaluate", "table6", "experiment-table",
            "table5", "probes", "figure4", "figure5", "audit", "spa-cost", "anchor-check", "localisation"}


# runtime.csv sums the benchmark files; a benchmark of its own would make each build stale.
NO_BENCHMARK = {"runtime"}


def _rules() -> dict[str, str]:
    """Every rule of workflow/rules/*.smk and workflow/Snakefile: name -> its text. The report's
    per-page rules are made in a loop over asnet.report.html.PAGES: one text per page."""
    from asnet.report.html import PAGES

    out = {}
    for f in [*sorted(RULES.glob("*.smk")), REPO / "workflow" / "Snakefile"]:
        text = f.read_text()
        for block in re.split(r"(?m)^(?=rule |use rule )", text)[1:]:
            use = re.match(r"use rule (\w+) as (\w+) with:", block)
            if use:  # `use rule X as Y with:` overrides some of X's keys and keeps the rest (its script)
                out[use.group(2)] = block.split("\n\n\n")[0] + "\n" + out[use.group(1)]
                continue
            name = re.match(r"rule (\w+):", block).group(1)
            out[name] = block.split("\n\n\n")[0]
        loop = re.search(r'(?ms)^    rule:\n        name:\n            f"report_page_\{_name\}".*?(?=\n\n\n|\Z)', text)
        if loop:
            body = re.sub(r'\bf"', '"', loop.group(0)).replace("{_name}", "{name}")
            for page in PAGES:
                out[f"report_page_{page}"] = body.replace("{name}", page)
    return out


def test_every_job_rule_runs_the_generic_script_through_one_table_row() -> None:
    rules = _rules()
    job_rules = {n for n, text in rules.items() if "script:" in text or "shell:" in text}
    assert job_rules and all('"../scripts/stage.py"' in rules[n] for n in job_rules)
    listed = [r for s in STAGES.values() for r in s.rules]
    assert sorted(listed) == sorted(job_rules)  # each job rule in exactly one row, no row names a missing rule
    assert [p.name for p in (REPO / "workflow" / "scripts").glob("*.py")] == ["stage.py"]
    with pytest.raises(ValueError, match="no row of asnet.stage_table.STAGES"):
        stage_of_rule("all")


def test_every_job_rule_has_a_benchmark_file_named_after_its_rule_and_log_wildcards() -> None:
    for name, text in _rules().items():
        if "script:" not in text or name in NO_BENCHMARK:
            assert "benchmark:" not in text, name  # aggregation rules do no work to time
            continue
        bench = re.search(r'benchmark:\n\s+"([^"]+)"', text).group(1)
        log = re.search(r'log:\n\s+"([^"]+)"', text).group(1)
        assert bench.startswith(f"results/benchmarks/{name}") and bench.endswith(".tsv"), name
        wildcards = re.findall(r"\{(\w+)\}", log)
        assert re.findall(r"\{(\w+)\}", bench) == wildcards, name
        if wildcards:  # results/benchmarks/<rule>/<wildcard values as in the log path>.tsv
            assert bench.startswith(f"results/benchmarks/{name}/"), name
        else:
            assert bench == f"results/benchmarks/{name}.tsv", name


def test_cli_subcommands_are_the_table_rows() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == set(STAGES) and COMMANDS <= set(STAGES)
    args = build_parser().parse_args(["figure5", "--videos", "2", "--set", "preset=tiny"])
    assert args.n_videos == 2 and args.out_pdf == Path("results/figure5.pdf") and args.overrides == ["preset=tiny"]


def test_rule_inputs_come_from_the_stage_inputs_functions() -> None:
    w = {"dataset": "synthetic_tiny", "split": "1", "variant": "asnet"}
    assert rule_inputs("evaluate", TINY, w) == [str(paths.run_dir("synthetic_tiny", 1, "asnet") / "model.pt"),
                                                str(paths.manifest("synthetic_tiny", 1)),
                                                str(paths.coverage("synthetic_tiny", 1)),
                                                str(paths.frames_index("synthetic_tiny"))]
    assert rule_inputs("train", TINY, w) == [str(paths.manifest("synthetic_tiny", 1)),
                                             str(paths.frames_index("synthetic_tiny"))]
    # a preset that fine-tunes from the pretraining run: its model.pt is the train rule's input
    default = load_config()
    assert str(paths.pretrain_model("synthetic_source")) in rule_inputs("train", default, {**w, "dataset": "synthetic"})
    assert rule_inputs("experiment_table", TINY, {"table": "table3"}) == [
        str(p) for p in stages.experiment_table_inputs(TINY, "table3")]
    assert rule_inputs("prepare", TINY, {"dataset": "synthetic_tiny"}) == []


def test_a_rule_and_the_cli_run_the_same_stage(in_tiny_workdir: Path, tmp_path: Path, capsys) -> None:
    """The merge-frames rule and `asnet merge-frames` write the same index from the same chunks;
    the pretrain rule refuses a wildcard that is not the configured source."""
    index = paths.frames_index("synthetic_tiny")
    before = index.read_bytes()
    index.unlink()
    run_rule("extract", TINY, {"dataset": "synthetic_tiny"}, [str(index)], None)
    assert index.read_bytes() == before
    index.unlink()
    assert main(["merge-frames", "--dataset", "synthetic_tiny", "--set", "preset=tiny"]) == 0
    assert index.read_bytes() == before
    with pytest.raises(ValueError, match="synthetic_tiny is not the configured pretraining source"):
        run_rule("pretrain", TINY, {"source": "synthetic_tiny"}, ["x"], None)
    out = tmp_path / "m.csv"
    code = main(["manifest", "--dataset", "synthetic", "--splits", str(Path("data/synthetic_tiny/raw/splits")),
                 "--split", "1", "--out", str(out)])
    assert code == 0 and "train /" in capsys.readouterr().out and out.exists()
