#!/usr/bin/env python
"""Training-clip loading throughput per core for several stored formats, on the same videos.

The script

1. generates ``--videos`` UCF-101-like source videos (320x240, 25 fps, ``--seconds`` long,
   mpeg4/AVI like UCF's xvid files) with textured, moving content (a panned multi-scale
   noise texture with hard edges, a moving textured "actor" and sensor noise), so that JPEG
   and codec sizes are in a realistic range;
2. prepares every stored format from them (see ``FORMATS``):

   npy        the package's store: ``asnet.data.frames.extract_videos`` at ``--short-side``
              (uint8 (T, H, W, 3) .npy, read by ``asnet.data.clips.ClipDataset`` with mmap)
   npy_u8crop the same .npy read, cropped by ``crop_resize_u8`` below: the variant of
              ``crop_resize`` that the package has since adopted (so now ~ ``npy``); kept as a
              reference implementation, it was the PROPOSED variant of
              ``crop_resize`` that resizes the uint8 patch (torch's uint8 bilinear+antialias
              kernel) and normalises after the resize; output within 1/255 of ``crop_resize``
   npy_small  the same store at a smaller short side ``--small-side`` (default 160)
   jpeg_pack  the package's JPEG store (``frames.format: jpeg``): ``extract_videos(fmt="jpeg")``
              at ``--short-side``, JPEG frames (libjpeg-turbo via simplejpeg, quality
              ``frames.jpeg_quality``) packed one file per video, read by ``ClipDataset``
              (the clip's byte span, only its frames decoded) + ``crop_resize`` of the item's
              clip, as ``asnet.train.inputs.WorkerCrops`` does in a worker (no collate of the
              full frames, which ``train.crop_in_workers`` avoids)
   jpeg_pack_v1  (only when named in ``--formats``) the same packs rewritten in jpgpack format
              version 1, which has no per-frame CRC-32: what checking the checksums costs
   jpeg       baseline, Hara et al.'s 3D-ResNets style: a folder of ``image_%05d.jpg`` per
              video at the native 320x240, loaded with PIL and cropped/resized/flipped per
              frame with PIL (``MultiScaleCornerCrop`` + ``ToTensor`` + ``Normalize``)
   mjpeg      intra-only MJPEG .avi at ``--short-side``, decoded with decord
   mpeg4_g8   mpeg4 part 2 .avi, GOP 8, no B-frames, at ``--short-side``, decord
   h264_g8    H.264 .mp4 (x264 crf 23), GOP 8, at ``--short-side``, decord
   h264_long  H.264 .mp4 (x264 crf 23), default long GOP (250), at ``--short-side``, decord
   src_avi    the generated source AVIs themselves (mpeg4, GOP 12), decord, native size

3. measures clips/s in this single process (one torch thread, ``num_threads=1`` decord,
   i.e. per core) for 16- and 64-frame training clips through the full training-time
   pipeline: random temporal offset (``asnet.data.clips.clip_indices`` / ``ClipDataset``),
   multi-scale corner crop (``asnet.data.crops.multiscale_corner_boxes``), random h-flip and
   resize to 112x112 with normalisation, producing a float (3, T, 112, 112) tensor. All
   formats except ``jpeg`` crop with the package's ``crop_resize``.

Every format sees the same clips (video, offset, crop box, flip). The formats and clip
lengths are run interleaved in rotated order ``--repeats`` times and the median over the
repeats is reported, with the ratio to the ``jpeg`` baseline measured in the same run (the
machine may be shared). The time is also split into "read" (frames to a uint8 array:
``ClipDataset.__getitem__`` for the package's stores) and "crop" (box + crop + resize + flip +
normalise: ``WorkerCrops`` in a worker, or ``asnet.train.loop.stream_inputs`` in the training
process without ``train.crop_in_workers``).

``--loader-workers 1 2 4`` then measures the clips/s a DataLoader delivers to the training
step with that many worker processes, for the package formats (npy, jpeg_pack) and 16-frame
clips, two ways: ``workers`` = read + crop in the workers (``train.crop_in_workers: true``,
``asnet.train.inputs.WorkerCrops``), ``main`` = read in the workers, crop in the consuming
process (``crop_in_workers: false``). Worker start-up is excluded (the first batch is
waited for before the clock starts). On a machine with fewer cores than workers the extra
workers only share them.

``--smoke`` runs every format at toy sizes in seconds (what the test runs).

``--cold`` evicts each clip's files from the page cache (``posix_fadvise(DONTNEED)`` on the
benchmark's own files only, outside the timed region) before reading it, which models a
dataset larger than RAM (the S=256 .npy store of UCF-101 is ~0.6 TB).

Example (what README_loader.md reports):

  python benchmarks/loader.py --videos 8 --seconds 7 --clips 24 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image

from asnet.data.clips import ClipDataset, clip_indices, pad_collate
from asnet.data.crops import crop_resize, multiscale_corner_boxes, pixel_window
from asnet.data.frames import decode_video, extract_videos
from asnet.data.store import DEFAULT_JPEG_QUALITY, open_video, rewrite_jpeg_pack, store_path
from asnet.hara import Normalisation

FPS = 25
SRC_W, SRC_H = 320, 240
SIZE = 112
# Paper preset (config/presets/paper.yaml): Hara et al.'s scales 2^(-k/4) and the mean/std.
SCALES = (1.0, 0.84089642, 0.70710678, 0.59460356)
MEAN = (0.4345, 0.4051, 0.3775)
STD = (0.2768, 0.2713, 0.2737)
CLIP_LENS = (16, 64)
QP2LAMBDA = 118  # ffmpeg's FF_QP2LAMBDA: -q:v N == global_quality N * 118 with flags +qscale

# name -> (kind, description). Video formats: codec, extension, pix_fmt, gop, options.
VIDEO_CODECS: dict[str, tuple[str, str, str, int, dict[str, str]]] = {
    "mjpeg": ("mjpeg", "avi", "yuvj420p", 1, {"flags": "+qscale", "global_quality": str(3 * QP2LAMBDA)}),
    "mpeg4_g8": (
        "mpeg4",
        "avi",
        "yuv420p",
        8,
        {"flags": "+qscale", "global_quality": str(4 * QP2LAMBDA), "bf": "0"},
    ),
    "h264_g8": ("libx264", "mp4", "yuv420p", 8, {"crf": "23", "preset": "fast"}),
    "h264_long": ("libx264", "mp4", "yuv420p", 250, {"crf": "23", "preset": "fast"}),
}
FORMATS = (
    "npy", "npy_u8crop", "npy_small", "jpeg_pack", "jpeg", "mjpeg", "mpeg4_g8", "h264_g8", "h264_long", "src_avi"
)
OPTIONAL_FORMATS = ("jpeg_pack_v1",)  # timed only when --formats names them
WORKER_FORMATS = ("npy", "jpeg_pack")  # the package's stores, timed through a DataLoader
BASELINE = "jpeg"


# --------------------------------------------------------------------------------------
# Synthetic UCF-like source videos
# --------------------------------------------------------------------------------------


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Multi-scale colour noise with some hard-edged rectangles and stripes, float (h, w, 3) in 0..255."""
    tex = np.zeros((h, w, 3), np.float32)
    for cell, amp in ((64, 90.0), (16, 50.0), (4, 30.0), (1, 12.0)):
        small = rng.random((max(2, h // cell), max(2, w // cell), 3)).astype(np.float32)
        img = Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
        tex += (np.asarray(img, np.float32) / 255.0 - 0.5) * amp
    tex += 110.0
    for _ in range(25):
        y0, x0 = int(rng.integers(0, h - 20)), int(rng.integers(0, w - 20))
        hh, ww = int(rng.integers(8, 80)), int(rng.integers(8, 80))
        tex[y0 : y0 + hh, x0 : x0 + ww] = rng.random(3) * 255
    for _ in range(6):  # thin stripes: high-frequency detail like text, fences, clothing
        x0 = int(rng.integers(0, w - 60))
        y0 = int(rng.integers(0, h - 60))
        tex[y0 : y0 + 60, x0 : x0 + 60 : 3] = 20.0
    return tex


def synth_frames(seed: int, n_frames: int) -> np.ndarray:
    """uint8 (T, 240, 320, 3): panned background texture, a moving textured blob, sensor noise."""
    rng = np.random.default_rng(seed)
    bg = _texture(rng, 2 * SRC_H, 2 * SRC_W)
    actor = _texture(rng, 96, 64)
    yy, xx = np.mgrid[0:96, 0:64]
    mask = (((yy - 48) / 48.0) ** 2 + ((xx - 32) / 32.0) ** 2 <= 1.0)[..., None]
    v = rng.uniform(-2.0, 2.0, 2)
    phase = rng.uniform(0, 2 * np.pi)
    out = np.empty((n_frames, SRC_H, SRC_W, 3), np.uint8)
    for t in range(n_frames):
        cy = int(SRC_H / 2 + v[0] * t + 20 * np.sin(0.05 * t + phase)) % SRC_H
        cx = int(SRC_W / 2 + v[1] * t + 30 * np.sin(0.03 * t)) % SRC_W
        frame = bg[cy : cy + SRC_H, cx : cx + SRC_W].copy()
        ay = int(70 + 50 * np.sin(0.11 * t + phase))
        ax = int(40 + (200 * (0.5 + 0.5 * np.sin(0.07 * t))))
        region = frame[ay : ay + 96, ax : ax + 64]
        np.copyto(
            region,
            actor[: region.shape[0], : region.shape[1]],
            where=mask[: region.shape[0], : region.shape[1]],
        )
        frame += rng.normal(0.0, 4.0, frame.shape).astype(np.float32)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def encode_video(
    frames: np.ndarray,
    path: Path,
    codec: str,
    pix_fmt: str,
    gop: int,
    options: dict[str, str],
    bit_rate: int = 0,
) -> None:
    """Encode uint8 RGB frames with PyAV at 25 fps."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS, options=dict(options))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = pix_fmt
        stream.codec_context.gop_size = gop
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        for frame in frames:
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# --------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------


@dataclass
class Format:
    """One stored format: how to read a clip and crop it, and which files it occupies."""

    name: str
    note: str
    read: Callable[[int, np.ndarray], Any]  # (video index, frame indices) -> raw clip
    crop: Callable[[Any, torch.Tensor, bool], torch.Tensor]  # (raw, box (4,), flip) -> (3, T, 112, 112)
    files: Callable[[int, np.ndarray], list[Path]]  # files a clip touches (for --cold)
    hw: tuple[int, int]  # stored (H, W)
    bytes_total: int = 0
    times: dict[str, dict[int, list[float]]] = field(default_factory=dict)


def _dir_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


def _package_crop(clip: torch.Tensor, box: torch.Tensor, flip: bool) -> torch.Tensor:
    """The training crop of the package: `crop_resize` on a batch of one (B=1, T, H, W, 3) uint8."""
    h, w = torch.tensor([clip.shape[1]]), torch.tensor([clip.shape[2]])
    return crop_resize(clip[None], box[None], SIZE, Normalisation("kinetics", 1.0, MEAN, STD), h, w, torch.tensor([flip]))[0]


def crop_resize_u8(
    clips: torch.Tensor,
    boxes: torch.Tensor,
    size: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    heights: torch.Tensor,
    widths: torch.Tensor,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Proposed drop-in for ``asnet.data.crops.crop_resize``: resize in uint8, normalise after.

    Same window (``pixel_window``), same bilinear/antialias resize, but the patch is resized
    as uint8 (T, 3, h, w) and only the size x size result is converted to float, instead of
    converting the whole crop to float first. Differences are rounding only (< 1/255).
    """
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    out = []
    for i in range(clips.shape[0]):
        x0, y0, x1, y1 = pixel_window(boxes[i], int(heights[i]), int(widths[i]))
        patch = clips[i, :, y0:y1, x0:x1, :].permute(0, 3, 1, 2)  # uint8 (T, 3, h, w), channels-last strides
        if patch.shape[-2:] != (size, size):
            antialias = patch.shape[-1] > size or patch.shape[-2] > size
            patch = F.interpolate(
                patch, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias
            )
        x = (patch.float() - m) / s
        if flip is not None and bool(flip[i]):
            x = x.flip(-1)
        out.append(x.permute(1, 0, 2, 3))
    return torch.stack(out)


def _u8_crop(clip: torch.Tensor, box: torch.Tensor, flip: bool) -> torch.Tensor:
    h, w = torch.tensor([clip.shape[1]]), torch.tensor([clip.shape[2]])
    return crop_resize_u8(clip[None], box[None], SIZE, MEAN, STD, h, w, torch.tensor([flip]))[0]


def _evict(paths: list[Path]) -> None:
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def prepare(
    args: argparse.Namespace, work: Path, formats: list[str]
) -> tuple[list[str], int, dict[str, Format]]:
    """Generate the sources and every requested stored format. Returns (videos, n_frames, formats)."""
    import decord

    n_frames = int(round(args.seconds * FPS))
    names = [f"v_Synth_g{i // 4 + 1:02d}_c{i % 4 + 1:02d}" for i in range(args.videos)]
    src_dir = work / "src"
    src_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for i, name in enumerate(names):
        path = src_dir / f"{name}.avi"
        if not path.exists():
            # UCF-101: xvid (mpeg4 part 2) AVI, 320x240, 25 fps, ~300-600 kbit/s
            encode_video(
                synth_frames(args.seed + i, n_frames), path, "mpeg4", "yuv420p", 12, {"bf": "0"}, 500_000
            )
    print(
        f"prepared {len(names)} source videos ({args.seconds:g} s) in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )

    manifest = pd.DataFrame({"video": names, "path": [f"{n}.avi" for n in names], "label": 0})
    out: dict[str, Format] = {}
    stores: dict[str, Path] = {}  # format -> frames_dir of the package's stores (for --loader-workers)
    needs_npy = any(f in formats for f in ("npy", "npy_u8crop", "mjpeg", "mpeg4_g8", "h264_g8", "h264_long"))

    def npy_format(name: str, side: int, fmt: str = "npy", version: int | None = None) -> Format:
        fdir = work / (f"npy{side}" if fmt == "npy" else f"{fmt}{side}q{args.store_quality}") / "frames"
        if version is not None:
            fdir = fdir.parent.with_name(f"{fdir.parent.name}v{version}") / "frames"
        extract_videos(
            manifest[["video", "path"]], src_dir, fdir, short_side=side, fps=FPS, workers=1, progress=False,
            fmt=fmt, quality=args.store_quality,
        )
        if version is not None:  # the same JPEG images in that container version
            for n in names:
                rewrite_jpeg_pack(store_path(fdir, n, fmt), version)
        ds = ClipDataset(manifest[["video", "label"]], fdir, clip_len=16, seed=args.seed)
        first = open_video(store_path(fdir, names[0], fmt))
        stores[name] = fdir

        def read(v: int, idx: np.ndarray) -> torch.Tensor:
            # ClipDataset.__getitem__ does the read; its offset sampler is pointed at the clip all
            # formats share (clip_frames is the dataset's one sampling hook). The item's clip is
            # cropped as it is, as WorkerCrops does in a worker (train.crop_in_workers): the full
            # frames are never collated there.
            ds.clip_len = len(idx)
            ds.clip_frames = lambda i, n, _idx=idx: _idx  # type: ignore[method-assign]
            return ds[v]["clip"]

        note = (f"package .npy store, S={side}, mmap" if fmt == "npy" else
                f"package JPEG store (.jpgpack{'' if version is None else f' v{version}'}, q{args.store_quality} "
                f"4:2:0, simplejpeg), S={side}")
        return Format(
            name,
            f"{note} (ClipDataset + crop_resize)",
            read,
            _package_crop,
            lambda v, idx: [store_path(fdir, names[v], fmt)],
            (int(first.shape[1]), int(first.shape[2])),
            _dir_bytes([store_path(fdir, n, fmt) for n in names]),
        )

    t0 = time.perf_counter()
    if needs_npy:
        out["npy"] = npy_format("npy", args.short_side)
        out["npy_u8crop"] = Format(
            **{
                **vars(out["npy"]),
                "name": "npy_u8crop",
                "crop": _u8_crop,
                "times": {},
                "note": f"package .npy store, S={args.short_side}; reference crop_resize_u8 (now adopted)",
            }
        )
    if "npy_small" in formats:
        out["npy_small"] = npy_format("npy_small", args.small_side)
    print(f"prepared npy in {time.perf_counter() - t0:.1f} s", flush=True)
    if "jpeg_pack" in formats:
        t0 = time.perf_counter()
        out["jpeg_pack"] = npy_format("jpeg_pack", args.short_side, "jpeg")
        print(f"prepared jpeg_pack in {time.perf_counter() - t0:.1f} s", flush=True)
    if "jpeg_pack_v1" in formats:
        out["jpeg_pack_v1"] = npy_format("jpeg_pack_v1", args.short_side, "jpeg", version=1)

    if "jpeg" in formats:
        t0 = time.perf_counter()
        jroot = work / "jpg"
        dirs = [jroot / n for n in names]
        for n, d in zip(names, dirs, strict=True):
            if not d.exists():
                tmp = d.with_name(d.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
                frames, _ = decode_video(src_dir / f"{n}.avi", min(SRC_H, SRC_W), FPS)  # native size
                for k, fr in enumerate(frames):
                    Image.fromarray(fr).save(tmp / f"image_{k + 1:05d}.jpg", quality=args.jpeg_quality)
                tmp.rename(d)
        with Image.open(dirs[0] / "image_00001.jpg") as im:
            jw, jh = im.size
        mean = torch.tensor(MEAN).view(3, 1, 1)
        std = torch.tensor(STD).view(3, 1, 1)

        def jpeg_read(v: int, idx: np.ndarray) -> list[Image.Image]:
            clip = []
            for j in idx:  # Hara et al.'s pil_loader: open, convert('RGB')
                with open(dirs[v] / f"image_{int(j) + 1:05d}.jpg", "rb") as fh, Image.open(fh) as img:
                    clip.append(img.convert("RGB"))
            return clip

        def jpeg_crop(clip: list[Image.Image], box: torch.Tensor, flip: bool) -> torch.Tensor:
            # Hara et al.'s spatial transform, per frame: crop, resize (bilinear), flip, ToTensor, Normalize.
            x0, y0, x1, y1 = pixel_window(box, jh, jw)
            out = []
            for img in clip:
                img = img.crop((x0, y0, x1, y1)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
                if flip:
                    img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                t = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float().div(255.0)
                out.append((t - mean) / std)
            return torch.stack(out, 0).permute(1, 0, 2, 3)

        out["jpeg"] = Format(
            "jpeg",
            f"JPEG folder (image_%05d.jpg, PIL q{args.jpeg_quality}, native {jw}x{jh}) + PIL per frame "
            "(3D-ResNets baseline)",
            jpeg_read,
            jpeg_crop,
            lambda v, idx: [dirs[v] / f"image_{int(j) + 1:05d}.jpg" for j in idx],
            (jh, jw),
            _dir_bytes(dirs),
        )
        print(f"prepared jpeg in {time.perf_counter() - t0:.1f} s", flush=True)

    def decord_format(name: str, paths: list[Path], note: str) -> Format:
        vr0 = decord.VideoReader(str(paths[0]), num_threads=1)
        h, w = vr0[0].shape[:2]
        del vr0

        def read(v: int, idx: np.ndarray) -> torch.Tensor:
            vr = decord.VideoReader(str(paths[v]), num_threads=1)  # a worker opens the file per item
            return torch.from_numpy(vr.get_batch(idx.tolist()).asnumpy())

        return Format(
            name, note, read, _package_crop, lambda v, idx: [paths[v]], (int(h), int(w)), _dir_bytes(paths)
        )

    for fmt in ("mjpeg", "mpeg4_g8", "h264_g8", "h264_long"):
        if fmt not in formats:
            continue
        t0 = time.perf_counter()
        codec, ext, pix_fmt, gop, options = VIDEO_CODECS[fmt]
        vdir = work / fmt
        vdir.mkdir(exist_ok=True)
        paths = [vdir / f"{n}.{ext}" for n in names]
        for n, p in zip(names, paths, strict=True):
            if not p.exists():
                arr = np.load(work / f"npy{args.short_side}" / "frames" / f"{n}.npy")
                arr = arr[:, : arr.shape[1] // 2 * 2, : arr.shape[2] // 2 * 2]  # 4:2:0 needs even sizes
                tmp = p.with_name("tmp_" + p.name)
                encode_video(arr, tmp, codec, pix_fmt, gop, options)
                tmp.rename(p)
        opts = " ".join(f"{k}={v}" for k, v in options.items())
        out[fmt] = decord_format(
            fmt, paths, f"{codec} .{ext}, GOP {gop}, {opts}, S={args.short_side}; decord get_batch"
        )
        print(f"prepared {fmt} in {time.perf_counter() - t0:.1f} s", flush=True)

    if "src_avi" in formats:
        out["src_avi"] = decord_format(
            "src_avi",
            [src_dir / f"{n}.avi" for n in names],
            "source mpeg4 AVI (GOP 12, 500 kbit/s, 320x240); decord get_batch",
        )
    missing = [f for f in formats if f not in out]
    if missing:
        raise SystemExit(f"formats not prepared: {missing}")
    args.stores = {f: stores[f] for f in WORKER_FORMATS if f in formats}
    return names, n_frames, {f: out[f] for f in formats}


# --------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------


@dataclass
class Clip:
    video: int
    idx: np.ndarray
    corner_seed: int  # seeds the (scale, corner) draw; the box is resolved per stored frame size
    flip: bool


def sample_clips(n: int, n_videos: int, n_frames: int, clip_len: int, seed: int) -> list[Clip]:
    """Same clips for every format: random video, random offset, crop scale/corner seed, flip."""
    rng = np.random.default_rng([seed, clip_len])
    clips = []
    for k in range(n):
        v = int(rng.integers(n_videos))
        idx = clip_indices(n_frames, clip_len, np.random.default_rng([seed, clip_len, k]))
        clips.append(Clip(v, idx, int(rng.integers(2**31)), bool(rng.random() < 0.5)))
    return clips


def clip_box(clip: Clip, hw: tuple[int, int]) -> torch.Tensor:
    """Multi-scale corner box for a frame size; same (scale, corner) draw for every format."""
    gen = torch.Generator().manual_seed(clip.corner_seed)
    return multiscale_corner_boxes(torch.tensor([hw[0]]), torch.tensor([hw[1]]), SCALES, gen)[0]


def run_one(fmt: Format, clips: list[Clip], cold: bool) -> tuple[float, float]:
    """Total (read, crop) seconds over ``clips``."""
    t_read = t_crop = 0.0
    for c in clips:
        if cold:
            _evict(fmt.files(c.video, c.idx))
        box = clip_box(c, fmt.hw)
        t0 = time.perf_counter()
        raw = fmt.read(c.video, c.idx)
        t1 = time.perf_counter()
        x = fmt.crop(raw, box, c.flip)
        t2 = time.perf_counter()
        if x.shape != (3, len(c.idx), SIZE, SIZE) or x.dtype != torch.float32:
            raise RuntimeError(f"{fmt.name}: bad output {tuple(x.shape)} {x.dtype}")
        t_read += t1 - t0
        t_crop += t2 - t1
    return t_read, t_crop


def worker_throughput(
    frames_dir: Path, names: list[str], clip_len: int, workers: int, crop_in_workers: bool, n_clips: int,
    batch: int, seed: int,
) -> float:
    """Clips/s a DataLoader over the package's ``ClipDataset`` delivers, crops made in its
    ``workers`` (``WorkerCrops``, the paper preset's multi-scale corner crop) or, as without
    ``train.crop_in_workers``, by ``crop_resize`` in this process after each batch."""
    from torch.utils.data import DataLoader

    from asnet.config import load_config, with_overrides
    from asnet.train.inputs import WorkerCrops
    from asnet.variants import get_variant

    cfg = with_overrides(load_config(overrides=["preset=paper"]), {"input.clip_len": clip_len})
    crops = WorkerCrops.of(get_variant("single"), cfg) if crop_in_workers else None
    reps = math.ceil((n_clips + batch) / len(names))
    m = pd.DataFrame({"video": names * reps, "label": 0})
    ds = ClipDataset(m, frames_dir, clip_len, seed=seed, crops=crops)
    gen = torch.Generator().manual_seed(seed)
    loader = DataLoader(ds, batch_size=batch, shuffle=True, generator=gen, num_workers=workers,
                        collate_fn=pad_collate, prefetch_factor=4)
    it = iter(loader)
    first = next(it)  # worker start-up and imports are not the steady state
    done, t0 = 0, time.perf_counter()
    for b in it:
        if "x_ctx" not in b:
            norm, flip = cfg.normalisation(), torch.rand(len(b["label"]), generator=gen) < 0.5
            boxes = multiscale_corner_boxes(b["height"], b["width"], cfg.input.scales, gen)
            crop_resize(b["clip"], boxes, cfg.input.size, norm, b["height"], b["width"], flip)
        done += len(b["label"])
        if done >= n_clips:
            break
    elapsed = time.perf_counter() - t0
    del it, first
    return done / elapsed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=8, help="number of generated source videos")
    p.add_argument("--seconds", type=float, default=7.0, help="length of each video (UCF-101 mean: ~7 s)")
    p.add_argument("--short-side", type=int, default=256, help="stored short side S of npy and codec formats")
    p.add_argument("--small-side", type=int, default=160, help="short side of the npy_small format")
    p.add_argument("--jpeg-quality", type=int, default=90, help="PIL JPEG quality of the baseline frames")
    p.add_argument("--clip-lens", type=int, nargs="+", default=list(CLIP_LENS), help="clip lengths to time")
    p.add_argument("--clips", type=int, default=24, help="clips per format, clip length and repeat")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds; the median is reported")
    p.add_argument(
        "--formats", default=",".join(FORMATS),
        help=f"comma-separated subset of {','.join(FORMATS + OPTIONAL_FORMATS)}"
    )
    p.add_argument(
        "--cold", action="store_true", help="evict each clip's files from the page cache before reading"
    )
    p.add_argument("--target", type=float, default=100.0, help="clips/s (first clip length) the GPU consumes")
    p.add_argument("--workdir", type=Path, default=None, help="keep generated data here (reused if present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument(
        "--store-quality", type=int, default=DEFAULT_JPEG_QUALITY, help="JPEG quality of the jpeg_pack store"
    )
    p.add_argument(
        "--loader-workers", type=int, nargs="*", default=[], help="DataLoader worker counts to time (e.g. 1 2 4)"
    )
    p.add_argument("--loader-clips", type=int, default=192, help="16f clips timed per --loader-workers case")
    p.add_argument("--smoke", action="store_true", help="toy sizes, every format, 1 and 2 workers: seconds")
    args = p.parse_args(argv)
    if args.smoke:
        args.videos, args.seconds, args.short_side, args.small_side = 2, 1.0, 64, 48
        args.clips, args.repeats, args.loader_workers, args.loader_clips = 2, 1, [1, 2], 8
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS + OPTIONAL_FORMATS))
    if unknown:
        raise SystemExit(f"unknown formats {unknown}; choose from {FORMATS + OPTIONAL_FORMATS}")
    torch.set_num_threads(1)  # per core, like a DataLoader worker
    tmp = None
    if args.workdir is None:
        tmp = tempfile.mkdtemp(prefix="asnet_loader_bench_")
        work = Path(tmp)
    else:
        work = args.workdir
        work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work, formats)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, formats: list[str]) -> int:
    names, n_frames, fmts = prepare(args, work, formats)
    video_seconds = len(names) * n_frames / FPS
    lens = [cl for cl in args.clip_lens if cl >= 1]
    clip_sets = {cl: sample_clips(args.clips, len(names), n_frames, cl, args.seed) for cl in lens}
    # Warm-up: imports, first-call allocations, page cache (unless --cold).
    for fmt in fmts.values():
        for cl in lens:
            run_one(fmt, clip_sets[cl][:2], args.cold)
    reads: dict[str, dict[int, list[float]]] = {f: {cl: [] for cl in lens} for f in fmts}
    crops: dict[str, dict[int, list[float]]] = {f: {cl: [] for cl in lens} for f in fmts}
    order = [(f, cl) for f in fmts for cl in lens]
    t_start = time.perf_counter()
    for r in range(args.repeats):
        rot = order[r % len(order) :] + order[: r % len(order)]
        for f, cl in rot:
            tr, tc = run_one(fmts[f], clip_sets[cl], args.cold)
            reads[f][cl].append(tr)
            crops[f][cl].append(tc)
        print(f"repeat {r + 1}/{args.repeats} done ({time.perf_counter() - t_start:.0f} s)", flush=True)

    n = args.clips
    res: dict[str, Any] = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "stores"},
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
        },
        "video_seconds": video_seconds,
        "formats": {},
    }
    for f, fmt in fmts.items():
        entry: dict[str, Any] = {
            "note": fmt.note,
            "stored_hw": list(fmt.hw),
            "bytes_total": fmt.bytes_total,
            "bytes_per_video_s": fmt.bytes_total / video_seconds,
        }
        for cl in lens:
            total = [a + b for a, b in zip(reads[f][cl], crops[f][cl], strict=True)]
            entry[f"{cl}f"] = {
                "clips_per_s": n / statistics.median(total),
                "read_ms": 1e3 * statistics.median(reads[f][cl]) / n,
                "crop_ms": 1e3 * statistics.median(crops[f][cl]) / n,
                "clips_per_s_runs": [n / t for t in total],
            }
        res["formats"][f] = entry
    base = res["formats"].get(BASELINE)
    for entry in res["formats"].values():
        for cl in lens:
            e = entry[f"{cl}f"]
            e["vs_jpeg"] = e["clips_per_s"] / base[f"{cl}f"]["clips_per_s"] if base else float("nan")
            e["workers_for_target"] = math.ceil(args.target / e["clips_per_s"])
            e["read_workers_for_target"] = math.ceil(args.target * e["read_ms"] / 1e3)
            e["main_cores_for_target_crop"] = args.target * e["crop_ms"] / 1e3
    if args.loader_workers:
        cl = 16 if 16 in lens else lens[0]
        res["loader_workers"] = {}
        for f, fdir in args.stores.items():
            for mode in ("workers", "main"):
                for k in args.loader_workers:
                    rate = worker_throughput(fdir, names, cl, k, mode == "workers", args.loader_clips, 8, args.seed)
                    res["loader_workers"][f"{f}/{mode}/{k}"] = {"format": f, "crop": mode, "workers": k,
                                                                "clip_len": cl, "clips_per_s": rate}
                    print(f"loader {f} crop in {mode}, {k} workers: {rate:.1f} clips/s of {cl}f", flush=True)
    _print(res, lens, args)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


def _print(res: dict[str, Any], lens: list[int], args: argparse.Namespace) -> None:
    print()
    print(
        f"clips/s per core (median of {args.repeats} interleaved runs of {args.clips} clips; "
        f"{'cold' if args.cold else 'warm'} page cache), output float (3, T, {SIZE}, {SIZE})"
    )
    for f, e in res["formats"].items():
        parts = [
            f"{e[f'{cl}f']['clips_per_s']:.1f} clips/s @{cl}f ({e[f'{cl}f']['vs_jpeg']:.2f}x jpeg)"
            for cl in lens
        ]
        print(
            f"format {f}: " + "; ".join(parts) + f"; {e['bytes_per_video_s'] / 1e3:.0f} kB per video-second"
        )
    print()
    cols = "".join(f" {cl}f clips/s | {cl}f vs jpeg | {cl}f read+crop ms |" for cl in lens)
    print(f"| format | stored HxW | kB / video-s |{cols} description |")
    print("|---|---|---|" + "---|---|---|" * len(lens) + "---|")
    for f, e in res["formats"].items():
        cells = "".join(
            f" {e[f'{cl}f']['clips_per_s']:.1f} | {e[f'{cl}f']['vs_jpeg']:.2f}x |"
            f" {e[f'{cl}f']['read_ms']:.1f} + {e[f'{cl}f']['crop_ms']:.1f} |"
            for cl in lens
        )
        h, w = e["stored_hw"]
        print(f"| {f} | {h}x{w} | {e['bytes_per_video_s'] / 1e3:.0f} |{cells} {e['note']} |")
    for key, e in res.get("loader_workers", {}).items():
        print(f"delivered {key}: {e['clips_per_s']:.1f} clips/s of {e['clip_len']}f delivered "
              f"({os.cpu_count()} cores on this machine)")
    cl = lens[0]
    print()
    for f, e in res["formats"].items():
        x = e[f"{cl}f"]
        print(
            f"workers {f}: {x['workers_for_target']} single-core workers for {args.target:g} clips/s of {cl}f "
            f"(full pipeline in workers); read-only workers {x['read_workers_for_target']} + "
            f"{x['main_cores_for_target_crop']:.2f} main-process cores for crop_resize"
        )


if __name__ == "__main__":
    sys.exit(main())
