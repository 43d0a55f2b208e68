# Decode every video once into the frame store, in `frames.chunks` independent jobs that
# Snakemake can spread over cores or cluster nodes (bad videos are reported in the chunk's
# bad_videos.csv, never fatal), then merge their indexes. The arrays go straight to frames/
# and each finished video leaves a marker in frames_chunks/.done/: neither is a declared
# output, so a killed chunk rerun by --rerun-incomplete (which deletes its index) keeps them.
rule extract_chunk:
    input:
        stage_inputs("extract_chunk"),
    output:
        index=str(paths.frames_chunk_dir("{dataset}", "{chunk}") / "index.csv"),
        bad=str(paths.frames_chunk_dir("{dataset}", "{chunk}") / "bad_videos.csv"),
    # one decoder process per thread: Snakemake scales this down to --cores, and the chunk
    # starts min(frames.workers, the job's threads) decoders
    params:
        code=rule_code("extract_chunk"),
    threads: max(1, CFG.frames.workers)
    log:
        "results/logs/{dataset}/extract_chunk{chunk}.log",
    benchmark:
        "results/benchmarks/extract_chunk/{dataset}/chunk{chunk}.tsv"
    script:
        "../scripts/stage.py"


rule extract:
    input:
        stage_inputs("extract"),
    output:
        index=str(paths.frames_index("{dataset}")),
    params:
        code=rule_code("extract"),
    log:
        "results/logs/{dataset}/extract.log",
    benchmark:
        "results/benchmarks/extract/{dataset}.tsv"
    script:
        "../scripts/stage.py"
