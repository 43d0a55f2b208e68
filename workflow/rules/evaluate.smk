# Video-level evaluation of one trained run on its split's test list (test views:
# `eval.views`, see asnet/train/evaluate.py).
rule evaluate:
    input:
        stage_inputs("evaluate"),
    output:
        metrics=report(str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "metrics.json"), caption="../report/run_metrics.rst", category="Runs", subcategory="checkpoints/{dataset}/split{split}/{variant}"),
        predictions=str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "predictions.csv"),
        scores=str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "scores.npz"),
        confusion=report(str(paths.eval_dir("{dataset}", "{split}", "{variant}") / "confusion.png"), caption="../report/confusion.rst", category="Runs", subcategory="checkpoints/{dataset}/split{split}/{variant}"),
    params:
        code=rule_code("evaluate"),
        # the test protocol (the current config's, not the checkpoint's): an edit re-evaluates
        views=CFG.eval.views,
        max_clips=CFG.eval.max_clips,
    # evaluation runs `train.threads` torch threads, as its training did (0 = all cores):
    # claiming every core would serialise a CPU run's evaluations for no speed.
    threads: CFG.train.threads if CFG.train.threads > 0 else workflow.cores
    log:
        "results/logs/{dataset}/split{split}/{variant}/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate/{dataset}/split{split}/{variant}.tsv"
    script:
        "../scripts/stage.py"


# A replicate seed's run (`seeds:`): <variant>/seed<s>/ beside the files above.
use rule evaluate as evaluate_seed with:
    output:
        metrics=report(str(paths.eval_dir("{dataset}", "{split}", "{variant}", "{seed}") / "metrics.json"), caption="../report/run_metrics.rst", category="Runs", subcategory="checkpoints/{dataset}/split{split}/{variant}/seed{seed}"),
        predictions=str(paths.eval_dir("{dataset}", "{split}", "{variant}", "{seed}") / "predictions.csv"),
        scores=str(paths.eval_dir("{dataset}", "{split}", "{variant}", "{seed}") / "scores.npz"),
        confusion=report(str(paths.eval_dir("{dataset}", "{split}", "{variant}", "{seed}") / "confusion.png"), caption="../report/confusion.rst", category="Runs", subcategory="checkpoints/{dataset}/split{split}/{variant}/seed{seed}"),
    log:
        "results/logs/{dataset}/split{split}/{variant}/seed{seed}/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate_seed/{dataset}/split{split}/{variant}/seed{seed}.tsv"
