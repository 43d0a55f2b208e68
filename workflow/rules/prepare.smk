# Synthetic set generation (when configured), one manifest per split and its coverage of
# the official lists.
rule prepare:
    output:
        manifests=[str(paths.manifest("{dataset}", s)) for s in CFG.splits],
        coverage=[str(paths.coverage("{dataset}", s)) for s in CFG.splits],
    params:
        code=rule_code("prepare"),
    log:
        "results/logs/{dataset}/prepare.log",
    benchmark:
        "results/benchmarks/prepare/{dataset}.tsv"
    script:
        "../scripts/stage.py"


# The pretraining source set (`pretrain.dataset`, the Kinetics stand-in): generated like the
# synthetic target, with one manifest of all its videos instead of per-split ones.
rule prepare_source:
    output:
        manifest=str(paths.pretrain_manifest("{dataset}")),
    params:
        code=rule_code("prepare_source"),
    log:
        "results/logs/{dataset}/prepare_source.log",
    benchmark:
        "results/benchmarks/prepare_source/{dataset}.tsv"
    script:
        "../scripts/stage.py"
