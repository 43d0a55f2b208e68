"""Crop geometry: every stream input is "a box on the stored frame, resized to size x size".

Boxes are float tensors (B, 4) = (x0, y0, x1, y1) in stored-frame pixels, x1/y1 exclusive.
Conventional cropping (Hara et al.'s multi-scale corner crop in training, centre crop at
test), fixed boxes (centre, corners, random, full frame) and SPA's boxes all go through
`Frames.crop` (`crop_resize`), on whatever device holds the frames, so the two streams see
pixels produced by one piece of code. Its arithmetic is chosen per device
(`default_crop_method`): on a GPU one batched matrix product per axis that reads nothing on
the host; on the CPU each box's window resized by torch's uint8 kernel (`crop_resize_uint8`,
also the DataLoader workers' crop), 4-50x faster there (benchmarks/crops.py). They agree to the rounding to whole
grey levels (at most 1).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def corner_boxes(pos_idx: Tensor, side: Tensor, height: Tensor, width: Tensor) -> Tensor:
    """Square boxes of `side` at CORNERS[pos_idx] (per sample) inside frames (H, W). -> (B, 4)

    Elementwise the arithmetic of `square_at`, selected per sample, so no value is read on the host."""
    side = torch.minimum(side, torch.minimum(height, width))
    zeros = torch.zeros_like(side)
    x0s = torch.stack([(width - side) / 2, zeros, width - side, zeros, width - side])  # (5, B) in CORNERS order
    y0s = torch.stack([(height - side) / 2, zeros, zeros, height - side, height - side])
    idx = pos_idx.to(side.device).long()[None]
    x0, y0 = x0s.gather(0, idx)[0], y0s.gather(0, idx)[0]
    return torch.stack([x0, y0, x0 + side, y0 + side], dim=1)


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
    return corner_boxes(pos_idx, side, height.float(), width.float())


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
    """Elementwise IoU of two (B, 4) box tensors (on `a`'s device). -> (B,)"""
    b = b.to(a.device)
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


def pixel_windows(boxes: Tensor, heights: Tensor, widths: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """`pixel_window` of every box, as tensors on the boxes' device (no host reads). -> 4 x (B,)"""
    h, w = heights.to(boxes.device, torch.float32), widths.to(boxes.device, torch.float32)
    r = torch.round(boxes.float())  # half to even, as Python's round
    x0 = torch.minimum(r[:, 0].clamp(min=0), w - 1)
    y0 = torch.minimum(r[:, 1].clamp(min=0), h - 1)
    x1 = torch.minimum(torch.maximum(r[:, 2], x0 + 1), w)
    y1 = torch.minimum(torch.maximum(r[:, 3], y0 + 1), h)
    return x0, y0, x1, y1


def resample_weights(start: Tensor, length: Tensor, size: int, antialias: Tensor, n: int) -> Tensor:
    """Rows that resize the window [start, start + length) of an axis of `n` pixels to `size`
    pixels, as F.interpolate(mode="bilinear", align_corners=False, antialias) does. -> (B, size, n)

    start, length: (B,) whole pixels; antialias: (B,) bool. Shrinking with antialias is a
    triangle filter `scale` pixels wide (torch's _upsample_bilinear2d_aa); otherwise the
    two-tap bilinear weights. Zero outside the window, so a matrix product crops and resizes
    at once, for every box of the batch, with no window size read on the host.
    """
    dev = start.device
    length = length.to(torch.float64)[:, None]  # (B, 1)
    scale = length / size
    i = torch.arange(size, device=dev, dtype=torch.float64)[None]  # (1, S) output pixel
    rel = torch.arange(n, device=dev, dtype=torch.float64)[None, None] - start.to(torch.float64)[:, None, None]
    inside = (rel >= 0) & (rel < length[:, :, None])  # (B, 1, n)
    shrink = antialias[:, None] & (scale >= 1)
    support = torch.where(shrink, scale, torch.ones_like(scale))
    inv = torch.where(shrink, 1 / scale, torch.ones_like(scale))
    centre = scale * (i + 0.5)  # (B, S)
    lo = torch.clamp(torch.trunc(centre - support + 0.5), min=0)
    hi = torch.minimum(torch.trunc(centre + support + 0.5), length)
    tri = torch.clamp(1 - ((rel - centre[..., None] + 0.5) * inv[..., None]).abs(), min=0)
    tri = torch.where((rel >= lo[..., None]) & (rel < hi[..., None]), tri, 0.0)
    src = torch.clamp(scale * (i + 0.5) - 0.5, min=0)
    i0 = torch.floor(src)
    frac = (src - i0)[..., None]
    i1 = torch.minimum(i0 + 1, length - 1)
    two_tap = torch.where(rel == i0[..., None], 1 - frac, 0.0) + torch.where(rel == i1[..., None], frac, 0.0)
    w = torch.where(antialias[:, None, None], tri, two_tap)
    w = torch.where(inside, w, 0.0)
    return w / w.sum(-1, keepdim=True)  # (B, S, n)


def resample_dtype(device: torch.device) -> torch.dtype:
    """Arithmetic of the crop's matrix products: fp16 on CUDA (whole grey levels are exact in
    fp16, tensor cores do the products, error < 0.2 grey levels), fp32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


CROP_METHODS = ("window", "matrix")


def default_crop_method(device: torch.device) -> str:
    """How crops are computed on `device`: "matrix" (batched products, no host reads) on an
    accelerator, where a host read of a box would make the GPU wait; "window" (each box's
    pixel window, torch's uint8 resize kernel) on the CPU, where nothing waits and that
    kernel is 4x (default preset) to 50x (paper sizes) faster there (benchmarks/crops.py). The
    two differ by the rounding to whole grey levels."""
    return "window" if device.type == "cpu" else "matrix"


@dataclass(frozen=True)
class Frames:
    """A batch of stored clips on one device, ready to be cropped many times (SPA crops each
    clip T + 3 times per training step: the frames cross to the device once, as uint8).

    method "matrix": pixels (B, T, 3, H, W) grey levels in `resample_dtype`; "window": the
    uint8 clips (B, T, H, W, 3) as stored. heights / widths: (B,) float32 true frame sizes on
    the same device (clips are padded right / bottom to H, W).
    """

    pixels: Tensor
    heights: Tensor
    widths: Tensor
    method: str = "matrix"

    @classmethod
    def of(cls, clips: Tensor, heights: Tensor, widths: Tensor, device: torch.device | str | None = None,
           method: str | None = None) -> Frames:
        """uint8 clips (B, T, H, W, 3) (pinned memory makes the copy asynchronous) on `device`
        (default: the clips' own), cropped by `method` (default: `default_crop_method`)."""
        dev = torch.device(device) if device is not None else clips.device
        method = method or default_crop_method(dev)
        if method not in CROP_METHODS:
            raise ValueError(f"unknown crop method {method!r}; use one of {CROP_METHODS}")
        x = clips.to(dev, non_blocking=True)
        if method == "matrix":
            x = x.permute(0, 1, 4, 2, 3).to(resample_dtype(dev))  # (B, T, 3, H, W), one conversion
        return cls(x, heights.to(dev, torch.float32, non_blocking=True),
                   widths.to(dev, torch.float32, non_blocking=True), method)

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def every(self, stride: int) -> Frames:
        """Every `stride`-th frame of each clip (spa.state_stride)."""
        return Frames(self.pixels[:, ::stride], self.heights, self.widths, self.method)

    def crop(self, boxes: Tensor, size: int, norm: Normalisation, flip: Tensor | None = None) -> Tensor:
        """Cut `boxes` (B, 4) (clipped to each frame), resize to size x size (bilinear,
        antialiased when shrinking either side), optionally mirror, normalise (`norm`).
        -> float32 (B, 3, T, size, size) on the frames' device."""
        if self.method == "window":
            return _normalise_(crop_resize_uint8(self.pixels, boxes, size, self.heights, self.widths, flip).float(),
                               norm)
        b, t, c, hp, wp = self.pixels.shape
        x0, y0, x1, y1 = pixel_windows(boxes.to(self.device), self.heights, self.widths)
        aa = ((x1 - x0) > size) | ((y1 - y0) > size)  # F.interpolate's antialias flag of crop_resize_uint8
        dtype = self.pixels.dtype
        wx = resample_weights(x0, x1 - x0, size, aa, wp)  # (B, S, W)
        if flip is not None:
            # Mirroring the output is reversing the order of its columns' weights: no extra pass.
            wx = torch.where(flip.to(self.device).bool()[:, None, None], wx.flip(1), wx)
        wy = resample_weights(y0, y1 - y0, size, aa, hp).to(dtype)  # (B, S, H)
        cols = torch.matmul(self.pixels.reshape(b, t * c * hp, wp), wx.to(dtype).transpose(1, 2))  # (B, T*3*H, S)
        out = torch.matmul(wy[:, None], cols.reshape(b, t * c, hp, size))  # (B, T*3, S, S)
        out = out.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S)
        return _normalise_(out.float() if out.dtype != torch.float32 else out, norm)


def normalise(pixels: Tensor, norm: Normalisation) -> Tensor:
    """Grey levels (B, 3, T, S, S), any dtype -> a new float32 network input under `norm`."""
    return _normalise_(pixels.float() if pixels.dtype != torch.float32 else pixels.clone(), norm)


_AFFINE: dict[tuple[Normalisation, str, int], tuple[Tensor, Tensor]] = {}


def _normalise_(x: Tensor, norm: Normalisation) -> Tensor:
    """Normalise float32 grey levels (B, 3, ...) in place: no temporaries of the batch's size."""
    fake = torch._subclasses.fake_tensor.is_fake(x)  # asnet.plan's fake step: no real tensor to cache
    key = (norm, str(x.device), x.dim())
    pair = None if fake else _AFFINE.get(key)
    if pair is None:
        # (p / 255 * v - m) / s == (p - m * 255 / v) / (s * 255 / v): one affine map of the pixels.
        to_pixels = 255.0 / norm.value_scale
        shape = (1, 3) + (1,) * (x.dim() - 2)
        m = torch.tensor(norm.mean, dtype=torch.float32).view(shape) * to_pixels
        s = torch.tensor(norm.std, dtype=torch.float32).view(shape) * to_pixels
        pair = (m.to(x.device, non_blocking=True), s.to(x.device, non_blocking=True))
        if not fake:
            _AFFINE[key] = pair  # one copy per device: not two small host-to-device copies per crop
    return x.sub_(pair[0]).div_(pair[1])


def crop_resize(
    clips: Tensor,
    boxes: Tensor,
    size: int,
    norm: Normalisation,
    heights: Tensor,
    widths: Tensor,
    flip: Tensor | None = None,
    method: str | None = None,
) -> Tensor:
    """`Frames.crop` of uint8 clips (B, T, Hpad, Wpad, 3) on their own device, for a caller
    that crops a batch once. heights/widths: (B,) true frame sizes. -> float (B, 3, T, S, S)"""
    return Frames.of(clips, heights, widths, method=method).crop(boxes, size, norm, flip)


def crop_resize_uint8(
    clips: Tensor, boxes: Tensor, size: int, heights: Tensor, widths: Tensor, flip: Tensor | None = None
) -> Tensor:
    """The DataLoader workers' crop: `boxes` of uint8 clips (B, T, Hpad, Wpad, 3), resized by
    torch's uint8 bilinear kernel (antialiased when shrinking), optionally mirrored.
    -> uint8 (B, 3, T, size, size), normalised later on the device (`normalise`).

    On the CPU the uint8 kernel is 4-50x faster than the matrix products (benchmarks/crops.py), and a
    worker's crop is what limits the loader (benchmarks/loader.py). It differs from
    `Frames.crop` by the rounding to whole grey levels (at most 1, 0.27 on average).
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
            patch = patch.flip(-1)  # mirroring uint8 is a quarter of the bytes of mirroring the floats
        out[i] = patch
    return out.permute(0, 2, 1, 3, 4)  # (B, 3, T, S, S)
