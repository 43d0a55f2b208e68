# Processes per training run (`train.nproc_per_node`): 1 trains in the job's own process;
# N > 1 launches torchrun --standalone --nproc_per_node N in the job (DistributedDataParallel,
# one GPU per process on CUDA, gloo on CPU; `train.batch_size` stays the global batch).
TRAIN_NPROC = CFG.train.nproc_per_node
# GPUs a training job needs: one per process, none when the config pins the CPU. Cluster
# executors turn `gpu` into a request (SLURM plugin: sbatch/srun --gpus=N); a local run
# ignores it unless given a limit (`--resources gpu=1`: one GPU training at a time).
TRAIN_GPUS = 0 if CFG.device == "cpu" else TRAIN_NPROC


# One training run per (dataset, split, variant). A killed run resumes from state/last.pt.
# threads: `train.threads` of the preset per process (the CPU preset trains small models,
# where one thread per run and several runs side by side use the cores best), or, when it
# is 0, all cores given to Snakemake: one run at a time uses the whole machine (on a
# cluster: the profile's `cores`). The package caps torch threads at the cores the job may
# use (its affinity mask: SLURM's --cpus-per-task, taskset; shared by the torchrun
# processes), so --cores 8 on 2 cores is safe.
rule train:
    input:
        stage_inputs("train"),
    output:
        model=str(paths.run_dir("{dataset}", "{split}", "{variant}") / "model.pt"),
    params:
        code=rule_code("train"),
        # what the run trains (config after the variant's overrides): an edit retrains it
        signature=lambda w: stages_train_signature(CFG, w.dataset, w.variant),
        # versions of the run's videos in the frame store: repairing a file it skipped retrains it
        store=lambda w: stages_store_version(CFG, w.dataset, int(w.split)),
    threads: CFG.train.threads * TRAIN_NPROC if CFG.train.threads > 0 else workflow.cores
    resources:
        gpu=TRAIN_GPUS,
    log:
        "results/logs/{dataset}/split{split}/{variant}/train.log",
    benchmark:
        "results/benchmarks/train/{dataset}/split{split}/{variant}.tsv"
    script:
        "../scripts/stage.py"


# A replicate seed's run (`seeds:`): the train rule with the seed in its paths and digest.
use rule train as train_seed with:
    output:
        model=str(paths.run_dir("{dataset}", "{split}", "{variant}", "{seed}") / "model.pt"),
    params:
        code=rule_code("train"),
        signature=lambda w: stages_train_signature(CFG, w.dataset, w.variant, int(w.seed)),
        store=lambda w: stages_store_version(CFG, w.dataset, int(w.split)),
    log:
        "results/logs/{dataset}/split{split}/{variant}/seed{seed}/train.log",
    benchmark:
        "results/benchmarks/train_seed/{dataset}/split{split}/{variant}/seed{seed}.tsv"


# The Kinetics stand-in (`pretrain:`): one single-stream run from scratch on the synthetic
# source set, whose model.pt the runs fine-tune from (model.pretrained). Resumable like a
# training run; its params are the digest of what it trains, so an edit retrains it and,
# through their own digests, every run that starts from it.
rule pretrain:
    input:
        stage_inputs("pretrain"),
    output:
        model=str(paths.pretrain_model("{source}")),
    params:
        code=rule_code("pretrain"),
        signature=lambda w: stages_pretrain_signature(CFG),
        # versions of the source set's videos: repairing a file it skipped retrains it
        store=lambda w: stages_pretrain_store_version(CFG),
    threads: CFG.train.threads if CFG.train.threads > 0 else workflow.cores
    log:
        "results/logs/pretrain/{source}/train.log",
    benchmark:
        "results/benchmarks/pretrain/{source}.tsv"
    script:
        "../scripts/stage.py"


# Table 2's other backbones (asnet.stages.pretrained_backbones): the same recipe as `pretrain`
# (asnet.stages.pretrain_config) with the backbone's model keys, one run per backbone whose
# runs fine-tune it. The `backbone` wildcard is the `asnet pretrain --backbone` option.
rule pretrain_backbone:
    input:
        stage_inputs("pretrain_backbone"),
    output:
        model=str(paths.pretrain_backbone_model("{source}", "{backbone}")),
    params:
        code=rule_code("pretrain_backbone"),
        signature=lambda w: stages_pretrain_signature(CFG, w.backbone),
        store=lambda w: stages_pretrain_store_version(CFG),
    threads: CFG.train.threads if CFG.train.threads > 0 else workflow.cores
    log:
        "results/logs/pretrain/backbones/{source}/{backbone}/train.log",
    benchmark:
        "results/benchmarks/pretrain_backbone/{source}/{backbone}.tsv"
    script:
        "../scripts/stage.py"


# Every backbone pretraining the configured runs need (a DVC stage's target).
rule pretrain_backbones:
    input:
        [str(paths.pretrain_backbone_model(s, b)) for s in SOURCES for b in stages_pretrained_backbones(CFG)],
