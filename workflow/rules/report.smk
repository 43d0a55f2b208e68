# Cross-split aggregation into the paper's Table 6 layout.
rule table6:
    input:
        metrics=[str(p) for p in stages_metric_files(CFG)],
        # the class count (for the cost columns) comes from the manifests
        manifests=[str(paths.manifest(d, CFG.splits[0])) for d in DATASETS],
    output:
        tex=report("results/table6.tex", caption="../report/table6.rst", category="Table 6"),
        csv=report("results/table6.csv", caption="../report/table6.rst", category="Table 6"),
        # every metric of every run and split, long form (write_table6 writes it beside the csv)
        metrics=report("results/table6_metrics.csv", caption="../report/table6.rst", category="Table 6"),
    log:
        "results/logs/table6.log",
    script:
        "../scripts/table6.py"


# Learnability of the synthetic set (single stream: full frame / centre crop / oracle crop).
rule probes:
    input:
        metrics=[str(p) for p in stages_metric_files(CFG, ["probe_full", "probe_center", "probe_oracle"])],
    output:
        tex=report("results/probes.tex", caption="../report/probes.rst", category="Table 5 and probes", subcategory="Probes"),
        csv=report("results/probes.csv", caption="../report/probes.rst", category="Table 5 and probes", subcategory="Probes"),
        metrics=report("results/probes_metrics.csv", caption="../report/probes.rst", category="Table 5 and probes", subcategory="Probes"),
    log:
        "results/logs/probes.log",
    script:
        "../scripts/probes.py"


from asnet.stages import figure4_runs as stages_figure4_runs, figure5_runs as stages_figure5_runs


# Figure 4: SPA mean reward and loss per epoch, one line per configured (dataset, split) ASNet run.
rule figure4:
    input:
        models=[str(p / "model.pt") for p in stages_figure4_runs(CFG)],
    output:
        pdf=report("results/figure4.pdf", caption="../report/figure4.rst", category="Figures", subcategory="Figure 4"),
        png=report("results/figure4.png", caption="../report/figure4.rst", category="Figures", subcategory="Figure 4"),
    log:
        "results/logs/figure4.log",
    script:
        "../scripts/figure4.py"


# Figure 5: SPA boxes on test frames and Grad-CAM, ASNet vs single stream (first dataset, split 1).
rule figure5:
    input:
        asnet=str(stages_figure5_runs(CFG)["asnet"]),
        single=str(stages_figure5_runs(CFG)["single"]),
        manifest=str(stages_figure5_runs(CFG)["manifest"]),
        index=str(paths.frames_index(CFG.datasets[0].name)),
    output:
        pdf=report("results/figure5.pdf", caption="../report/figure5.rst", category="Figures", subcategory="Figure 5"),
        png=report("results/figure5.png", caption="../report/figure5.rst", category="Figures", subcategory="Figure 5"),
    log:
        "results/logs/figure5.log",
    script:
        "../scripts/figure5.py"


# Tables 1-4 of the paper (ablations and backbones on split 1 of each configured dataset).
rule experiment_table:
    input:
        metrics=lambda w: [str(p) for p in stages_experiment_inputs(CFG, w.table)],
    output:
        tex=report("results/{table}.tex", caption="../report/experiment_table.rst", category="Tables 1-4", subcategory=lambda w: f"Table {w.table[-1]}"),
        csv=report("results/{table}.csv", caption="../report/experiment_table.rst", category="Tables 1-4", subcategory=lambda w: f"Table {w.table[-1]}"),
    log:
        "results/logs/{table}.log",
    script:
        "../scripts/experiment_table.py"


# Which of the paper's claims this run reproduces, from every table's per-video predictions.
rule audit:
    input:
        "results/table6.tex",
        [f"results/table{k}.tex" for k in (1, 2, 3, 4)],
        "results/table5_predictions.csv",
        "results/anchor_check.csv",
    output:
        md=report("results/audit.md", caption="../report/audit.rst", category="Audit", subcategory="Claims"),
        csv=report("results/audit.csv", caption="../report/audit.rst", category="Audit", subcategory="Claims"),
    log:
        "results/logs/audit.log",
    script:
        "../scripts/audit.py"


# Not in the paper: the cheaper SPA (asnet_fast_spa) beside the paper's, accuracy and FLOPs.
rule spa_cost:
    input:
        metrics=[str(r["metrics"]) for r in stages_spa_cost_runs(CFG)],
        manifests=[str(paths.manifest(d, CFG.splits[0])) for d in DATASETS],
    output:
        tex=report("results/spa_cost.tex", caption="../report/spa_cost.rst", category="Beyond the paper", subcategory="SPA's cost"),
        csv=report("results/spa_cost.csv", caption="../report/spa_cost.rst", category="Beyond the paper", subcategory="SPA's cost"),
    log:
        "results/logs/spa_cost.log",
    script:
        "../scripts/spa_cost.py"


# Not in the paper: SPA's IoU with the actor against a random, centre and best constant box, the
# oracle-reward SPA and the box-aware SPA (datasets with ground-truth boxes, splits pooled).
rule localisation:
    input:
        predictions=[str(p) for r in stages_localisation_runs(CFG) for p in r["predictions"]],
    output:
        tex=report("results/localisation.tex", caption="../report/localisation.rst", category="Beyond the paper", subcategory="Localisation"),
        csv=report("results/localisation.csv", caption="../report/localisation.rst", category="Beyond the paper", subcategory="Localisation"),
    log:
        "results/logs/localisation.log",
    script:
        "../scripts/localisation.py"


# The data path on known weights: Hara et al.'s published fine-tuned split-1 models, with their
# own classifier, on our split-1 test videos, beside their reported accuracy ("not run" rows
# when the files are absent, so the synthetic default makes it in seconds).
rule anchor_check:
    input:
        stages_anchor_inputs(CFG),
    output:
        tex=report("results/anchor_check.tex", caption="../report/anchor_check.rst", category="Audit", subcategory="Anchor check"),
        csv=report("results/anchor_check.csv", caption="../report/anchor_check.rst", category="Audit", subcategory="Anchor check"),
    log:
        "results/logs/anchor_check.log",
    benchmark:
        "results/benchmarks/anchor_check.tsv"
    script:
        "../scripts/anchor_check.py"


# Every table and figure of the paper for the configured datasets.
rule all_results:
    input:
        "results/anchor_check.tex",
        "results/audit.md",
        "results/table6.tex",
        "results/table1.tex",
        "results/table2.tex",
        "results/table3.tex",
        "results/table4.tex",
        "results/table5.tex",
        "results/figure4.pdf",
        "results/figure5.pdf",
        "results/spa_cost.tex",
        "results/localisation.tex",
    output:
        touch("results/all"),


# Table 5: frozen W_s / W_a features of X_c / X_s / both + a linear SVM (first dataset, first split).
rule table5:
    input:
        single=str(paths.run_dir(DATASETS[0], CFG.splits[0], "single") / "model.pt"),
        asnet=str(paths.run_dir(DATASETS[0], CFG.splits[0], "asnet") / "model.pt"),
        manifest=str(paths.manifest(DATASETS[0], CFG.splits[0])),
        index=str(paths.frames_index(DATASETS[0])),
    output:
        tex=report("results/table5.tex", caption="../report/table5.rst", category="Table 5 and probes", subcategory="Table 5"),
        csv=report("results/table5.csv", caption="../report/table5.rst", category="Table 5 and probes", subcategory="Table 5"),
        predictions=report("results/table5_predictions.csv", caption="../report/table5.rst", category="Table 5 and probes", subcategory="Table 5"),
    log:
        "results/logs/table5.log",
    script:
        "../scripts/table5.py"
