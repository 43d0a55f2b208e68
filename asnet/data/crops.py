"""Crop geometry: every stream input is "a box on the stored frame, resized to size x size".

Boxes are float tensors (B, 4) = (x0, y0, x1, y1) in stored-frame pixels, x1/y1 exclusive.
Conventional cropping (Hara et al.'s multi-scale corner crop in training, centre crop at
test), fixed boxes (centre, corners, random, full frame) and SPA's boxes all go through
`crop_resize`, so the two streams see pixels produced by one piece of code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from asnet.hara import Normalisation

CORNERS = ("c", "tl", "tr", "bl", "br")


def square_at(pos: str, side: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """Square boxes of `side` placed at `pos` (c, tl, tr, bl, br) inside frames (H, W). -> (B, 4)"""
    side = torch.minimum(side, torch.minimum(height, width))
    if pos == "c":
        x0, y0 = (width - side) / 2, (height - side) / 2
    elif pos == "tl":
        x0, y0 = torch.zeros_like(side), torch.zeros_like(side)
    elif pos == "tr":
        x0, y0 = width - side, torch.zeros_like(side)
    elif pos == "bl":
        x0, y0 = torch.zeros_like(side), height - side
    elif pos == "br":
        x0, y0 = width - side, height - side
    else:
        raise ValueError(f"unknown corner {pos!r}; use one of {CORNERS}")
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def centre_crop_boxes(height: Tensor, width: Tensor) -> Tensor:
    """Test-time context crop: the centred square of the short side (Hara et al.). -> (B, 4)"""
    side = torch.minimum(height, width).float()
    return square_at("c", side, height.float(), width.float())


def full_frame_boxes(height: Tensor, width: Tensor) -> Tensor:
    """The whole frame (resized anisotropically to a square). -> (B, 4)"""
    zeros = torch.zeros_like(height, dtype=torch.float32)
    return torch.stack([zeros, zeros, width.float(), height.float()], dim=1)


def multiscale_corner_boxes(
    height: Tensor, width: Tensor, scales: tuple[float, ...], generator: torch.Generator
) -> Tensor:
    """Training context crop: square of side scale*short_side at one of 5 positions. -> (B, 4)

    Scale and position are drawn per sample from `generator` (Hara et al.'s
    MultiScaleCornerCrop, the TSN-style augmentation the paper names).
    """
    n = height.shape[0]
    short = torch.minimum(height, width).float()
    scale_idx = torch.randint(len(scales), (n,), generator=generator)
    pos_idx = torch.randint(len(CORNERS), (n,), generator=generator)
    side = short * torch.tensor(scales, dtype=torch.float32)[scale_idx]
    boxes = torch.empty(n, 4)
    for i in range(n):
        boxes[i] = square_at(CORNERS[int(pos_idx[i])], side[i : i + 1], height[i : i + 1].float(), width[i : i + 1].float())[0]
    return boxes


def random_boxes(height: Tensor, width: Tensor, side: float, generator: torch.Generator) -> Tensor:
    """Square boxes of fixed `side` at uniformly random positions inside the frame. -> (B, 4)"""
    h, w = height.float(), width.float()
    s = torch.minimum(torch.full_like(h, float(side)), torch.minimum(h, w))
    x0 = torch.rand(h.shape, generator=generator) * (w - s)
    y0 = torch.rand(h.shape, generator=generator) * (h - s)
    return torch.stack([x0, y0, x0 + s, y0 + s], dim=1)


def oracle_boxes(gt: Tensor, height: Tensor, width: Tensor, min_side: float) -> Tensor:
    """Square box around a ground-truth box (the actor over the clip), inside the frame. -> (B, 4)

    Side = max(gt width, gt height, min_side), centred on the gt box, shifted to lie
    inside the frame. Used for the synthetic oracle probe only.
    """
    h, w = height.float(), width.float()
    cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
    side = torch.maximum(torch.maximum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]), torch.full_like(h, min_side))
    side = torch.minimum(side, torch.minimum(h, w))
    x0 = torch.clamp(cx - side / 2, min=torch.zeros_like(w), max=w - side)
    y0 = torch.clamp(cy - side / 2, min=torch.zeros_like(h), max=h - side)
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Elementwise IoU of two (B, 4) box tensors. -> (B,)"""
    ix = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area = lambda t: (t[:, 2] - t[:, 0]).clamp(min=0) * (t[:, 3] - t[:, 1]).clamp(min=0)  # noqa: E731
    union = area(a) + area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-9), torch.zeros_like(union))


def pixel_window(box: Tensor | list[float], height: int, width: int) -> tuple[int, int, int, int]:
    """Integer window (x0, y0, x1, y1) of a box clipped to the frame, at least 1x1 pixel."""
    x0 = int(min(max(round(float(box[0])), 0), width - 1))
    y0 = int(min(max(round(float(box[1])), 0), height - 1))
    x1 = int(min(max(round(float(box[2])), x0 + 1), width))
    y1 = int(min(max(round(float(box[3])), y0 + 1), height))
    return x0, y0, x1, y1


def crop_resize(
    clips: Tensor,
    boxes: Tensor,
    size: int,
    norm: Normalisation,
    heights: Tensor,
    widths: Tensor,
    flip: Tensor | None = None,
) -> Tensor:
    """Cut `boxes` out of uint8 clips, resize to size x size, normalise (`norm`: the run's
    Config.normalisation()), optionally h-flip.

    clips: uint8 (B, T, Hpad, Wpad, 3), padded on the right/bottom; heights/widths: (B,)
    true frame sizes (boxes are clipped to them, so an out-of-frame box crops its
    in-frame part). Returns float (B, 3, T, size, size).

    The resize runs on uint8 (antialiased when shrinking): 4-5x faster than on floats on
    CPU, and the crop, not the read, is what limits the loader (benchmarks/loader.py).
    The result differs from a float resize by the rounding to whole grey levels.
    """
    n, t = clips.shape[0], clips.shape[1]
    out = torch.empty((n, t, 3, size, size), dtype=torch.uint8, device=clips.device)
    hs, ws = heights.tolist(), widths.tolist()
    flips = [False] * n if flip is None else [bool(f) for f in flip.tolist()]
    for i, box in enumerate(boxes.tolist()):
        x0, y0, x1, y1 = pixel_window(box, int(hs[i]), int(ws[i]))
        patch = clips[i, :, y0:y1, x0:x1, :].permute(0, 3, 1, 2)  # uint8 (T, 3, h, w), channels-last strides
        if patch.shape[-2:] != (size, size):
            antialias = patch.shape[-1] > size or patch.shape[-2] > size
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
        if flips[i]:
            # Mirroring the uint8 patch gives the same floats as mirroring after the (per-channel)
            # normalisation, at a quarter of the bytes; the float x[flip] = x[flip].flip(-1) it
            # replaces (gather, flip, scatter) cost ~2x the resize itself at 64 frames.
            patch = patch.flip(-1)
        out[i] = patch
    # (p / 255 * v - m) / s == (p - m * 255 / v) / (s * 255 / v): one affine map of the uint8 pixels.
    to_pixels = 255.0 / norm.value_scale
    m = torch.tensor(norm.mean, dtype=torch.float32, device=clips.device).view(1, 1, 3, 1, 1) * to_pixels
    s = torch.tensor(norm.std, dtype=torch.float32, device=clips.device).view(1, 1, 3, 1, 1) * to_pixels
    x = out.float().sub_(m).div_(s)  # (B, T, 3, S, S); in place: same values as (x - m) / s, no temporaries
    return x.permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S)
