# What each training and evaluation job of `rule all` (Table 6) costs on a GPU, before any runs:
# the peak memory of one step measured on fake tensors, FLOPs, steps, hours on an A100 at an
# assumed rate, the memory classes it fits (`asnet plan`; seconds, reads no data).
rule plan:
    output:
        csv="results/plan.csv",
    params:
        code=rule_code("plan"),
    log:
        "results/logs/plan.log",
    benchmark:
        "results/benchmarks/plan.tsv"
    script:
        "../scripts/stage.py"
