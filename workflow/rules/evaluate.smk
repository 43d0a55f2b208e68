# Video-level evaluation of one trained run on its split's test list.
rule evaluate:
    input:
        model=str(paths.run_dir("{dataset}", "{split}", "{variant}") / "model.pt"),
        manifest=str(paths.manifest("{dataset}", "{split}")),
        index=str(paths.frames_index("{dataset}")),
    output:
        metrics=str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "metrics.json"),
        predictions=str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "predictions.csv"),
    threads: workflow.cores
    log:
        "results/logs/{dataset}/split{split}/{variant}/evaluate.log",
    script:
        "../scripts/evaluate.py"
