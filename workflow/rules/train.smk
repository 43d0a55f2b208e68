# One training run per (dataset, split, variant). A killed run resumes from state/last.pt.
# threads: `train.threads` of the preset (the CPU preset trains small models, where one
# thread per run and several runs side by side use the cores best), or, when it is 0, all
# cores given to Snakemake: one run at a time uses the whole machine. The package caps
# torch threads at the real core count, so --cores 8 on 2 cores is safe.
rule train:
    input:
        manifest=str(paths.manifest("{dataset}", "{split}")),
        index=str(paths.frames_index("{dataset}")),
        # Kinetics weights (model.pretrained / pretrained_dir): missing ones stop the run
        # before any job starts, naming the file.
        pretrained=lambda w: stages_pretrained_inputs(CFG, w.variant),
    output:
        model=str(paths.run_dir("{dataset}", "{split}", "{variant}") / "model.pt"),
    threads: CFG.train.threads if CFG.train.threads > 0 else workflow.cores
    log:
        "results/logs/{dataset}/split{split}/{variant}/train.log",
    script:
        "../scripts/train.py"
