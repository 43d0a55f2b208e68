#!/usr/bin/env python
"""The crop of a batch (asnet.data.crops.Frames.crop): "window" (each box's pixel window
resized by torch's uint8 kernel, the CPU's default) against "matrix" (one batched product per
axis that reads nothing on the host, the GPU's default), on the device given.

Boxes are Hara et al.'s multi-scale corner crops of the short side (as the context stream's),
from uint8 clips of the stored frame size. Medians over `--repeats` interleaved runs, after a
warm-up; on CUDA each crop is timed between synchronisations. The ratio is matrix / window.

    python benchmarks/crops.py                                   # default preset geometry, CPU
    python benchmarks/crops.py --batch 8 --clip-len 16 --frame 256 340 --size 112   # the paper's
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from asnet.data.crops import CROP_METHODS, Frames, multiscale_corner_boxes
from asnet.hara import ACTIVITYNET_2018


def time_crops(batch: int, clip_len: int, frame: tuple[int, int], size: int, device: str, repeats: int) -> dict:
    """Median seconds per batch crop of each method (the frames made once, as in a training step)."""
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    h, w = frame
    clips = torch.randint(0, 256, (batch, clip_len, h, w, 3), dtype=torch.uint8, generator=gen)
    hs, ws = torch.full((batch,), h), torch.full((batch,), w)
    boxes = multiscale_corner_boxes(hs, ws, (1.0, 0.84089642, 0.70710678, 0.59460356, 0.5), gen)
    flip = torch.rand(batch, generator=gen) < 0.5
    frames = {m: Frames.of(clips, hs, ws, dev, m) for m in CROP_METHODS}

    def once(m: str) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        frames[m].crop(boxes, size, ACTIVITYNET_2018, flip)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t

    for m in CROP_METHODS:
        once(m)
    times: dict[str, list[float]] = {m: [] for m in CROP_METHODS}
    for r in range(repeats):
        for m in (CROP_METHODS if r % 2 == 0 else CROP_METHODS[::-1]):
            times[m].append(once(m))
    med = {m: statistics.median(v) for m, v in times.items()}
    return {"batch": batch, "clip_len": clip_len, "frame": list(frame), "size": size, "device": str(dev),
            "threads": torch.get_num_threads(), "s_per_batch": med, "matrix_over_window": med["matrix"] / med["window"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--clip-len", type=int, default=8)
    ap.add_argument("--frame", type=int, nargs=2, default=(64, 85), metavar=("H", "W"))
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = time_crops(args.batch, args.clip_len, tuple(args.frame), args.size, args.device, args.repeats)
    s = res["s_per_batch"]
    print(f"batch {args.batch} x {args.clip_len}f {args.frame[0]}x{args.frame[1]} -> {args.size} on {res['device']}, "
          f"{res['threads']} thread(s): window {s['window'] * 1e3:.2f} ms, matrix {s['matrix'] * 1e3:.2f} ms, "
          f"matrix / window {res['matrix_over_window']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
