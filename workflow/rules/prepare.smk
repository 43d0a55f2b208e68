# Synthetic set generation (when configured) and one manifest per split.
rule prepare:
    output:
        manifests=[str(paths.manifest("{dataset}", s)) for s in CFG.splits],
    log:
        "results/logs/{dataset}/prepare.log",
    script:
        "../scripts/prepare.py"
