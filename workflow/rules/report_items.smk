# Snakemake's HTML report (docs/report.md): after a run,
#   snakemake --cores 8 report_items --report results/report.html --report-after-run
# builds the report's own items (a page per table, each run's curves and configuration,
# results/runtime.csv), then writes one self-contained results/report.html of every output
# marked report(...) in the rules of what exists. Captions: workflow/report/*.rst.
from pathlib import Path

from asnet.report.html import PAGES as REPORT_PAGES, page_source as report_page_source
from asnet.stages import report_inputs as stages_report_inputs


report: "../report/workflow.rst"


# Where each page sits in the report, with the caption its table's own .tex/.csv items carry.
REPORT_PAGE_PLACES = {
    "table6": ("Table 6", None, "table6.rst"),
    "table1": ("Tables 1-4", "Table 1", "experiment_table.rst"),
    "table2": ("Tables 1-4", "Table 2", "experiment_table.rst"),
    "table3": ("Tables 1-4", "Table 3", "experiment_table.rst"),
    "table4": ("Tables 1-4", "Table 4", "experiment_table.rst"),
    "table5": ("Table 5 and probes", "Table 5", "table5.rst"),
    "probes": ("Table 5 and probes", "Probes", "probes.rst"),
    "spa_cost": ("Beyond the paper", "SPA's cost", "spa_cost.rst"),
    "localisation": ("Beyond the paper", "Localisation", "localisation.rst"),
    "anchor_check": ("Audit", "Anchor check", "anchor_check.rst"),
    "audit": ("Audit", "Claims", "audit.rst"),
    "paper_audit": ("Audit", "The paper's own numbers", "paper_audit.rst"),
    "runtime": ("Runtime", None, "runtime.rst"),
}


# One page per table (its .csv with the caption of its .tex) or of the audit's markdown.
for _name in REPORT_PAGES:
    _category, _subcategory, _caption = REPORT_PAGE_PLACES[_name]
    _source, _tex = report_page_source(_name)

    rule:
        name:
            f"report_page_{_name}"
        input:
            [str(_source)] + ([str(_tex)] if _tex else []),
        output:
            html=report(str(paths.REPORT_ROOT / f"{_name}.html"), caption=f"../report/{_caption}",
                        category=_category, subcategory=_subcategory),
        params:
            code=rule_code(f"report_page_{_name}"),
            name=_name,
        localrule: True
        log:
            f"results/logs/report/{_name}.log",
        benchmark:
            f"results/benchmarks/report_page_{_name}.tsv"
        script:
            "../scripts/stage.py"


# A run's training curves (its dvclive logs) and the configuration it trained with (its
# model.pt), next to its confusion matrix in the report. Not outputs of the train rule: making
# them never retrains; they follow a retrained model.pt.
rule run_report:
    input:
        model="results/{run}/model.pt",
    output:
        curves=report(str(paths.REPORT_ROOT / "runs" / "{run}" / "curves.png"), caption="../report/curves.rst",
                      category="Runs", subcategory="{run}"),
        config=report(str(paths.REPORT_ROOT / "runs" / "{run}" / "config.yaml"), caption="../report/run_config.rst",
                      category="Runs", subcategory="{run}"),
    params:
        code=rule_code("run_report"),
        run_dir="results/{run}",
        out_dir=str(paths.REPORT_ROOT / "runs" / "{run}"),
    localrule: True
    wildcard_constraints:
        run="checkpoints/[a-z0-9_]+/split[0-9]+/[a-z0-9_]+(/seed[0-9]+)?|pretrain/[a-z0-9_]+|pretrain/backbones/[a-z0-9_]+/[a-z0-9_]+",
    log:
        "results/logs/report/runs/{run}.log",
    benchmark:
        "results/benchmarks/run_report/{run}.tsv"
    script:
        "../scripts/stage.py"


# results/runtime.csv sums every benchmark file present when it runs. It runs after the
# report's other items (so their own jobs count too) and reruns when a benchmark file is
# added or rewritten; its own page's file is left out of the inputs, or each build would
# make the next one stale. An aggregation of files: no benchmark of its own.
rule runtime:
    input:
        bench=lambda w: sorted(str(p) for p in Path("results/benchmarks").rglob("*.tsv")
                               if p.name != "report_page_runtime.tsv"),
        report_items=lambda w: [str(p) for p in stages_report_inputs(CFG) if p.name != "runtime.html"],
    output:
        csv="results/runtime.csv",
    params:
        code=rule_code("runtime"),
    localrule: True
    log:
        "results/logs/runtime.log",
    script:
        "../scripts/stage.py"


# The report's target: the items of whatever tables, figures and runs exist (asnet.stages.report_inputs).
rule report_items:
    localrule: True
    input:
        lambda w: [str(p) for p in stages_report_inputs(CFG)],

