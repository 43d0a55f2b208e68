"""`asnet predict --annotate DIR`: per video an MP4 of the frames the model saw, SPA's box and
each clip's predicted label drawn on every frame of the clip, at the input's frame rate and
frame count (each input frame shows the stored frame resampling chose for its time), and a
contact sheet PNG (a row per clip, a column per frame position) to look at in a second."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from asnet.data.frames import resample_indices
from asnet.data.store import open_video
from asnet.predict.model import Predictor
from asnet.predict.run import Prediction

MIN_SIDE = 240  # frames are enlarged to at least this short side: stored frames can be 40 px
SHEET_COLUMNS = 4  # frame positions per clip on the contact sheet: first ... last
SHEET_ROWS = 8  # clips on the contact sheet at most (evenly spread over the video)
BOX = (0, 255, 0)
TEXT_BG = (0, 0, 0)


def clip_of_frames(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """The clip each stored frame belongs to (the first clip holding it; a frame no clip holds,
    between MMAction2's spread clips, takes the last clip starting at or before it). -> (n_frames,)"""
    out = np.full(n_frames, -1, dtype=np.int64)
    for c in range(len(frames) - 1, -1, -1):
        out[frames[c][frames[c] < n_frames]] = c
    starts = frames[:, 0]
    for k in np.flatnonzero(out < 0):
        out[k] = max(int(np.searchsorted(starts, k, side="right")) - 1, 0)
    return out


def source_to_stored(src_frames: int, src_fps: float, fps: float, n_stored: int) -> np.ndarray:
    """For each input frame, the stored frame shown at its time: the last stored frame whose
    source frame (extraction's nearest-timestamp resampling) is at or before it. -> (src_frames,)"""
    src_of_stored = resample_indices(src_frames, src_fps, fps)[:n_stored]
    k = np.searchsorted(src_of_stored, np.arange(src_frames), side="right") - 1
    return np.clip(k, 0, n_stored - 1)


def clip_labels(p: Prediction, pred: Predictor) -> list[str]:
    """Each clip's predicted class and probability (mean over its spatial views)."""
    n = len(p.frames)
    per_clip = p.view_scores.reshape(n, -1, p.view_scores.shape[1]).mean(axis=1)
    return [f"{pred.classes[int(s.argmax())]} {float(s.max()):.2f}" for s in per_clip]


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def draw_frame(frame: np.ndarray, box: np.ndarray | None, text: str, scale: int) -> Image.Image:
    """`frame` (H, W, 3) enlarged `scale` times, `box` (stored pixels) and `text` drawn on it."""
    h, w = frame.shape[:2]
    img = Image.fromarray(frame).resize((w * scale, h * scale), Image.Resampling.NEAREST)
    d = ImageDraw.Draw(img)
    if box is not None and np.isfinite(box).all():
        x0, y0, x1, y1 = (float(v) * scale for v in box)
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX, width=max(2, scale // 2))
    font = _font(max(10, img.height // 16))
    tb = d.textbbox((4, 2), text, font=font)
    d.rectangle([tb[0] - 2, tb[1] - 2, tb[2] + 2, tb[3] + 2], fill=TEXT_BG)
    d.text((4, 2), text, fill=BOX, font=font)
    return img


def annotate(p: Prediction, pred: Predictor, out_dir: Path) -> list[Path]:
    """Write ``<stem>.mp4`` and ``<stem>_sheet.png`` of one prediction into `out_dir`."""
    import av

    assert p.stored is not None, "annotate while the decoded frames exist"
    out_dir.mkdir(parents=True, exist_ok=True)
    stored = open_video(p.stored)
    t, h, w, _ = stored.shape
    frames = stored.read(np.arange(t))
    scale = max(1, -(-MIN_SIDE // min(h, w)))
    clip = clip_of_frames(p.frames, t)
    labels = clip_labels(p, pred)
    video_label = pred.classes[int(p.scores.argmax())]

    def box(c: int) -> np.ndarray | None:
        return None if p.spa_box is None else p.spa_box[c]

    mp4 = out_dir / f"{p.path.stem}.mp4"
    width, height = (w * scale) // 2 * 2, (h * scale) // 2 * 2  # yuv420p needs even sides
    shown = source_to_stored(p.src_frames, p.src_fps, pred.fps, t)
    with av.open(str(mp4), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(p.src_fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for k in shown:
            c = int(clip[k])
            img = draw_frame(frames[k], box(c), f"{video_label} | clip {c + 1}: {labels[c]}", scale)
            arr = np.asarray(img)[:height, :width]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    sheet = out_dir / f"{p.path.stem}_sheet.png"
    contact_sheet(frames, p, pred, labels, scale).save(sheet)
    return [mp4, sheet]


def contact_sheet(frames: np.ndarray, p: Prediction, pred: Predictor, labels: list[str], scale: int) -> Image.Image:
    """Rows: up to SHEET_ROWS clips; columns: SHEET_COLUMNS frames from each clip's first to
    last, SPA's box drawn; a title with the video's top-3."""
    n = len(p.frames)
    rows = np.unique(np.linspace(0, n - 1, min(n, SHEET_ROWS)).round().astype(int))
    cols = np.unique(np.linspace(0, p.frames.shape[1] - 1, SHEET_COLUMNS).round().astype(int))
    tiles = [[draw_frame(frames[p.frames[c, j]], None if p.spa_box is None else p.spa_box[c],
                         f"clip {c + 1} f{int(p.frames[c, j])}: {labels[c]}", scale) for j in cols] for c in rows]
    tw, th = tiles[0][0].size
    pad, title_h = 4, max(24, th // 6)
    sheet = Image.new("RGB", (len(cols) * (tw + pad) + pad, title_h + len(rows) * (th + pad) + pad), (255, 255, 255))
    top = np.argsort(-p.scores, kind="stable")[:3]
    title = f"{p.path.name} ({pred.name}): " + ", ".join(f"{pred.classes[c]} {p.scores[c]:.2f}" for c in top)
    if p.spa_box is not None:
        title += "  (green: SPA's box)"
    ImageDraw.Draw(sheet).text((pad, pad), title, fill=(0, 0, 0), font=_font(max(12, title_h // 2)))
    for r, row in enumerate(tiles):
        for j, tile in enumerate(row):
            sheet.paste(tile, (pad + j * (tw + pad), title_h + pad + r * (th + pad)))
    return sheet
