"""Torch datasets reading clips from the frame store (see ``asnet.data.frames``, ``asnet.data.store``).

A video's file is opened per item and only the clip's frames are read (a memory map of an
``.npy``, the clip's byte span of a ``.jpgpack``); files are not kept open because each holds
a file descriptor and a dataset can have tens of thousands of videos.

A training item whose file turns out unreadable (``StoreError``: truncated, corrupt, another
format version) is skipped, not fatal: ``pad_collate`` leaves it out of the batch and lists
it in the batch's ``skipped``, which the training loop counts in the epoch's log.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from asnet.data.frames import STATUS_EXCLUDED, bad_videos_path, read_index
from asnet.data.store import StoreError, find_video, open_boxes, open_video


def usable_videos(manifest: pd.DataFrame, frames_dir: Path) -> tuple[pd.DataFrame, list[str], int]:
    """The manifest's rows minus the videos the frame index marks excluded, in manifest order.

    -> (rows, files, excluded): the usable rows (index reset), each row's stored file, and
    how many rows were left out. Every stage that reads the store builds its labels, masks
    and counts from these rows, so a video dropped here is dropped everywhere at once (and
    warned about, never silent)."""
    if "video" not in manifest.columns:
        raise ValueError("manifest needs a 'video' column")
    index = read_index(frames_dir)
    excluded = set(index.loc[index["status"] == STATUS_EXCLUDED, "video"].astype(str))
    videos = manifest["video"].astype(str)
    drop = videos.isin(excluded)
    if drop.any():
        warnings.warn(
            f"skipping {int(drop.sum())} of {len(manifest)} videos excluded at frame extraction; "
            f"see {bad_videos_path(frames_dir)}",
            stacklevel=3,
        )
    rows = manifest.loc[~drop].reset_index(drop=True)
    files = [find_video(Path(frames_dir), v) for v in rows["video"].astype(str)]
    missing = [v for v, f in zip(rows["video"].astype(str), files, strict=True) if f is None]
    if missing:
        # Not excluded yet not extracted: a pipeline ordering bug, not something to skip.
        dataset = Path(frames_dir).parent.name
        raise FileNotFoundError(
            f"{len(missing)} videos have no frames in {frames_dir}, e.g. {missing[:3]}; run `asnet extract "
            f"--dataset {dataset}`, which decodes exactly the missing ones (under Snakemake: `snakemake "
            f"--forcerun extract_chunk {Path(frames_dir) / 'index.csv'}`)")
    return rows, [str(f) for f in files], int(drop.sum())


def _labels(rows: pd.DataFrame) -> list[int]:
    if "label" not in rows.columns:
        return [-1] * len(rows)
    return [int(x) for x in rows["label"]]


def _load_boxes(frames_dir: Path, video: str) -> np.ndarray | None:
    path = frames_dir / f"{video}.boxes.npy"
    return open_boxes(path) if path.exists() else None


def box_union(boxes: np.ndarray | None, frame_idx: np.ndarray) -> np.ndarray:
    """Union (x0, y0, x1, y1) of the boxes on ``frame_idx``; NaN x4 if none of them has a box."""
    out = np.full(4, np.nan, dtype=np.float32)
    if boxes is None:
        return out
    sel = np.asarray(boxes[np.asarray(frame_idx)], dtype=np.float32)
    sel = sel[~np.isnan(sel).any(axis=1)]
    if len(sel):
        out[:2] = sel[:, :2].min(axis=0)
        out[2:] = sel[:, 2:].max(axis=0)
    return out


def clip_indices(n_frames: int, clip_len: int, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of one random clip: random offset; videos shorter than a clip loop."""
    if n_frames <= 0:
        raise ValueError("empty video")
    if n_frames >= clip_len:
        start = int(rng.integers(0, n_frames - clip_len + 1))
        return np.arange(start, start + clip_len)
    start = int(rng.integers(0, n_frames))
    return (start + np.arange(clip_len)) % n_frames


class ClipDataset(Dataset):
    """Training clips: one random clip per video per epoch item.

    The clip of item ``i`` in epoch ``e`` depends only on ``(seed, e, i)``, so it is identical
    across runs, resumes and DataLoader worker counts. Call ``set_epoch`` before creating the
    epoch's iterator (with ``persistent_workers=True`` the workers keep their own copy and do
    not see later ``set_epoch`` calls).
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        frames_dir: Path,
        clip_len: int,
        seed: int = 0,
        crops: Callable[[dict[str, Any], np.random.SeedSequence], dict[str, Any]] | None = None,
    ) -> None:
        """
        Args:
            manifest: rows with ``video`` and (optionally) integer ``label``; missing label -> -1.
            frames_dir: folder with the stored videos (any ``asnet.data.store`` format) and ``index.csv``.
            clip_len: frames per clip.
            seed: base seed of the clip sampling.
            crops: optional per-item transform run where the item is loaded (a DataLoader
                worker): it gets the item and a SeedSequence of (seed, epoch, index) for its
                random draws and returns the item with its stream inputs
                (``asnet.train.inputs.WorkerCrops``).
        """
        if clip_len < 1:
            raise ValueError("clip_len must be >= 1")
        self.frames_dir = Path(frames_dir)
        self.rows, self.files, _ = usable_videos(manifest, self.frames_dir)
        self.videos: list[str] = self.rows["video"].astype(str).tolist()
        self.labels = _labels(self.rows)
        self.clip_len = clip_len
        self.seed = seed
        self.epoch = 0
        self.crops = crops

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose clips ``__getitem__`` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.videos)

    def clip_frames(self, i: int, n_frames: int) -> np.ndarray:
        """Frame indices item ``i`` uses in the current epoch for a video of ``n_frames``."""
        # SeedSequence over the tuple: independent streams, no arithmetic collisions of seed+epoch.
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return clip_indices(n_frames, self.clip_len, rng)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Return ``{"clip": uint8 (T, H, W, 3), "label", "index", "height", "width", "gt": (4,)}``
        (what ``crops`` makes of it, if given), or ``{"skipped": video, "reason", "index"}`` when
        the video's file is unreadable."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        video = self.videos[i]
        try:
            stored = open_video(Path(self.files[i]))
            idx = self.clip_frames(i, stored.shape[0])
            clip = stored.read(idx)
            boxes = _load_boxes(self.frames_dir, video)
        except StoreError as exc:
            return {"skipped": video, "reason": str(exc), "index": i}
        item = {
            "clip": torch.from_numpy(clip),
            "label": self.labels[i],
            "index": i,
            "height": int(stored.shape[1]),
            "width": int(stored.shape[2]),
            "gt": torch.from_numpy(box_union(boxes, idx)),
        }
        if self.crops is not None:
            item = self.crops(item, np.random.SeedSequence([self.seed, self.epoch, i, 1]))
        return item


# Test views of `eval.views`: which clips of a video are scored (the spatial crops of each
# clip are asnet.train.evaluate.view_boxes). The first is the default.
EVAL_VIEWS = ("hara", "mmaction_10x3")
MMACTION_CLIPS = 10


def hara_clip_indices(n_frames: int, clip_len: int) -> np.ndarray:
    """Frame indices (N, clip_len) of Hara et al.'s test clips: every non-overlapping clip.

    Clips start at 0, L, 2L, ... and cover [j, min(n, j + L)); a clip shorter than L (the
    last one, or the only one of a video shorter than L) is loop-padded with its own frames
    from its start: n=20, L=8 -> [0..7], [8..15], [16, 17, 18, 19, 16, 17, 18, 19].
    N = ceil(n / L).
    """
    if n_frames <= 0:
        raise ValueError("empty video")
    if clip_len < 1:
        raise ValueError("clip_len must be >= 1")
    starts = np.arange(0, n_frames, clip_len)
    lengths = np.minimum(n_frames - starts, clip_len)
    return starts[:, None] + np.arange(clip_len)[None, :] % lengths[:, None]


def spread_clip_indices(n_frames: int, clip_len: int, num_clips: int = MMACTION_CLIPS) -> np.ndarray:
    """Frame indices (num_clips, clip_len) of MMAction2's test clips (SampleFrames with
    test_mode=True, frame_interval 1): starts round(k * max(n - L, 0) / (num_clips - 1)),
    evenly spread from the first frame to the last full clip; indices past the end loop
    (out_of_bound_opt "loop"), so a video shorter than L gives num_clips copies of one
    looped clip."""
    if n_frames <= 0:
        raise ValueError("empty video")
    if clip_len < 1 or num_clips < 1:
        raise ValueError("clip_len and num_clips must be >= 1")
    max_offset = max(n_frames - clip_len, 0)
    if num_clips > 1:
        starts = np.round(np.arange(num_clips) * (max_offset / (num_clips - 1))).astype(np.int64)
    else:
        starts = np.array([max_offset // 2])
    return (starts[:, None] + np.arange(clip_len)[None, :]) % n_frames


def eval_clip_indices(n_frames: int, clip_len: int, views: str) -> np.ndarray:
    """Frame indices (N, clip_len) of the test clips of `views` (one of EVAL_VIEWS)."""
    if views == "hara":
        return hara_clip_indices(n_frames, clip_len)
    if views == "mmaction_10x3":
        return spread_clip_indices(n_frames, clip_len, MMACTION_CLIPS)
    raise ValueError(f"unknown eval.views {views!r}; use one of {', '.join(EVAL_VIEWS)}")


class VideoClips(Dataset):
    """Evaluation: every test clip of one video per item (``eval_clip_indices``).

    With ``views="hara"`` (default) these are all non-overlapping clips from the first
    frame, the last partial clip loop-padded (Hara et al.'s test code); ``n_listed`` /
    ``n_excluded`` count the manifest's rows and those left out as excluded at extraction.
    """

    def __init__(self, manifest: pd.DataFrame, frames_dir: Path, clip_len: int, views: str = EVAL_VIEWS[0]) -> None:
        """Same manifest/frames_dir conventions as ``ClipDataset``; `views` is one of EVAL_VIEWS."""
        if clip_len < 1:
            raise ValueError("clip_len must be >= 1")
        if views not in EVAL_VIEWS:
            raise ValueError(f"unknown eval.views {views!r}; use one of {', '.join(EVAL_VIEWS)}")
        self.frames_dir = Path(frames_dir)
        self.rows, self.files, self.n_excluded = usable_videos(manifest, self.frames_dir)
        self.n_listed = len(manifest)
        self.videos: list[str] = self.rows["video"].astype(str).tolist()
        self.labels = _labels(self.rows)
        self.clip_len = clip_len
        self.views = views

    def __len__(self) -> int:
        return len(self.videos)

    def clip_frames(self, n_frames: int) -> np.ndarray:
        """Frame indices (N, clip_len) of the evaluation clips of a video with ``n_frames`` frames."""
        return eval_clip_indices(n_frames, self.clip_len, self.views)

    def __getitem__(self, i: int) -> dict[str, Any]:
        """Return ``{"clips": uint8 (N, T, H, W, 3), "frames": (N, T) frame indices, "label", "index",
        "video", "height", "width", "gt": (N, 4)}``. An unreadable file raises ``StoreError``
        (a test set is not silently shrunk)."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        video = self.videos[i]
        item = test_clips(Path(self.files[i]), self.clip_len, self.views, _load_boxes(self.frames_dir, video))
        return {**item, "label": self.labels[i], "index": i, "video": video}


def test_clips(path: Path, clip_len: int, views: str, boxes: np.ndarray | None = None) -> dict[str, Any]:
    """The test clips of the stored video file `path` under `views` (``eval_clip_indices``):
    ``{"clips": uint8 (N, T, H, W, 3), "frames": (N, T) frame indices, "height", "width",
    "gt": (N, 4)}`` (`boxes`: its actor boxes, (frames, 4), or None: NaN). What ``VideoClips``
    and `asnet predict` read a video with; an unreadable file raises ``StoreError``."""
    stored = open_video(Path(path))
    t, h, w, _ = stored.shape
    idx = eval_clip_indices(t, clip_len, views)
    # Clips tiling a prefix of the video are one slice; padded or spread clips gather
    # their frames (only those are read).
    clips = stored.read(idx.reshape(-1))
    return {
        "clips": torch.from_numpy(clips.reshape(*idx.shape, h, w, 3)),
        "frames": torch.from_numpy(idx),
        "height": int(h),
        "width": int(w),
        "gt": torch.from_numpy(np.stack([box_union(boxes, row) for row in idx])),
    }


def _pad_stack(tensors: list[torch.Tensor], fill: float) -> torch.Tensor:
    """Stack tensors of equal rank, padding every dim at its end to the batch maximum."""
    shape = [max(s) for s in zip(*(t.shape for t in tensors), strict=True)]
    out = tensors[0].new_full([len(tensors), *shape], fill)
    for j, t in enumerate(tensors):
        out[(j, *(slice(0, s) for s in t.shape))] = t
    return out


def pad_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate ``ClipDataset`` / ``VideoClips`` items into a batch.

    Clips of different sizes are zero-padded on the right/bottom (and, for ``VideoClips``,
    along the clip axis) to the batch maximum; true sizes stay in ``height``/``width`` (B,)
    and, for ``VideoClips``, the clip count in ``num_clips`` (B,). Padded boxes are NaN.
    Stream inputs cut in the workers (``x_ctx``, ``x_sal``: equal sizes) are stacked and
    their ``flip`` kept. Skipped items (unreadable files) are left out; ``skipped`` lists
    their ``(video, reason)`` when there are any (the batch may then hold no clip at all).
    """
    if not batch:
        raise ValueError("empty batch")
    skipped = [(b["skipped"], b["reason"]) for b in batch if "skipped" in b]
    if skipped:
        batch = [b for b in batch if "skipped" not in b]
        if not batch:
            return {"skipped": skipped, "label": torch.zeros(0, dtype=torch.long)}
    out: dict[str, Any] = {"skipped": skipped} if skipped else {}
    for key in ("clip", "clips"):
        if key in batch[0]:
            out[key] = _pad_stack([b[key] for b in batch], 0)
    if "clips" in out:
        out["num_clips"] = torch.tensor([b["clips"].shape[0] for b in batch], dtype=torch.long)
    for key in ("x_ctx", "x_sal", "ctx_box", "flip"):
        if key in batch[0]:
            out[key] = torch.stack([torch.as_tensor(b[key]) for b in batch])
    out["gt"] = _pad_stack([b["gt"] for b in batch], float("nan"))
    # Whether every clip has an actor box (synthetic data), decided here on the host so the
    # training step never reads the boxes to find out.
    out["has_gt"] = not bool(torch.isnan(out["gt"]).any())
    for name in ("label", "index", "height", "width"):
        out[name] = torch.tensor([b[name] for b in batch], dtype=torch.long)
    if "video" in batch[0]:
        out["video"] = [b["video"] for b in batch]
    return out
