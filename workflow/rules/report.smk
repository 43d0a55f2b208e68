# Cross-split aggregation into the paper's Table 6 layout.
rule table6:
    input:
        metrics=[str(p) for p in stages_metric_files(CFG)],
    output:
        tex="results/table6.tex",
        csv="results/table6.csv",
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
    log:
        "results/logs/probes.log",
    script:
        "../scripts/probes.py"
