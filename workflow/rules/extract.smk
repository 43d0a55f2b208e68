# Decode every video once into the frame store (resumable; bad videos reported, not fatal).
rule extract:
    input:
        manifests=[str(paths.manifest("{dataset}", s)) for s in CFG.splits],
    output:
        index=str(paths.frames_index("{dataset}")),
    threads: max(1, CFG.frames.workers)
    log:
        "results/logs/{dataset}/extract.log",
    script:
        "../scripts/extract.py"
