# One training run per (dataset, split, variant). A killed run resumes from state/last.pt.
# threads = all cores given to Snakemake: one run at a time uses the whole machine (the
# package caps torch threads at the real core count, so --cores 8 on 2 cores is safe).
rule train:
    input:
        manifest=str(paths.manifest("{dataset}", "{split}")),
        index=str(paths.frames_index("{dataset}")),
    output:
        model=str(paths.run_dir("{dataset}", "{split}", "{variant}") / "model.pt"),
    threads: workflow.cores
    log:
        "results/logs/{dataset}/split{split}/{variant}/train.log",
    script:
        "../scripts/train.py"
