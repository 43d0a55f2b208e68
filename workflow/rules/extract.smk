# Decode every video once into the frame store, in `frames.chunks` independent jobs that
# Snakemake can spread over cores or cluster nodes (bad videos are reported in the chunk's
# bad_videos.csv, never fatal), then merge their indexes. The arrays go straight to frames/
# and each finished video leaves a marker in frames_chunks/.done/: neither is a declared
# output, so a killed chunk rerun by --rerun-incomplete (which deletes its index) keeps them.
rule extract_chunk:
    input:
        # per-split manifests, or the pretraining source's single one
        manifests=lambda w: [str(m) for m in stages_manifests(CFG, w.dataset)],
    output:
        index=str(paths.frames_chunk_dir("{dataset}", "{chunk}") / "index.csv"),
        bad=str(paths.frames_chunk_dir("{dataset}", "{chunk}") / "bad_videos.csv"),
    threads: max(1, CFG.frames.workers)
    log:
        "results/logs/{dataset}/extract_chunk{chunk}.log",
    script:
        "../scripts/extract_chunk.py"


rule extract:
    input:
        chunks=[str(paths.frames_chunk_dir("{dataset}", k) / "index.csv") for k in range(CFG.frames.chunks)],
    output:
        index=str(paths.frames_index("{dataset}")),
    log:
        "results/logs/{dataset}/extract.log",
    script:
        "../scripts/extract.py"
