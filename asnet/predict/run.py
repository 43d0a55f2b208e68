"""`asnet predict`: score video files with a Predictor; the CSV, the per-clip scores and the
annotations of every video, one error line per file that could not be scored."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
from tqdm import tqdm

from asnet.config import Config
from asnet.data.store import store_path
from asnet.predict.model import Predictor, load_predictor

log = logging.getLogger(__name__)

# What a folder argument contributes: the files with these suffixes below it, sorted.
VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".3gp")


@dataclass
class Prediction:
    """One scored video."""

    path: Path
    scores: np.ndarray  # (C,) float64: mean of the views' softmax
    view_scores: np.ndarray  # (N * V, C) float32, scores.npz's clip_scores rows
    view_index: np.ndarray  # (N * V,)
    view_starts: np.ndarray  # (N * V,)
    frames: np.ndarray  # (N, T) stored-frame indices of every clip
    spa_box: np.ndarray | None  # (N, 4) SPA's box of every clip, stored-frame pixels
    frame_hw: tuple[int, int]  # stored frames' (H, W)
    src_fps: float
    src_frames: int  # frames decoded from the file (before resampling to the protocol's fps)
    stored: Path | None = None  # the decoded frames while they exist (annotation reads them)


@dataclass
class PredictResult:
    """What `predict` made: per video its prediction, per failed file its error line."""

    predictor: Predictor
    top_k: int
    predictions: list[Prediction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    out_csv: Path | None = None
    annotated: list[Path] = field(default_factory=list)


def video_files(inputs: list[Path]) -> list[Path]:
    """The files of `inputs`: a file as given, a folder's video files (VIDEO_SUFFIXES) below it."""
    out: list[Path] = []
    for p in map(Path, inputs):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        else:
            out.append(p)
    return out


def input_problem(path: Path) -> str | None:
    """Why `path` cannot be a video before any decoding (None when it may be one)."""
    if not path.exists():
        return f"{path}: no such file; check the path"
    if not path.is_file():
        return f"{path}: not a regular file; give a video file or a folder of them"
    if not os.access(path, os.R_OK):
        return f"{path}: cannot be read (permission denied); make it readable (chmod u+r)"
    if path.stat().st_size == 0:
        return f"{path}: an empty (0-byte) file; copy the video again"
    return None


def predict_files(cfg: Config, inputs: list[Path], model: Path, top_k: int = 5, out_csv: Path | None = None,
                  annotate_dir: Path | None = None, classes: Path | None = None, progress: bool = True,
                  errors_to: TextIO | None = None) -> PredictResult:
    """Score every video of `inputs` with `model` (``load_predictor``): decoded by the
    extraction's decoder with the model's frames protocol, scored by ``score_video`` under its
    test views. Writes `out_csv` (top-k rows per video) and the per-clip scores beside it
    (``<out>.npz``), and with `annotate_dir` an MP4 and a contact sheet per video. A file that
    cannot be scored prints one line to `errors_to` and gets no row."""
    from asnet.data.clips import test_clips
    from asnet.data.frames import decode_files
    from asnet.train.evaluate import score_video

    if top_k < 1:
        raise ValueError(f"--top-k {top_k}: give at least 1")
    files = video_files(inputs)
    if not files:
        raise FileNotFoundError(f"{', '.join(map(str, inputs))}: no video files ({', '.join(VIDEO_SUFFIXES)})")
    pred = load_predictor(cfg, model, classes)
    result = PredictResult(pred, min(top_k, len(pred.classes)), out_csv=out_csv)

    def fail(line: str) -> None:
        result.errors.append(line)
        tqdm.write(f"asnet predict: error: {line}", file=errors_to or sys.stderr)

    todo = []
    for i, f in enumerate(files):
        problem = input_problem(f)
        if problem:
            fail(problem)
        else:
            todo.append((f"v{i:06d}", f))
    by_id = dict(todo)
    done: dict[str, Prediction] = {}
    with tempfile.TemporaryDirectory(prefix="asnet-predict-") as tmp:
        bar = tqdm(total=len(todo), desc=f"predict {pred.name}", unit="video", disable=not progress or len(todo) < 2)
        rows = decode_files(todo, Path(tmp), pred.short_side, pred.fps, min_frames=1, timeout_s=pred.timeout_s,
                            workers=max(1, min(cfg.frames.workers, len(todo))), fmt=pred.fmt, quality=pred.quality)
        for row in rows:
            bar.update(1)
            path = by_id[row["video"]]
            if row["status"] == "excluded":
                fail(_decode_problem(path, row["reason"]))
                continue
            if row["frames"] < pred.clip_len:
                fail(f"{path}: {row['frames']} frames at {pred.fps:g} fps, but {model} takes clips of {pred.clip_len} "
                     f"frames; give a video of at least {pred.clip_len / pred.fps:.2f} s or a model trained with "
                     f"shorter clips (input.clip_len)")
                continue
            stored = store_path(Path(tmp), row["video"], pred.fmt)
            item = test_clips(stored, pred.clip_len, pred.views)
            scored = score_video(pred.score_fn, item, pred.views)
            views = scored.view_scores()
            done[row["video"]] = Prediction(
                path, views.astype(np.float64).mean(axis=0), views, scored.view_index(), scored.view_starts(),
                scored.frames.numpy(), None if scored.spa_box is None else scored.spa_box.numpy(),
                (int(row["height"]), int(row["width"])), float(row["src_fps"]), int(row["src_frames"]), stored)
        bar.close()
        result.predictions = [done[v] for v, _ in todo if v in done]
        if annotate_dir is not None:
            from asnet.predict.annotate import annotate

            for p in result.predictions:
                result.annotated += annotate(p, pred, Path(annotate_dir))
        for p in result.predictions:
            p.stored = None
    if out_csv is not None:
        write_outputs(result, Path(out_csv))
    return result


def _decode_problem(path: Path, reason: str) -> str:
    if reason.startswith("timeout"):
        return f"{path}: decoding took longer than frames.timeout_s ({reason}); re-encode it (e.g. ffmpeg -i IN OUT.mp4)"
    return f"{path}: not a video this project can decode ({reason}); give a video file (e.g. .mp4, .avi)"


def top_rows(result: PredictResult) -> pd.DataFrame:
    """One row per (video, rank): video, rank, class, label, prob, clips, spa_box (clips' boxes, ';'-joined)."""
    rows = []
    for p in result.predictions:
        order = np.argsort(-p.scores, kind="stable")[: result.top_k]
        boxes = "" if p.spa_box is None else ";".join(" ".join(f"{v:.1f}" for v in b) for b in p.spa_box)
        for rank, c in enumerate(order, 1):
            rows.append({"video": str(p.path), "rank": rank, "class": result.predictor.classes[c], "label": int(c),
                         "prob": float(p.scores[c]), "clips": len(p.view_scores), "spa_box": boxes})
    return pd.DataFrame(rows, columns=["video", "rank", "class", "label", "prob", "clips", "spa_box"])


def write_outputs(result: PredictResult, out_csv: Path) -> None:
    """`out_csv` (``top_rows``) and ``<out_csv stem>.npz`` beside it: scores.npz's arrays
    (video, clip_video, clip_scores, clip_view, clip_start) plus clip_box, SPA's box of each
    row's clip in stored-frame pixels (NaN without SPA), and the class names."""
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    top_rows(result).to_csv(out_csv, index=False)
    preds = result.predictions
    n_classes = len(result.predictor.classes)

    def cat(arrays: list[np.ndarray], dtype, shape=(0,)) -> np.ndarray:
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(shape, dtype)

    boxes = []
    for p in preds:
        per_clip = p.spa_box if p.spa_box is not None else np.full((len(p.frames), 4), np.nan)
        boxes.append(np.repeat(per_clip, len(p.view_scores) // len(p.frames), axis=0))
    np.savez_compressed(
        out_csv.with_suffix(".npz"),
        video=np.array([str(p.path) for p in preds], dtype=str),
        clip_video=cat([np.full(len(p.view_scores), i) for i, p in enumerate(preds)], np.int64),
        clip_scores=cat([p.view_scores for p in preds], np.float32, (0, n_classes)),
        clip_view=cat([p.view_index for p in preds], np.int64),
        clip_start=cat([p.view_starts for p in preds], np.int64),
        clip_box=cat(boxes, np.float32, (0, 4)),
        classes=np.array(result.predictor.classes, dtype=str),
    )


def summary(result: PredictResult) -> str:
    """The lines `asnet predict` prints: per video its top-k, and SPA's box per clip."""
    lines = []
    for p in result.predictions:
        order = np.argsort(-p.scores, kind="stable")[: result.top_k]
        top = "  ".join(f"{result.predictor.classes[c]} {p.scores[c]:.3f}" for c in order)
        lines.append(f"{p.path}: {top}")
        if p.spa_box is not None:
            h, w = p.frame_hw
            boxes = ", ".join(f"[{int(f[0])}-{int(f[-1])}] ({b[0]:.0f},{b[1]:.0f},{b[2]:.0f},{b[3]:.0f})"
                              for f, b in zip(p.frames, p.spa_box, strict=True))
            lines.append(f"  SPA box per clip (frames: x0,y0,x1,y1 on {w}x{h} frames): {boxes}")
    if result.out_csv is not None:
        lines.append(f"wrote {result.out_csv} and {Path(result.out_csv).with_suffix('.npz')}")
    if result.annotated:
        lines.append(f"wrote {len(result.annotated)} annotation files, e.g. {result.annotated[0]}")
    return "\n".join(lines)
