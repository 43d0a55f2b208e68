#!/usr/bin/env python
"""Sweep SPA's open values (spa.gamma x spa.state_norm x spa.lr) with the CNN frozen.

The paper gives neither gamma, nor how the state is scaled, nor SPA's learning rate for our
backbone; this chooses them on evidence that never touches test videos. For each setting a
fresh SPA agent (seeded) takes `--updates` PPO updates on training episodes of the split's
training videos (asnet.spa.frozen.train_frozen: the rollout and update the training loop
uses, the CNN frozen from `--checkpoint`), then its mean IoU with the actor is measured on
the held-out VALIDATION videos (train.val_fraction of the training videos, the ones
asnet.train.loop.split_validation holds out; every non-overlapping clip, SPA's test-time
steps). One line per setting is printed and the table is written as CSV, with the best
constant box of the training clips and the untrained agent on the same validation clips
as references.

The CNN: `--checkpoint model.pt` of a two-stream run (asnet, siamese_center: its classifier
gives loss_sign rewards meaning), or any checkpoint load_pretrained reads (a single-stream
model.pt, Hara et al.'s file, the pretraining stage's output: backbone only, seeded random
fusion head), or `none` (seeded random CNN; then use --set spa.reward=oracle_iou, since a
random classifier's loss change is noise).

Needs the dataset prepared and extracted (`asnet prepare` / `asnet extract`). Examples:

  python benchmarks/spa_sweep.py --checkpoint none --set spa.reward=oracle_iou --updates 200
  python benchmarks/spa_sweep.py --checkpoint results/checkpoints/synthetic/split1/asnet/model.pt
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

from asnet import paths
from asnet.config import Config, load_config, with_overrides
from asnet.data.clips import ClipDataset, VideoClips, pad_collate
from asnet.data.crops import box_iou
from asnet.device import select_runtime, set_threads
from asnet.models import build_model
from asnet.models.asnet import ASNet
from asnet.models.pretrained import load_pretrained, read_checkpoint
from asnet.spa.bounds import best_constant_box, constant_boxes, training_clip_boxes
from asnet.spa.frozen import Batch, build_agent, mean_iou, train_frozen
from asnet.train.loop import rebuild_trained, split_validation


def frozen_cnn(cfg: Config, num_classes: int, checkpoint: str) -> tuple[ASNet, str]:
    """The two-stream CNN SPA plays with, and where its weights came from."""
    if checkpoint != "none":
        obj = read_checkpoint(Path(checkpoint))
        if "variant" in obj and "num_classes" in obj:
            _, variant, model, _ = rebuild_trained(obj)
            if variant.streams == 2:
                return model.eval(), f"{checkpoint} ({variant.name}, whole model)"
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, num_classes, 2)
    if checkpoint == "none":
        return model.eval(), "seeded random CNN"
    load_pretrained(model, checkpoint, cfg)
    return model.eval(), f"{checkpoint} (backbone; seeded random fusion head)"


def training_batches(cfg: Config, df: pd.DataFrame, frames: Path) -> Iterator[Batch]:
    """Endless training batches: one random clip per video, a new clip and order each pass."""
    ds = ClipDataset(df, frames, cfg.input.clip_len, seed=cfg.seed)
    for epoch in itertools.count():
        ds.set_epoch(epoch)
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        yield from DataLoader(ds, batch_size=cfg.train.batch_size, shuffle=True, generator=gen,
                              collate_fn=pad_collate, drop_last=len(ds) > cfg.train.batch_size)


def clip_batches(df: pd.DataFrame, frames: Path, clip_len: int) -> list[Batch]:
    """Every non-overlapping clip of each video (the test clips' layout), one batch per video."""
    ds = VideoClips(df, frames, clip_len)
    out = []
    for i in range(len(ds)):
        item = ds[i]
        n = item["clips"].shape[0]
        out.append({"clip": item["clips"], "gt": item["gt"], "label": torch.full((n,), int(item["label"])),
                    "height": torch.full((n,), item["height"]), "width": torch.full((n,), item["width"])})
    return out


def _cat(batches: list[Batch], key: str) -> torch.Tensor:
    return torch.cat([b[key] for b in batches])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--checkpoint", required=True, help="model.pt / pretrained checkpoint the CNN is frozen from, or none")
    p.add_argument("--dataset", default=None, help="configured dataset (default: the first)")
    p.add_argument("--split", type=int, default=1)
    p.add_argument("--updates", type=int, default=200, help="PPO updates per setting")
    p.add_argument("--gammas", type=float, nargs="+", default=[0.0, 0.5, 0.9])
    p.add_argument("--state-norms", nargs="+", default=["none", "running"])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/spa_sweep.csv"))
    args = p.parse_args(argv)

    set_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    dataset = args.dataset or cfg.datasets[0].name
    manifest = pd.read_csv(paths.manifest(dataset, args.split))
    frames = paths.frames_dir(dataset)
    num_classes = int(manifest["label"].max()) + 1
    train_df, val_df = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True),
                                        cfg.train.val_fraction, cfg.seed)
    if not len(val_df):
        print("spa_sweep: train.val_fraction is 0: no validation videos to measure on", file=sys.stderr)
        return 2
    rt = select_runtime(cfg.device, cfg.train.amp, cfg.train.channels_last)
    model, source = frozen_cnn(cfg, num_classes, args.checkpoint)
    model = model.to(rt.device)
    if rt.channels_last:  # as build_parts does: the runtime's memory format for the conv weights too
        model = model.to(memory_format=torch.channels_last_3d)
    val = clip_batches(val_df, frames, cfg.input.clip_len)
    rel, _ = best_constant_box(*training_clip_boxes(train_df, frames, cfg.input.clip_len))
    keep = ~torch.isnan(_cat(val, "gt")).any(1)
    constant = float(box_iou(constant_boxes(rel, _cat(val, "height"), _cat(val, "width")), _cat(val, "gt"))[keep].mean())
    print(f"{dataset} split {args.split}: {len(train_df)} training / {len(val_df)} validation videos "
          f"({int(keep.sum())} clips); CNN: {source}; reward {cfg.spa.reward}; {args.updates} updates per setting")
    untrained = mean_iou(model, build_agent(cfg, model, num_classes, cfg.seed)[0].to(rt.device), val, cfg, rt)
    print(f"validation IoU of the best constant box of the training clips {tuple(round(x, 2) for x in rel)}: "
          f"{constant:.3f}; of the untrained agent: {untrained:.3f}")
    rows = []
    for gamma, norm, lr in itertools.product(args.gammas, args.state_norms, args.lrs):
        c = with_overrides(cfg, {"spa.gamma": gamma, "spa.state_norm": norm, "spa.lr": lr})
        agent, opt = build_agent(c, model, num_classes, c.seed)
        agent = agent.to(rt.device)
        start = time.perf_counter()
        history = train_frozen(model, agent, opt, training_batches(c, train_df, frames), c, rt, args.updates,
                               torch.Generator().manual_seed(c.seed))
        seconds = time.perf_counter() - start
        iou = mean_iou(model, agent, val, c, rt)
        tail = history[-max(1, len(history) // 10):]
        row = {"gamma": gamma, "state_norm": norm, "lr": lr, "updates": args.updates, "reward": c.spa.reward,
               "val_iou": round(iou, 4), "best_constant_val_iou": round(constant, 4),
               "final_reward": round(sum(h["reward"] for h in tail) / len(tail), 4), "seconds": round(seconds, 1)}
        rows.append(row)
        print(f"gamma {gamma:<4} state_norm {norm:<8} lr {lr:<7g} val IoU {iou:.3f} "
              f"(best constant {constant:.3f}), final reward {row['final_reward']:+.3f}, {seconds:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
