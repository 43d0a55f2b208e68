"""Bounds on SPA's localisation: the best constant box, the ceiling of a pure box prior.

A policy whose box does not depend on the clip can at best place the one box that overlaps
the actor most on average. `best_constant_box` finds it by grid search over square boxes
(like SPA's 3 actions) in frame-relative coordinates, on the TRAINING clips of a split only;
`constant_boxes` places it on any frame. If SPA's IoU does not beat this box, SPA has learnt
a prior, not to localise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from asnet.data.crops import box_iou

# The grid: a box's corner at a fraction u (v) of the room the frame leaves it, x0 = u (W - s),
# y0 = v (H - s), so every box lies inside the frame; its side s = f * min(H, W).
POSITIONS = 11
SIDES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def constant_boxes(rel: Tensor | tuple[float, float, float], heights: Tensor, widths: Tensor) -> Tensor:
    """The frame-relative box rel = (u, v, f) on frames (H, W) (see POSITIONS). -> (B, 4)"""
    u, v, f = (float(x) for x in rel)
    h, w = heights.float(), widths.float()
    side = f * torch.minimum(h, w)
    x0, y0 = u * (w - side), v * (h - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def grid(positions: int = POSITIONS, sides: tuple[float, ...] = SIDES) -> Tensor:
    """Every (u, v, f) of the grid. -> (positions^2 * len(sides), 3)"""
    pos = torch.linspace(0, 1, positions)
    u, v, f = torch.meshgrid(pos, pos, torch.tensor(sides, dtype=torch.float32), indexing="ij")
    return torch.stack([u.flatten(), v.flatten(), f.flatten()], dim=1)


def best_constant_box(
    gt: Tensor, heights: Tensor, widths: Tensor, positions: int = POSITIONS, sides: tuple[float, ...] = SIDES
) -> tuple[tuple[float, float, float], float]:
    """The grid box (u, v, f) of highest mean IoU with the actor boxes `gt` (N, 4) of N clips on
    frames (heights, widths) (N,), and that mean IoU. Clips without a box (NaN) are ignored."""
    keep = ~torch.isnan(gt).any(dim=1)
    gt, heights, widths = gt[keep].float(), heights[keep], widths[keep]
    if gt.shape[0] == 0:
        raise ValueError("best_constant_box: no clip has a ground-truth box")
    cands = grid(positions, sides)
    scores = torch.stack([box_iou(constant_boxes(c, heights, widths), gt).mean() for c in cands])
    best = int(torch.argmax(scores))  # first of equal scores: deterministic
    return tuple(float(x) for x in cands[best]), float(scores[best])  # type: ignore[return-value]


def training_clip_boxes(manifest: pd.DataFrame, frames_dir: Path, clip_len: int) -> tuple[Tensor, Tensor, Tensor]:
    """Actor boxes of every non-overlapping clip (the test clips' layout, asnet.data.clips) of
    the manifest's training videos: (gt (N, 4), heights (N,), widths (N,)); empty without boxes."""
    from asnet.data.clips import box_union, hara_clip_indices
    from asnet.data.store import find_video, open_boxes, open_video

    gts, hs, ws = [], [], []
    for video in manifest.loc[manifest["subset"] == "train", "video"].astype(str):
        boxes_path, frames_path = Path(frames_dir) / f"{video}.boxes.npy", find_video(Path(frames_dir), video)
        if not boxes_path.exists() or frames_path is None:
            continue
        boxes = open_boxes(boxes_path)  # StoreError naming the file if damaged
        t, h, w, _ = open_video(frames_path).shape  # the header only
        for row in hara_clip_indices(t, clip_len):
            gts.append(box_union(boxes, row))
            hs.append(h)
            ws.append(w)
    if not gts:
        return torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    return torch.from_numpy(np.stack(gts)), torch.tensor(hs), torch.tensor(ws)


@lru_cache(maxsize=8)
def split_constant_box(manifest_path: Path, frames_dir: Path, clip_len: int) -> tuple[float, float, float] | None:
    """The best constant box of a split, from its training clips only (None without actor
    boxes, e.g. on real datasets); computed once per (manifest, frames, clip length)."""
    gt, hs, ws = training_clip_boxes(pd.read_csv(manifest_path), Path(frames_dir), clip_len)
    if gt.shape[0] == 0 or torch.isnan(gt).all():
        return None
    return best_constant_box(gt, hs, ws)[0]
