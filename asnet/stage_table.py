"""The stage table: one row per stage, from which `asnet.cli` builds its subcommands and
`workflow/scripts/stage.py` runs the Snakemake rules.

A row names the stage's function in asnet.stages, its CLI arguments, the `*_inputs`
function its rule's `input:` calls, and the Snakemake rules that run it. Adding a report is
one function (and its `*_inputs`) in asnet.stages, one row here, one rule in
workflow/rules/report.smk with `script: "../scripts/stage.py"`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from asnet import stages
from asnet.config import Config, resolved_yaml
from asnet.plan.gpus import DEFAULT_GPU, GPU_CLASSES
from asnet.plan.jobs import TARGETS as PLAN_TARGETS
from asnet.report.html import PAGES

REQUIRED = object()  # an Arg without a default must be given


@dataclass(frozen=True)
class Arg:
    """One option of a stage: `--<flag>` on the command line, keyword `kwarg` of the stage's
    function. In a rule, an Arg named like a wildcard takes the wildcard's value and an Arg
    named `out` takes the rule's first declared output."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = REQUIRED
    help: str | None = None
    choices: tuple[Any, ...] | None = None
    kwarg: str | None = None  # the function's keyword, when it is not `name`
    flag: str | None = None  # the CLI option, when it is not --<name>
    action: str | None = None  # e.g. store_true (then no type)
    nargs: str | None = None  # e.g. "+" (a list); with a `flag` without dashes, a positional argument

    @property
    def dest(self) -> str:
        return self.kwarg or self.name


@dataclass(frozen=True)
class Stage:
    """One `asnet` subcommand and the Snakemake rules that run the same function."""

    command: str
    run: Callable[..., Any]
    help: str
    args: tuple[Arg, ...] = ()
    inputs: Callable[..., list[Path]] | None = None
    rules: tuple[str, ...] = ()
    # Whether `run` takes `progress` (the CLI's --no-progress), and its value in a rule.
    progress: bool = True
    rule_progress: bool = True
    # A rule that runs something other than `run` (the train rule's torchrun launch); it also
    # receives `log_file`, the rule's log.
    rule_run: Callable[..., Any] | None = None
    # The CLI prints show(result).
    show: Callable[[Any], str] = str
    # False: a command without --config/--set (its function takes no Config).
    uses_config: bool = True
    # The CLI's exit status after show(result): 2 where the result holds failed inputs.
    status: Callable[[Any], int] = lambda _: 0


def _table(df: pd.DataFrame) -> str:
    return df.to_string(index=False)


def _lines(items: list[Any]) -> str:
    return "\n".join(map(str, items))


def _quiet(_: Any) -> str:
    return ""


DATASET = Arg("dataset", help="a configured dataset (or the pretraining source)")
SPLIT = Arg("split", int)
VARIANT = Arg("variant", help="a variant of asnet.variants")
SEED = Arg("seed", int, None, help="one of the configured `seeds` (default: the config's `seed`); another "
           "seed's run is <variant>/seed<s>/ (asnet.seeds)")


def _show_plan(df: pd.DataFrame) -> str:
    from asnet.plan.table import show  # imports torch: only when a plan is shown

    return show(df)


def _dvc_yaml(**kwargs: Any) -> list[Path]:
    from asnet.dvc_yaml import write  # only this command reads the stages' code

    return write(**kwargs)


def _paper_audit_summary(audit: Any) -> str:
    from asnet.report.paper_audit import summary_lines

    return "\n".join(summary_lines(audit))


def _predict_summary(result: Any) -> str:
    from asnet.predict.run import summary

    return summary(result)


def _out(default: str, kwarg: str) -> Arg:
    return Arg("out", Path, Path("results") / default, kwarg=kwarg, help=f"output file (default results/{default})")


STAGES: dict[str, Stage] = {s.command: s for s in (
    Stage("prepare", stages.prepare, "generate the synthetic set (if configured) and one manifest per split",
          (DATASET,), rules=("prepare", "prepare_source"), show=_lines),
    Stage("extract", stages.extract, "decode a configured dataset's videos into the frame store (every chunk, "
          "then the merge)", (DATASET,), show=_quiet),
    Stage("extract-chunk", stages.extract_chunk, "decode one of `frames.chunks` chunks of a dataset's videos "
          "(the extract_chunk rule)", (DATASET, Arg("chunk", int)), stages.extract_chunk_inputs,
          rules=("extract_chunk",), show=_quiet),
    Stage("merge-frames", stages.merge_frames, "merge the chunks' indexes into the frame store's index.csv "
          "(the extract rule)", (DATASET,), stages.merge_frames_inputs, rules=("extract",), progress=False,
          show=_quiet),
    Stage("verify-store", stages.verify_store, "check every file of a dataset's frame store against its "
          "checksums (one line per bad file; exit 2 if any): before a long run, or after a disk error",
          (DATASET,), show=_quiet),
    Stage("check-pretrained", stages.check_pretrained, "open the published pretrained files the runs start from "
          "and check their layout, release, classes and tensors against the configured backbones (what "
          "planning the workflow does): results/pretrained_check.json", (_out("pretrained_check.json", "out_json"),),
          progress=False, show=lambda items: _lines([f"{i['path']}: ok ({i['release']}, {i['tensors_loaded']} tensors, "
                                                     f"variant {i['variant']})" for i in items] or ["none"])),
    Stage("pretrain", stages.pretrain, "the pretraining run on the source set (`pretrain:`): "
          "results/pretrain/<source>/model.pt, or results/pretrain/backbones/<source>/<key>/model.pt with "
          "--backbone; prepare/extract the source with --dataset <source> first",
          (Arg("backbone", default=None, help="Table 2's backbone KEY (report.table2_backbones) to pretrain "
               "instead of the preset's (default: the preset's backbone)"),),
          stages.pretrain_inputs, rules=("pretrain", "pretrain_backbone")),
    Stage("train", stages.train, "train one (dataset, split, variant, seed) run", (DATASET, SPLIT, VARIANT, SEED),
          stages.train_inputs, rules=("train", "train_seed"), rule_run=stages.train_job),
    Stage("evaluate", stages.evaluate, "evaluate one (dataset, split, variant, seed) run",
          (DATASET, SPLIT, VARIANT, SEED), stages.evaluate_inputs, rules=("evaluate", "evaluate_seed")),
    Stage("table6", stages.table6, "aggregate evaluated runs into results/table6.{tex,csv}",
          (_out("table6.tex", "out_tex"),), stages.table6_inputs, rules=("table6",), progress=False, show=_table),
    Stage("experiment-table", stages.experiment_table, "Table 1, 2, 3 or 4 of the paper: results/<table>.{tex,csv}",
          (Arg("table", choices=("table1", "table2", "table3", "table4")),
           Arg("out", Path, None, kwarg="out_tex", help="output file (default results/<table>.tex)")),
          stages.experiment_table_inputs, rules=("experiment_table",), progress=False, show=_table),
    Stage("table5", stages.table5, "Table 5 (frozen features + linear SVM): results/table5.{tex,csv}",
          (_out("table5.tex", "out_tex"),), stages.table5_inputs, rules=("table5",), show=_table),
    Stage("probes", stages.probes, "learnability table of the synthetic set: results/probes.{tex,csv}",
          (_out("probes.tex", "out_tex"),), stages.probes_inputs, rules=("probes",), progress=False, show=_table),
    Stage("figure4", stages.figure4, "SPA reward and loss per epoch of the ASNet runs: results/figure4.{pdf,png}",
          (_out("figure4.pdf", "out_pdf"),), stages.figure4_inputs, rules=("figure4",), progress=False),
    Stage("figure5", stages.figure5, "SPA boxes on test frames, Grad-CAM ASNet vs single: results/figure5.{pdf,png}",
          (_out("figure5.pdf", "out_pdf"), Arg("videos", int, 4, kwarg="n_videos", help="test videos (rows) to show")),
          stages.figure5_inputs, rules=("figure5",), progress=False),
    Stage("audit", stages.audit, "which of the paper's claims the runs reproduce: results/audit.{md,csv}",
          (_out("audit.md", "out_md"),), stages.audit_inputs, rules=("audit",), progress=False, show=_table),
    Stage("paper-audit", stages.paper_audit, "the paper's own numbers without data: what its test sets could "
          "decide, where it contradicts itself: results/paper_audit.{md,csv}",
          (_out("paper_audit.md", "out_md"),
           Arg("paper-dir", Path, None, kwarg="paper_dir", help="folder of the paper's CSVs (default workflow/paper)")),
          stages.paper_audit_inputs, rules=("paper_audit",), progress=False, uses_config=False,
          show=_paper_audit_summary),
    Stage("spa-cost", stages.spa_cost, "accuracy and FLOPs of the cheaper SPA beside the paper's: "
          "results/spa_cost.{tex,csv}", (_out("spa_cost.tex", "out_tex"),), stages.spa_cost_inputs,
          rules=("spa_cost",), progress=False, show=_table),
    Stage("localisation", stages.localisation, "SPA's IoU with the actor against random / centre / best constant "
          "box and the oracle-reward SPA: results/localisation.{tex,csv}", (_out("localisation.tex", "out_tex"),),
          stages.localisation_inputs, rules=("localisation",), progress=False, show=_table),
    Stage("anchor-check", stages.anchor_check, "Hara et al.'s published fine-tuned models through our data path: "
          "results/anchor_check.{tex,csv}", (_out("anchor_check.tex", "out_tex"),), stages.anchor_check_inputs,
          rules=("anchor_check",), show=lambda df: _table(df.drop(columns=["provenance"]))),
    Stage("predict", stages.predict, "a trained model.pt (or a published Hara file) on video files: top-k "
          "classes per video, SPA's box per clip; --out CSV (+ .npz of per-clip scores), --annotate DIR "
          "(MP4 + contact sheet per video)",
          (Arg("inputs", Path, flag="inputs", nargs="+", help="video files or folders of them"),
           Arg("model", Path, help="a run's model.pt (results/checkpoints/<dataset>/split<k>/<variant>/model.pt) "
               "or one of Hara et al.'s published files"),
           Arg("top-k", int, 5, kwarg="top_k", help="classes per video (default 5)"),
           Arg("out", Path, None, kwarg="out_csv", help="CSV of the top-k per video; per-clip scores go "
               "beside it as <out>.npz"),
           Arg("annotate", Path, None, kwarg="annotate_dir", help="folder for an MP4 and a contact sheet PNG per video"),
           Arg("classes", Path, None, help="class names: a manifest CSV or one name a line (default: the "
               "run's dataset's)")),
          show=lambda r: _predict_summary(r), status=lambda r: 2 if r.errors else 0),
    Stage("report-page", stages.report_page, "a table (or the audit) as an HTML page of the report: "
          "results/report/<name>.html", (Arg("name", choices=tuple(PAGES)),
                                         Arg("out", Path, None, help="output file (default results/report/<name>.html)")),
          rules=tuple(f"report_page_{name}" for name in PAGES), progress=False, uses_config=False),
    Stage("run-report", stages.run_report, "a run's training curves (dvclive logs) and resolved configuration "
          "(model.pt): results/report/runs/<run>/{curves.png,config.yaml}",
          (Arg("run-dir", Path, kwarg="run_dir",
               help="results/checkpoints/<dataset>/split<k>/<variant> or results/pretrain/<source>"),
           Arg("out-dir", Path, None, kwarg="out_dir", help="default results/report/runs/<run>")),
          rules=("run_report",), progress=False, uses_config=False, show=lambda items: _lines(items.values())),
    Stage("runtime", stages.runtime, "Snakemake's benchmark files under results/benchmarks/ summed per stage: "
          "results/runtime.csv", (_out("runtime.csv", "out_csv"),), rules=("runtime",), progress=False,
          uses_config=False, show=_table),
    Stage("plan", stages.plan, "what each training and evaluation job of a target costs on a GPU before it runs "
          "(peak memory on fake tensors, FLOPs, steps, hours, the GPUs it fits): results/plan.csv",
          (_out("plan.csv", "out_csv"),
           Arg("target", default="table6", choices=PLAN_TARGETS, help="the target whose jobs are planned"),
           Arg("gpu", default=DEFAULT_GPU, choices=tuple(GPU_CLASSES), help="GPU class of the hours column"),
           Arg("measure", action="store_true", default=False,
               help="time 20 real steps of each case on this machine's device instead of the assumed TFLOP/s")),
          rules=("plan",), progress=False, show=_show_plan),
    Stage("config", resolved_yaml, "print the resolved configuration (preset + config file + --set) "
          "as a config file: every key a run sees", progress=False, show=lambda text: text.rstrip("\n")),
    Stage("manifest", stages.split_manifest, "build one split's manifest CSV from official split lists",
          (Arg("dataset", choices=("ucf101", "hmdb51", "synthetic")),
           Arg("root", Path, None, help="folder of <Class>/<video> files (checked when given)"),
           Arg("splits", Path, kwarg="splits_dir", help="folder of the official split lists"),
           Arg("split", int, choices=(1, 2, 3)),
           Arg("out", Path),
           Arg("allow-missing", kwarg="allow_missing", action="store_true", default=False,
               help="report and drop listed videos that are missing")),
          progress=False, uses_config=False),
    Stage("dvc-yaml", _dvc_yaml, "write dvc.yaml and params.yaml for a preset: its datasets' outputs, "
          "each stage's deps on the modules it imports", (
              Arg("preset", default="default", help="a preset of config/presets (default: default)"),
              Arg("root", Path, Path("."), help="folder of dvc.yaml and params.yaml (default: .)"),
              Arg("check", action="store_true", default=False,
                  help="write nothing; fail unless both are what this writes (each DVC stage runs this first)")),
          progress=False, uses_config=False, show=_quiet),
)}


def stage_of_rule(rule: str) -> Stage:
    """The stage a Snakemake rule runs; ValueError naming the table when no row lists it."""
    for stage in STAGES.values():
        if rule in stage.rules:
            return stage
    raise ValueError(f"rule {rule!r} runs workflow/scripts/stage.py but no row of asnet.stage_table.STAGES "
                     "lists it in `rules`; add it to its stage's row")


def rule_inputs(rule: str, cfg: Config, wildcards: dict[str, str]) -> list[str]:
    """The rule's `input:`: its stage's `*_inputs` function on the rule's wildcards."""
    stage = stage_of_rule(rule)
    if stage.inputs is None:
        return []
    return [str(p) for p in stage.inputs(cfg, **_wildcard_kwargs(stage, wildcards, stage.inputs))]


def _wildcard_kwargs(stage: Stage, wildcards: dict[str, str], fn: Callable[..., Any]) -> dict[str, Any]:
    """The wildcards that `fn` takes, typed as the stage's Arg of that name says (else text)."""
    import inspect

    params = inspect.signature(fn).parameters
    args = {a.name: a for a in stage.args}
    out = {}
    for name, value in wildcards.items():
        arg = args.get(name)
        dest = arg.dest if arg else name
        if dest in params:
            out[dest] = arg.type(value) if arg else value
    return out


def run_rule(rule: str, cfg: Config, wildcards: dict[str, str], output: list[str], log_file: str | None,
             params: dict[str, Any] | None = None, threads: int | None = None) -> Any:
    """What a Snakemake job of `rule` runs: its stage's function with the job's wildcards and
    params (an Arg takes the wildcard or param of its name or keyword; one named `out` gets the
    first declared output), as the CLI would with the same values. A function that takes
    `threads` gets the job's (the rule's `threads:`, as Snakemake scaled it to --cores)."""
    import inspect

    stage = stage_of_rule(rule)
    fn = stage.rule_run or stage.run
    kwargs = _wildcard_kwargs(stage, wildcards, fn)
    given = params or {}
    for a in stage.args:
        if a.dest in kwargs:
            continue
        if a.dest in given or a.name in given:
            value = given.get(a.dest, given.get(a.name))
            kwargs[a.dest] = a.type(value) if a.type is not str and value is not None else value
        elif a.name == "out":
            kwargs[a.dest] = Path(output[0])
        elif a.default is REQUIRED:
            raise ValueError(f"rule {rule}: stage {stage.command} needs `{a.name}`, which is neither a wildcard "
                             "nor `out`; give the rule that wildcard")
    if stage.progress:
        kwargs["progress"] = stage.rule_progress
    if stage.rule_run is not None:
        kwargs["log_file"] = Path(log_file) if log_file else None
    if threads is not None and "threads" in inspect.signature(fn).parameters:
        kwargs["threads"] = threads
    return fn(cfg, **kwargs) if stage.uses_config else fn(**kwargs)
