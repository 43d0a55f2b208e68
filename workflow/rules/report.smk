# Cross-split aggregation into the paper's Table 6 layout.
rule table6:
    input:
        metrics=[str(p) for p in stages_metric_files(CFG)],
        # the class count (for the cost columns) comes from the manifests
        manifests=[str(paths.manifest(d, CFG.splits[0])) for d in DATASETS],
    output:
        tex="results/table6.tex",
        csv="results/table6.csv",
        # every metric of every run and split, long form (write_table6 writes it beside the csv)
        metrics="results/table6_metrics.csv",
    log:
        "results/logs/table6.log",
    script:
        "../scripts/table6.py"


# Learnability of the synthetic set (single stream: full frame / centre crop / oracle crop).
rule probes:
    input:
        metrics=[str(p) for p in stages_metric_files(CFG, ["probe_full", "probe_center", "probe_oracle"])],
    output:
        tex="results/probes.tex",
        csv="results/probes.csv",
        metrics="results/probes_metrics.csv",
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
        pdf="results/figure4.pdf",
        png="results/figure4.png",
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
        pdf="results/figure5.pdf",
        png="results/figure5.png",
    log:
        "results/logs/figure5.log",
    script:
        "../scripts/figure5.py"


# Tables 1-4 of the paper (ablations and backbones on split 1 of each configured dataset).
rule experiment_table:
    input:
        metrics=lambda w: [str(p) for p in stages_experiment_inputs(CFG, w.table)],
    output:
        tex="results/{table}.tex",
        csv="results/{table}.csv",
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
        md="results/audit.md",
        csv="results/audit.csv",
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
        tex="results/spa_cost.tex",
        csv="results/spa_cost.csv",
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
        tex="results/localisation.tex",
        csv="results/localisation.csv",
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
        tex="results/anchor_check.tex",
        csv="results/anchor_check.csv",
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
        tex="results/table5.tex",
        csv="results/table5.csv",
        predictions="results/table5_predictions.csv",
    log:
        "results/logs/table5.log",
    script:
        "../scripts/table5.py"
