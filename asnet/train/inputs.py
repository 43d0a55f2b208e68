"""Stream inputs for a batch: which box each stream sees, in training and at test.

One function per question so that training, validation and evaluation cannot drift apart.
"""

from __future__ import annotations

import torch
from torch import Tensor

from asnet.config import Config
from asnet.data.crops import (
    CORNERS,
    centre_crop_boxes,
    full_frame_boxes,
    multiscale_corner_boxes,
    oracle_boxes,
    random_boxes,
    square_at,
)
from asnet.variants import Variant


def context_boxes(
    variant: Variant, cfg: Config, heights: Tensor, widths: Tensor, gt: Tensor, train: bool, gen: torch.Generator
) -> Tensor:
    """Boxes of the context (first) stream. -> (B, 4)"""
    if variant.context == "conventional":
        if train:
            return multiscale_corner_boxes(heights, widths, cfg.input.scales, gen)
        return centre_crop_boxes(heights, widths)
    if variant.context == "full":
        return full_frame_boxes(heights, widths)
    if variant.context == "center":
        return centre_crop_boxes(heights, widths)
    if variant.context == "oracle":
        if torch.isnan(gt).any():
            raise ValueError("variant probe_oracle needs ground-truth boxes (synthetic dataset only)")
        return oracle_boxes(gt, heights, widths, cfg.spa.min_side)
    raise ValueError(f"unknown context input {variant.context!r}")


def fixed_saliency_boxes(kind: str, cfg: Config, heights: Tensor, widths: Tensor, gen: torch.Generator) -> Tensor:
    """Non-learned saliency-stream boxes (Table 1's alternatives to SPA). -> (B, 4)

    center / tl / tr / bl / br: a square of SPA's initial size at that place; random: that
    square at a random position; corner: that square at a random one of the 5 positions
    (TSN's corner cropping); multiscale: Hara et al.'s multi-scale corner crop of the short
    side; full: the whole frame. The random kinds stay random at test time (seeded), so the
    saliency stream sees the same kind of input in training and test.
    """
    side = torch.full(heights.shape, float(cfg.spa.init_box))
    h, w = heights.float(), widths.float()
    if kind == "center":
        return square_at("c", side, h, w)
    if kind in ("tl", "tr", "bl", "br"):
        return square_at(kind, side, h, w)
    if kind == "random":
        return random_boxes(heights, widths, cfg.spa.init_box, gen)
    if kind == "corner":
        pos = torch.randint(len(CORNERS), heights.shape, generator=gen)
        return torch.cat([square_at(CORNERS[int(p)], side[i : i + 1], h[i : i + 1], w[i : i + 1]) for i, p in enumerate(pos)])
    if kind == "multiscale":
        return multiscale_corner_boxes(heights, widths, cfg.input.scales, gen)
    if kind == "full":
        return full_frame_boxes(heights, widths)
    raise ValueError(f"unknown saliency input {kind!r}")


def clip_to_frame(boxes: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
    """The part of each box that lies inside its frame (what the crop really shows). -> (B, 4)"""
    h, w = heights.float(), widths.float()
    x0 = torch.minimum(boxes[:, 0].clamp(min=0), w)
    y0 = torch.minimum(boxes[:, 1].clamp(min=0), h)
    x1 = torch.minimum(boxes[:, 2], w).clamp(min=0)
    y1 = torch.minimum(boxes[:, 3], h).clamp(min=0)
    return torch.stack([x0, y0, torch.maximum(x1, x0), torch.maximum(y1, y0)], dim=1)
