"""Frame extraction: decode videos once into the stored format used by every later stage.

Stored format (one file per video, see ``extract_videos``):

* ``<frames_dir>/<video>.npy`` (``fmt="npy"``) or ``<video>.jpgpack`` (``fmt="jpeg"``; the
  formats are ``asnet.data.store``'s): RGB frames at ``fps`` (25 by default), isotropically
  resized so that ``min(H, W) == short_side``.
* ``<frames_dir>/<video>.boxes.npy`` (optional): float32 (T, 4) ground-truth boxes
  ``x0, y0, x1, y1`` in stored-frame pixels (x1, y1 exclusive), aligned to the stored frames.
* ``<file>.crc32`` beside each ``.npy`` file: its checksum (``asnet.data.store``; a
  ``.jpgpack`` carries its own).
* ``<frames_dir>/index.csv``: one row per video, columns ``INDEX_COLUMNS``.
* ``<frames_dir>/../bad_videos.csv``: every excluded or repaired video with its reason.

``index_dir`` moves the index and bad_videos.csv elsewhere (an extraction chunk keeps its own
beside the shared frame store), and ``done_dir`` keeps one marker per finished video, so a
killed run whose index was lost (Snakemake deletes an incomplete job's outputs) keeps them.

Decoding runs in separate worker processes with a per-video timeout because decord can hang
forever (over-reported frame counts) or segfault (corrupt input); either must cost one video,
never the run. A failed *write* is not the video's fault: a worker reports it as such, and
the run stops with ``asnet.disk.DiskFullError`` (a full, over-quota or failing disk), keeping
the videos finished before it and recording nothing for the one it was writing, so a rerun
after freeing space decodes exactly the missing ones.

``verify_frames`` checks a whole store against its checksums (``asnet verify-store``).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from asnet.data import store
from asnet.disk import DISK_ERRNOS, DiskFullError, write_text_atomic, writing
from asnet.faults import fault_point
from asnet.progress import CONSOLE

log = logging.getLogger(__name__)

INDEX_COLUMNS: list[str] = ["video", "frames", "height", "width", "src_fps", "src_frames", "status", "reason"]
BAD_COLUMNS: list[str] = ["video", "status", "reason"]
STATUS_OK = "ok"
STATUS_REPAIRED = "repaired"
STATUS_EXCLUDED = "excluded"
DEFAULT_DECODER = "asnet.data.frames:decode_video"

# Frame rates outside this range are container garbage (0, NaN, 90000 time-base leaks).
_FPS_SANE = (1.0, 240.0)
# Exclusion reasons that are a failed write, not a bad video (numpy's errno-less short write,
# the disk's own message), as stores extracted before writes were told apart may hold: such
# a video is decoded again.
_LOST_TO_A_WRITE = re.compile(r"\d+ requested and \d+ written|No space left on device|Disk quota exceeded")


class DecodeError(RuntimeError):
    """Raised when no backend could decode a single frame of a video."""


# --------------------------------------------------------------------------------------
# Single-video decoding
# --------------------------------------------------------------------------------------


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Return (new_height, new_width) with the short side equal to ``short_side``, aspect kept."""
    scale = short_side / min(height, width)
    if height <= width:
        return short_side, max(1, round(width * scale))
    return max(1, round(height * scale)), short_side


def resample_indices(n_src: int, src_fps: float, fps: float) -> np.ndarray:
    """Source frame index for each output frame at ``fps``, by nearest timestamp (CFR assumed).

    Output frame k sits at t = k / fps; its nearest source frame is round(t * src_fps).
    Output frames are emitted while that nearest source frame exists, so 60 frames at 30 fps
    give 50 frames and 30 frames at 15 fps give 50 frames (repeats).
    """
    if n_src <= 0:
        return np.zeros(0, dtype=np.int64)
    ratio = src_fps / fps
    # k * ratio + 0.5 < n_src  <=>  nearest source index <= n_src - 1
    n_out = max(1, math.ceil((n_src - 0.5) / ratio))
    idx = np.floor(np.arange(n_out) * ratio + 0.5).astype(np.int64)
    return np.minimum(idx, n_src - 1)


class _Resampler:
    """Streaming nearest-timestamp resampler + resizer.

    Frames are resized as they are decoded and only the selected ones are kept, so memory stays
    at the size of the *stored* video, not the full-resolution source.
    """

    def __init__(self, src_fps: float, fps: float, short_side: int) -> None:
        self.ratio = src_fps / fps
        self.short_side = short_side
        self.frames: list[np.ndarray] = []
        self.indices: list[int] = []
        self.next_k = 0
        self.n_src = 0
        self.src_hw: tuple[int, int] | None = None

    def _target(self, k: int) -> int:
        return int(math.floor(k * self.ratio + 0.5))

    def feed(self, j: int, frame: np.ndarray) -> None:
        self.n_src = j + 1
        if self._target(self.next_k) > j:
            return  # dropped by downsampling; skip the resize cost
        small = self._prepare(frame)
        while self._target(self.next_k) <= j:
            self.frames.append(small)
            self.indices.append(j)
            self.next_k += 1

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        frame = to_rgb(frame)
        h, w = frame.shape[:2]
        if self.src_hw is None:
            self.src_hw = (h, w)
        nh, nw = resized_size(h, w, self.short_side)
        if (nh, nw) == (h, w):
            return np.ascontiguousarray(frame)
        # Pillow's bilinear resize widens its kernel when downscaling, i.e. it is antialiased.
        return np.asarray(Image.fromarray(frame).resize((nw, nh), Image.Resampling.BILINEAR))


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """Coerce a decoded frame to uint8 (H, W, 3): grayscale is replicated, alpha dropped."""
    if frame.ndim == 2:
        frame = frame[..., None]
    if frame.shape[2] == 1:
        frame = np.repeat(frame, 3, axis=2)
    elif frame.shape[2] == 4:
        frame = frame[..., :3]
    if frame.dtype != np.uint8:
        frame = np.clip(frame, 0, 255).astype(np.uint8)
    return frame


def _sane_fps(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or not (_FPS_SANE[0] <= value <= _FPS_SANE[1]):
        return None
    return value


@dataclass
class _Decoded:
    backend: str
    resampler: _Resampler
    src_fps: float
    reported: int  # frames the container claims; 0 if unknown
    error: str | None = None  # error that stopped decoding early, if any
    notes: list[str] = field(default_factory=list)


def _header_info(path: Path) -> tuple[int, float | None]:
    """Frame count and fps from the container header via PyAV, without decoding.

    decord derives its count from the packets it could index, so a truncated AVI looks
    complete to it; the header count is what exposes the truncation.
    """
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return int(stream.frames or 0), (float(rate) if rate else None)
    except Exception:
        return 0, None


def _decode_decord(path: Path, short_side: int, fps: float) -> _Decoded:
    import decord

    vr = decord.VideoReader(str(path), num_threads=1)
    notes: list[str] = []
    src_fps = _sane_fps(vr.get_avg_fps())
    header_frames, header_fps = _header_info(path)
    if src_fps is None:
        src_fps = _sane_fps(header_fps)
    if src_fps is None:
        notes.append(f"invalid src fps {vr.get_avg_fps()!r}, assumed {fps:g}")
        src_fps = fps
    res = _Decoded(
        "decord", _Resampler(src_fps, fps, short_side), src_fps, max(len(vr), header_frames), notes=notes
    )
    j = 0
    try:
        # Sequential next() rather than get_batch: no seeking, so an over-reported length
        # cannot send decord looking for frames that do not exist.
        while True:
            frame = vr.next().asnumpy()
            res.resampler.feed(j, frame)
            j += 1
    except StopIteration:
        pass
    except Exception as exc:  # decord raises DECORDError / RuntimeError mid-stream
        res.error = f"decord: {type(exc).__name__}: {_short(exc)}"
    return res


def _decode_pyav(path: Path, short_side: int, fps: float) -> _Decoded:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        notes: list[str] = []
        rate = stream.average_rate or stream.guessed_rate
        src_fps = _sane_fps(float(rate) if rate else None)
        if src_fps is None:
            notes.append(f"invalid src fps {rate!r}, assumed {fps:g}")
            src_fps = fps
        res = _Decoded(
            "pyav", _Resampler(src_fps, fps, short_side), src_fps, int(stream.frames or 0), notes=notes
        )
        j = 0
        try:
            for frame in container.decode(stream):
                res.resampler.feed(j, frame.to_ndarray(format="rgb24"))
                j += 1
        except Exception as exc:
            res.error = f"pyav: {type(exc).__name__}: {_short(exc)}"
    return res


def _short(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."


def decode_video(path: Path, short_side: int, fps: float = 25.0) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode every frame of ``path``, resample to ``fps`` and resize to ``short_side``.

    decord is tried first; PyAV is the fallback when decord cannot open the file or stops
    early (the better of the two results is kept). Every frame is decoded because that is
    the only reliable validity check.

    Returns:
        frames: uint8 (T, H, W, 3) RGB with ``min(H, W) == short_side``.
        info: ``src_fps``, ``src_frames`` (frames actually decoded), ``reported_frames``,
            ``src_height``, ``src_width``, ``indices`` (source frame index of each output
            frame, int64 (T,)), ``backend``, ``status`` (``ok``/``repaired``) and ``reason``.

    Raises:
        DecodeError: if no backend decoded any frame.
    """
    path = Path(path)
    attempts: list[_Decoded] = []
    errors: list[str] = []
    for backend in (_decode_decord, _decode_pyav):
        try:
            res = backend(path, short_side, fps)
        except Exception as exc:
            errors.append(f"{backend.__name__.removeprefix('_decode_')}: {type(exc).__name__}: {_short(exc)}")
            continue
        attempts.append(res)
        if res.error is None and res.resampler.frames:
            break
        if res.error:
            errors.append(res.error)
    attempts = [a for a in attempts if a.resampler.frames]
    if not attempts:
        raise DecodeError("; ".join(errors) or "no frames decoded")
    best = max(attempts, key=lambda a: (a.resampler.n_src, a.error is None))
    rs = best.resampler
    assert rs.src_hw is not None
    reported = max(a.reported for a in attempts)
    reasons = list(best.notes)
    if best.error is not None:
        reasons.append(f"decoded partially ({rs.n_src} frames): {best.error}")
    elif reported and rs.n_src < reported:
        reasons.append(f"fewer frames than reported ({rs.n_src} of {reported})")
    if best.backend != "decord" and errors:
        reasons.append(f"pyav fallback after {errors[0]}")
    info: dict[str, Any] = {
        "src_fps": best.src_fps,
        "src_frames": rs.n_src,
        "reported_frames": reported,
        "src_height": rs.src_hw[0],
        "src_width": rs.src_hw[1],
        "indices": np.asarray(rs.indices, dtype=np.int64),
        "backend": best.backend,
        # A clean PyAV fallback is not a repair: the stored frames are complete.
        "status": STATUS_REPAIRED
        if (best.error is not None or (reported and rs.n_src < reported) or best.notes)
        else STATUS_OK,
        "reason": "; ".join(reasons),
    }
    return np.stack(rs.frames), info


def align_boxes(
    boxes: np.ndarray, indices: np.ndarray, src_hw: tuple[int, int], out_hw: tuple[int, int]
) -> np.ndarray:
    """Select source-frame boxes with the resampling ``indices`` and scale them to stored pixels.

    Frames beyond the end of ``boxes`` get NaN (no box) rather than an invented one.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    out = np.full((len(indices), 4), np.nan, dtype=np.float32)
    valid = indices < len(boxes)
    out[valid] = boxes[indices[valid]]
    sy = out_hw[0] / src_hw[0]
    sx = out_hw[1] / src_hw[1]
    out *= np.array([sx, sy, sx, sy], dtype=np.float32)
    return out


# --------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------


def _resolve(spec: str) -> Callable[..., tuple[np.ndarray, dict[str, Any]]]:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _process_one(
    task: dict[str, Any], decoder: Callable[..., tuple[np.ndarray, dict[str, Any]]]
) -> dict[str, Any]:
    """Decode one video, loop-pad, write temp files. The parent renames them into place."""
    video = task["video"]
    row: dict[str, Any] = {
        "video": video,
        "frames": 0,
        "height": 0,
        "width": 0,
        "src_fps": float("nan"),
        "src_frames": 0,
    }
    path = Path(task["path"])
    if not path.exists():
        return {**row, "status": STATUS_EXCLUDED, "reason": "missing file"}
    if path.stat().st_size == 0:
        return {**row, "status": STATUS_EXCLUDED, "reason": "decode error: empty file"}
    try:
        frames, info = decoder(path, task["short_side"], task["fps"])
    except Exception as exc:
        return {**row, "status": STATUS_EXCLUDED, "reason": f"decode error: {_short(exc, 300)}"}
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        return {
            **row,
            "status": STATUS_EXCLUDED,
            "reason": f"decode error: bad frames array {frames.dtype} {frames.shape}",
        }
    indices = np.asarray(info.get("indices", np.arange(len(frames))), dtype=np.int64)
    status = info.get("status", STATUS_OK)
    reasons = [info["reason"]] if info.get("reason") else []
    n = len(frames)
    if n < task["min_frames"]:
        loop = np.arange(task["min_frames"]) % n
        frames, indices = frames[loop], indices[loop]
        status = STATUS_REPAIRED
        reasons.append(f"loop-padded {n} -> {task['min_frames']} frames")
    out = Path(task["out"])
    result = {
        **row,
        "frames": int(frames.shape[0]),
        "height": int(frames.shape[1]),
        "width": int(frames.shape[2]),
        "src_fps": float(info.get("src_fps", float("nan"))),
        "src_frames": int(info.get("src_frames", 0)),
        "status": status,
        "reason": "; ".join(reasons),
    }
    target = out
    try:
        result["tmp"] = str(store.write_tmp(out, frames, task.get("format", "npy"), task.get("quality", 0)))
        if task.get("boxes") is not None:
            src_hw = (int(info["src_height"]), int(info["src_width"]))
            aligned = align_boxes(task["boxes"], indices, src_hw, frames.shape[1:3])
            target = out.with_name(f"{video}.boxes.npy")
            result["boxes_tmp"] = str(store.write_tmp(target, aligned, "npy", 0))
    except OSError as exc:
        if "tmp" in result:
            store.remove(Path(result["tmp"]))
        # Not the video's fault: the parent stops the run (nothing is recorded for this video).
        return {"video": video, "write_error": {"path": str(target), "errno": exc.errno,
                                                "strerror": exc.strerror or str(exc)}}
    return result


def _worker_main(conn: Connection, decoder_spec: str) -> None:
    """Worker loop: report ready once imports are done, then process tasks until ``None``."""
    decoder = _resolve(decoder_spec)
    conn.send({"ready": True})
    while True:
        task = conn.recv()
        if task is None:
            return
        try:
            result = _process_one(task, decoder)
        except BaseException as exc:  # a worker must answer for every task it accepted
            result = {**_failed(task, f"decode error: {_short(exc, 300)}")}
        conn.send(result)


# Bootstrap of a worker interpreter: same sys.path as the parent (as multiprocessing's spawn
# does), then the worker loop on the inherited socket.
_WORKER_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]);"
    "from multiprocessing.connection import Connection;"
    "from asnet.data.frames import _worker_main;"
    "_worker_main(Connection(int(sys.argv[3])), sys.argv[2])"
)


@dataclass
class _Slot:
    proc: subprocess.Popen[bytes]
    conn: Connection
    ready: bool = False
    task: dict[str, Any] | None = None
    deadline: float = math.inf


class _Pool:
    """A few long-lived decode workers; any one can be killed and replaced independently.

    Each worker is a fresh interpreter (spawn semantics: safe with torch/OpenMP threads in
    the parent). It is started with subprocess rather than multiprocessing's spawn context
    because spawn re-imports the parent's ``__main__``, which re-runs unguarded scripts
    (Snakemake ``script:``, notebooks); the pickled-message protocol is multiprocessing's own
    ``Connection`` over a socketpair.
    """

    def __init__(self, n: int, decoder_spec: str, timeout_s: float) -> None:
        self.decoder_spec = decoder_spec
        self.timeout_s = timeout_s
        self.slots = [self._start() for _ in range(n)]

    def _start(self) -> _Slot:
        parent, child = socket.socketpair()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER_BOOT,
                json.dumps(sys.path),
                self.decoder_spec,
                str(child.fileno()),
            ],
            pass_fds=(child.fileno(),),
            stdin=subprocess.DEVNULL,
        )
        child.close()
        return _Slot(proc, Connection(parent.detach()))

    def _kill(self, slot: _Slot) -> None:
        if slot.proc.poll() is None:
            slot.proc.kill()
        slot.proc.wait()
        slot.conn.close()

    def close(self) -> None:
        for slot in self.slots:
            if slot.ready and slot.task is None and slot.proc.poll() is None:
                try:
                    slot.conn.send(None)
                    slot.proc.wait(2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill(slot)

    def run(self, tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Yield one result per task (order of completion)."""
        pending = list(tasks)[::-1]
        while pending or any(s.task is not None for s in self.slots):
            for slot in self.slots:
                if slot.ready and slot.task is None and pending:
                    slot.task = pending.pop()
                    slot.conn.send(slot.task)
                    slot.deadline = time.monotonic() + self.timeout_s
            now = time.monotonic()
            wait_s = min([s.deadline - now for s in self.slots if s.task is not None], default=1.0)
            ready = wait([s.conn for s in self.slots], timeout=max(0.0, min(wait_s, 1.0)))
            for i, slot in enumerate(self.slots):
                if slot.conn in ready:
                    try:
                        msg = slot.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if msg is None:
                        yield from self._replace_dead(i)
                    elif msg.get("ready"):
                        slot.ready = True
                    else:
                        slot.task = None
                        yield msg
                elif slot.task is not None and time.monotonic() > slot.deadline:
                    task = slot.task
                    self._kill(slot)
                    self.slots[i] = self._start()
                    yield _failed(task, f"timeout (> {self.timeout_s:g} s)")

    def _replace_dead(self, i: int) -> Iterator[dict[str, Any]]:
        slot = self.slots[i]
        code = slot.proc.wait()
        task = slot.task
        self._kill(slot)
        if not slot.ready:
            # Died before its first task: the decoder spec cannot even be imported, and
            # respawning would loop forever.
            raise RuntimeError(
                f"decode worker failed at start-up (exit code {code}); decoder={self.decoder_spec!r}"
            )
        self.slots[i] = self._start()
        if task is None:
            return
        why = f"crash (signal {-code})" if code < 0 else f"crash (exit code {code})"
        yield _failed(task, why)


def _write_error(failure: dict[str, Any]) -> OSError:
    """The error a worker's failed write stops the run with: DiskFullError for a full,
    over-quota, read-only or failing disk, the OSError naming the file otherwise."""
    errno_, path = failure["errno"], failure["path"]
    if errno_ in DISK_ERRNOS:
        return DiskFullError(path, OSError(errno_, failure["strerror"]))
    if errno_ is None:
        return OSError(f"cannot write {path}: {failure['strerror']}")
    return OSError(errno_, f"cannot write {path}: {failure['strerror']}")


def _failed(task: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "video": task["video"],
        "frames": 0,
        "height": 0,
        "width": 0,
        "src_fps": float("nan"),
        "src_frames": 0,
        "status": STATUS_EXCLUDED,
        "reason": reason,
    }


# --------------------------------------------------------------------------------------
# Index bookkeeping
# --------------------------------------------------------------------------------------


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write `df` atomically; an identical file is left untouched, mtime included, so a rerun
    that changes nothing makes nothing downstream look newer (Snakemake compares mtimes)."""
    path = Path(path)
    text = df.to_csv(index=False)
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    write_text_atomic(path, text)


def bad_videos_path(frames_dir: Path) -> Path:
    """``data/<dataset>/bad_videos.csv`` for ``frames_dir == data/<dataset>/frames``."""
    return Path(frames_dir).parent / "bad_videos.csv"


def read_index(frames_dir: Path) -> pd.DataFrame:
    """Load ``<frames_dir>/index.csv`` (empty frame with the right columns if absent)."""
    path = Path(frames_dir) / "index.csv"
    if not path.exists():
        return pd.DataFrame(columns=INDEX_COLUMNS)
    df = pd.read_csv(
        path,
        dtype={"video": str, "status": str, "reason": str},
        keep_default_na=False,
        na_values={"src_fps": ["", "nan", "NaN"]},
    )
    return df[INDEX_COLUMNS]


def _write_index(rows: dict[str, dict[str, Any]], index_path: Path, bad_path: Path) -> pd.DataFrame:
    df = pd.DataFrame([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows.values()], columns=INDEX_COLUMNS)
    df["reason"] = df["reason"].fillna("")
    write_csv(df, index_path)
    bad = df.loc[df["status"] != STATUS_OK, BAD_COLUMNS]
    write_csv(bad, bad_path)
    return df


def _marker(done_dir: Path, video: str) -> Path:
    return done_dir / f"{video}.json"


def _write_marker(done_dir: Path, row: dict[str, Any]) -> None:
    """The video's index row, written atomically once its arrays are in place (or removed)."""
    write_text_atomic(_marker(done_dir, row["video"]),
                      json.dumps({c: row.get(c) for c in INDEX_COLUMNS}, default=lambda o: o.item()))


def _read_marker(done_dir: Path, video: str) -> dict[str, Any] | None:
    try:
        return json.loads(_marker(done_dir, video).read_text())
    except (OSError, ValueError):  # absent, or cut short by a kill before the rename
        return None


def _remove_temp_files(frames_dir: Path, videos: set[str]) -> None:
    """Delete the temp arrays of `videos` left by a killed run; other videos' temp files may
    belong to a chunk decoding into the same folder right now."""
    for suffix in store.SUFFIXES.values():
        for stale in frames_dir.glob(f"*{suffix}.tmp*"):
            if stale.name.partition(f"{suffix}.tmp")[0].removesuffix(".boxes") in videos:
                stale.unlink(missing_ok=True)


def _as_pairs(manifest_or_paths: pd.DataFrame | Sequence[tuple[str, str | Path]]) -> list[tuple[str, str]]:
    if isinstance(manifest_or_paths, pd.DataFrame):
        missing = {"video", "path"} - set(manifest_or_paths.columns)
        if missing:
            raise ValueError(f"manifest lacks columns {sorted(missing)}")
        pairs = list(
            zip(manifest_or_paths["video"].astype(str), manifest_or_paths["path"].astype(str), strict=True)
        )
    else:
        pairs = [(str(v), str(p)) for v, p in manifest_or_paths]
    videos = [v for v, _ in pairs]
    if len(set(videos)) != len(videos):
        raise ValueError("duplicate video ids in input")
    for v in videos:
        if not v or "/" in v or "\\" in v or v.startswith("."):
            raise ValueError(f"video id {v!r} is not usable as a file name")
    return pairs


def extract_videos(
    manifest_or_paths: pd.DataFrame | Sequence[tuple[str, str | Path]],
    root: Path,
    frames_dir: Path,
    short_side: int,
    fps: float = 25.0,
    min_frames: int = 16,
    timeout_s: float = 120.0,
    workers: int = 1,
    gt_boxes: dict[str, np.ndarray] | None = None,
    decoder: str = DEFAULT_DECODER,
    retry_excluded: bool = False,
    flush_every_s: float = 30.0,
    progress: bool = True,
    index_dir: Path | None = None,
    done_dir: Path | None = None,
    fmt: str = "npy",
    quality: int = store.DEFAULT_JPEG_QUALITY,
) -> pd.DataFrame:
    """Extract every video into the stored format and return the index.

    Args:
        manifest_or_paths: DataFrame with columns ``video, path`` or a list of
            ``(video_id, relative_path)``; paths are relative to ``root``.
        root: folder the relative paths are resolved against.
        frames_dir: output folder (``data/<dataset>/frames``).
        short_side: stored ``min(H, W)``.
        fps: stored frame rate (nearest-timestamp resampling).
        min_frames: shorter videos are loop-padded to this length and marked ``repaired``.
        timeout_s: per-video wall-clock limit; the worker is killed past it.
        workers: number of decode processes.
        gt_boxes: optional ``{video: (src_frames, 4) float32}`` boxes in source pixels;
            aligned ``<video>.boxes.npy`` files are written next to the frames.
        decoder: ``"module:function"`` with ``decode_video``'s signature, imported in the
            workers (lets tests and alternative backends plug in a real decoder).
        retry_excluded: redo videos the existing index marks ``excluded`` (they are kept
            as-is otherwise, so a resume does not re-time-out on known-bad files).
        flush_every_s: the index is rewritten atomically at least this often, so a killed
            run loses at most this much bookkeeping.
        progress: show a tqdm bar.
        index_dir: folder of this call's ``index.csv`` and ``bad_videos.csv``, listing exactly
            the videos of this call (an extraction chunk's). Default: ``frames_dir`` for the
            index, its parent for ``bad_videos.csv``, and the index keeps the rows of videos
            outside this call (it describes the whole folder).
        done_dir: folder of one ``<video>.json`` marker (its index row) per finished video.
            A video with a marker and its arrays in place is not decoded again even when the
            index is gone.
        fmt: stored format, one of ``asnet.data.store.FORMATS`` (``frames.format``).
        quality: JPEG quality of ``fmt="jpeg"`` (``frames.jpeg_quality``).

    Returns:
        The index DataFrame (columns ``INDEX_COLUMNS``); ``df.attrs`` holds ``processed``
        (videos decoded in this call), ``skipped`` (already done) and ``summary`` (counts).
    """
    frames_dir = Path(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    pairs = _as_pairs(manifest_or_paths)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    if fmt not in store.FORMATS:
        raise ValueError(f"unknown frames.format {fmt!r}; use one of {', '.join(store.FORMATS)}")

    own_index = index_dir is not None
    index_dir = Path(index_dir) if own_index else frames_dir
    index_path = index_dir / "index.csv"
    bad_path = index_dir / "bad_videos.csv" if own_index else bad_videos_path(frames_dir)
    if done_dir is not None:
        done_dir = Path(done_dir)
        done_dir.mkdir(parents=True, exist_ok=True)
    mine = {v for v, _ in pairs}

    # Temp files left by a killed run are never valid outputs.
    _remove_temp_files(frames_dir, mine)

    previous = {str(r["video"]): dict(r) for r in read_index(index_dir).to_dict("records")}
    rows: dict[str, dict[str, Any]] = {}
    tasks: list[dict[str, Any]] = []
    for video, rel in pairs:
        prev = previous.get(video)
        if prev is None and done_dir is not None:
            prev = _read_marker(done_dir, video)
        out = store.store_path(frames_dir, video, fmt)
        done = prev is not None and prev["status"] in (STATUS_OK, STATUS_REPAIRED) and out.exists()
        if gt_boxes is not None and video in gt_boxes and not out.with_name(f"{video}.boxes.npy").exists():
            done = False
        if (prev is not None and prev["status"] == STATUS_EXCLUDED and not retry_excluded
                and not _LOST_TO_A_WRITE.search(str(prev.get("reason", "")))):
            done = True
        if done:
            rows[video] = prev
            continue
        rows[video] = {}  # placeholder keeps input order in the index
        boxes = None if gt_boxes is None else gt_boxes.get(video)
        tasks.append(
            {
                "video": video,
                "path": str(Path(root) / rel),
                "out": str(out),
                "short_side": short_side,
                "fps": fps,
                "min_frames": min_frames,
                "format": fmt,
                "quality": quality,
                "boxes": None if boxes is None else np.asarray(boxes, np.float32),
            }
        )
    if not own_index:
        # Rows for videos outside this call are kept: the index describes the whole folder.
        for video, prev in previous.items():
            rows.setdefault(video, prev)

    def flush() -> pd.DataFrame:
        with writing(index_path):
            return _write_index({v: r for v, r in rows.items() if r}, index_path, bad_path)

    pool = _Pool(min(workers, max(1, len(tasks))), decoder, timeout_s) if tasks else None
    log.info("%s: decoding %d videos in %d decoder processes (%d already done)", index_dir, len(tasks),
             len(pool.slots) if pool else 0, len(pairs) - len(tasks), extra=CONSOLE)
    last_flush = time.monotonic()
    failure: dict[str, Any] | None = None
    try:
        bar = tqdm(
            total=len(tasks),
            desc=f"extract {frames_dir.parent.name}",
            unit="video",
            disable=not progress or not tasks,
        )
        for res in pool.run(tasks) if pool else []:
            video = res["video"]
            if "write_error" in res:
                # The other workers' videos in flight are dropped with their temp files.
                failure = res["write_error"]
                break
            out = store.store_path(frames_dir, video, fmt)
            boxes_out = frames_dir / f"{video}.boxes.npy"
            if res["status"] == STATUS_EXCLUDED:
                # A stale array from an earlier run must not contradict the index.
                store.remove(out)
                store.remove(boxes_out)
            else:
                if "boxes_tmp" in res:
                    store.commit_tmp(res.pop("boxes_tmp"), boxes_out)
                store.commit_tmp(res.pop("tmp"), out)
            rows[video] = res
            if done_dir is not None:
                _write_marker(done_dir, res)
            fault_point("extract.video_done")
            bar.update(1)
            if res["status"] != STATUS_OK:
                bar.set_postfix_str(f"{video}: {res['status']}", refresh=False)
            if time.monotonic() - last_flush > flush_every_s:
                flush()
                last_flush = time.monotonic()
        bar.close()
    finally:
        if pool is not None:
            pool.close()
        _remove_temp_files(frames_dir, mine)
        index = flush()
    if failure is not None:
        decoded = sum(1 for t in tasks if rows[t["video"]])
        log.info("%s: stopped by a failed write after %d of %d videos decoded now", index_dir, decoded, len(tasks))
        raise _write_error(failure)

    counts = index["status"].value_counts()
    summary = {s: int(counts.get(s, 0)) for s in (STATUS_OK, STATUS_REPAIRED, STATUS_EXCLUDED)}
    index.attrs.update(processed=len(tasks), skipped=len(pairs) - len(tasks), summary=summary)
    print(
        f"[frames] {index_dir}: {summary[STATUS_OK]} ok, {summary[STATUS_REPAIRED]} repaired, "
        f"{summary[STATUS_EXCLUDED]} excluded ({len(tasks)} decoded now, {len(pairs) - len(tasks)} already done); "
        f"see {bad_path}"
    )
    return index


# --------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------


@dataclass
class StoreCheck:
    """What `verify_frames` found: files checked, how many matched their checksums, how many
    carry none (written before checksums: structure checked only), and one message per bad
    or missing file (naming it, the damage and the fix)."""

    videos: int = 0
    files: int = 0
    verified: int = 0
    unverified: int = 0
    bad: list[str] = field(default_factory=list)


def verify_frames(frames_dir: Path, progress: bool = False) -> StoreCheck:
    """Check every file the index of `frames_dir` lists (frames and boxes of each video not
    excluded) against its checksums (``asnet.data.store.verify_file``): reads the whole store."""
    frames_dir = Path(frames_dir)
    index = read_index(frames_dir)
    videos = index.loc[index["status"] != STATUS_EXCLUDED, "video"].astype(str).tolist()
    check = StoreCheck(videos=len(videos))
    for video in tqdm(videos, desc=f"verify {frames_dir.parent.name}", unit="video", disable=not progress):
        path = store.find_video(frames_dir, video)
        if path is None:
            check.bad.append(f"{frames_dir / video}.*: no frame file, though index.csv lists {video}; run "
                             "`asnet extract` again (it decodes exactly the missing videos)")
            continue
        boxes = frames_dir / f"{video}.boxes.npy"
        for f in (path, boxes) if boxes.exists() else (path,):
            check.files += 1
            try:
                if store.verify_file(f):
                    check.verified += 1
                else:
                    check.unverified += 1
            except store.StoreError as exc:
                check.bad.append(str(exc))
    return check


def decode_files(
    files: Sequence[tuple[str, Path]],
    out_dir: Path,
    short_side: int,
    fps: float = 25.0,
    min_frames: int = 1,
    timeout_s: float = 120.0,
    workers: int = 1,
    decoder: str = DEFAULT_DECODER,
    fmt: str = "npy",
    quality: int = store.DEFAULT_JPEG_QUALITY,
) -> Iterator[dict[str, Any]]:
    """Decode `files` ((video id, path) pairs) into `out_dir` exactly as ``extract_videos`` does
    (its decoder in worker processes killed past `timeout_s`, resampling, resize, loop-padding
    to `min_frames`, stored format): yield each video's index row once its file is in place at
    ``store.store_path(out_dir, video, fmt)`` (order of completion). An excluded video's row
    says why in ``reason``; a failed write raises as in extraction."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [{"video": video, "path": str(path), "out": str(store.store_path(out_dir, video, fmt)),
              "short_side": short_side, "fps": fps, "min_frames": min_frames, "format": fmt, "quality": quality,
              "boxes": None} for video, path in files]
    if not tasks:
        return
    pool = _Pool(min(workers, len(tasks)), decoder, timeout_s)
    try:
        for res in pool.run(tasks):
            if "write_error" in res:
                raise _write_error(res["write_error"])
            if res["status"] != STATUS_EXCLUDED:
                store.commit_tmp(res.pop("tmp"), store.store_path(out_dir, res["video"], fmt))
            yield res
    finally:
        pool.close()
        _remove_temp_files(out_dir, {t["video"] for t in tasks})
