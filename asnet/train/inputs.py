"""Stream inputs for a batch: which box each stream sees, in training and at test.

One function per question so that training, validation and evaluation cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from asnet.config import Config
from asnet.data.crops import (
    CORNERS,
    centre_crop_boxes,
    corner_boxes,
    crop_resize_uint8,
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
        return corner_boxes(pos, side, h, w)
    if kind == "multiscale":
        return multiscale_corner_boxes(heights, widths, cfg.input.scales, gen)
    if kind == "full":
        return full_frame_boxes(heights, widths)
    raise ValueError(f"unknown saliency input {kind!r}")


def clip_to_frame(boxes: Tensor, heights: Tensor, widths: Tensor) -> Tensor:
    """The part of each box that lies inside its frame (what the crop really shows). -> (B, 4)"""
    h, w = heights.to(boxes.device, torch.float32), widths.to(boxes.device, torch.float32)
    x0 = torch.minimum(boxes[:, 0].clamp(min=0), w)
    y0 = torch.minimum(boxes[:, 1].clamp(min=0), h)
    x1 = torch.minimum(boxes[:, 2], w).clamp(min=0)
    y1 = torch.minimum(boxes[:, 3], h).clamp(min=0)
    return torch.stack([x0, y0, torch.maximum(x1, x0), torch.maximum(y1, y0)], dim=1)


@dataclass(frozen=True)
class WorkerCrops:
    """A training clip's stream inputs cut where the clip is loaded (``train.crop_in_workers``).

    ``ClipDataset`` calls it per item in a DataLoader worker with a SeedSequence of (seed,
    epoch, index): the flip, the context box and a fixed saliency box are drawn in that
    order, as ``stream_inputs`` draws them per batch, but from the clip's own stream, so
    they do not depend on the batch, the worker count or SPA's use of the batch generator.
    The item gains ``flip`` and ``x_ctx`` (and ``x_sal``): uint8 (3, T, S, S) crops, normalised
    on the device by ``stream_inputs``, and loses its full clip. For SPA variants the clip
    goes to the device anyway (SPA crops it there), so the item keeps it and gains the
    context box ``ctx_box`` (4,) instead of its crop: the device cuts it from the frames it
    already holds, and no crop crosses besides the clip.
    """

    variant: Variant
    cfg: Config

    @classmethod
    def of(cls, variant: Variant, cfg: Config) -> WorkerCrops:
        """The crops of `variant` under `cfg` (its input size, scales and flip)."""
        return cls(variant, cfg)

    def __call__(self, item: dict[str, Any], seeds: np.random.SeedSequence) -> dict[str, Any]:
        """`item` with its stream inputs (see the class)."""
        gen = torch.Generator().manual_seed(int(seeds.generate_state(1, np.uint64)[0] >> 1))
        inp = self.cfg.input
        clip, hs, ws = item["clip"][None], torch.tensor([item["height"]]), torch.tensor([item["width"]])
        flip = (torch.rand(1, generator=gen) < 0.5) if inp.flip else torch.zeros(1, dtype=torch.bool)
        ctx = context_boxes(self.variant, self.cfg, hs, ws, item["gt"][None], True, gen)
        saliency = self.variant.saliency
        if saliency == "spa":
            return dict(item, flip=flip[0], ctx_box=ctx[0])
        out = dict(item, flip=flip[0], x_ctx=crop_resize_uint8(clip, ctx, inp.size, hs, ws, flip)[0])
        if saliency is not None:
            sal = fixed_saliency_boxes(saliency, self.cfg, hs, ws, gen)
            out["x_sal"] = crop_resize_uint8(clip, sal, inp.size, hs, ws, flip)[0]
        del out["clip"]  # nothing else needs the full frames: do not ship them to the main process
        return out
