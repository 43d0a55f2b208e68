"""The frame store's file formats: one file per video, written once at extraction, read per clip.

``frames.format`` selects the format (``FORMATS``); every later stage finds a video's file by
its suffix, so readers need no configuration:

* ``npy`` (``<video>.npy``): uint8 (T, H, W, 3), read through a memory map. Fastest to read
  (no decoding), ~6.5 MB per video-second at short side 256. It has no version field: an
  ``.npy`` store is version 1 of this format, as written by every release so far.
* ``jpeg`` (``<video>.jpgpack``): the frames as JPEG images (libjpeg-turbo through
  ``simplejpeg``, 4:2:0, quality ``frames.jpeg_quality``) packed into one file behind an
  offset index, so a clip costs one open, one read of its frames' bytes and the decoding of
  those frames only. ~0.4 MB per video-second at short side 256 (docs/performance.md).

``jpgpack`` layout (little endian): magic ``ASNETJPK`` (8 bytes), format version (u32),
T, H, W (3 x u32), then T + 1 offsets (u64, from the start of the file; the last one is the
file size), then the T JPEG images back to back. A version other than ``JPEG_VERSION`` is
refused with a message saying how to re-extract; a file whose size is not its last offset
(truncated, or appended to) is refused likewise, before any decoding.

Every problem with a stored file raises ``StoreError`` naming the file and the fix; the
training loader skips such a video and counts it (asnet.data.clips).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

FORMATS: tuple[str, ...] = ("npy", "jpeg")
SUFFIXES: dict[str, str] = {"npy": ".npy", "jpeg": ".jpgpack"}
JPEG_MAGIC = b"ASNETJPK"
JPEG_VERSION = 1
# 4:2:0 at quality 80 keeps a 256-short-side store under the JPEG-folder layout's ~460 kB per
# video-second (docs/performance.md); the crops shrink the frames by 1.4-2.3x anyway.
DEFAULT_JPEG_QUALITY = 80
_HEADER = struct.Struct("<8sIIII")  # magic, version, T, H, W


class StoreError(RuntimeError):
    """A stored video file is unreadable: truncated, corrupt, or written by another version."""


def _fix(path: Path) -> str:
    return (f"delete {path} and its marker in ../frames_chunks/.done/ (or the whole frame store) and run "
            "`asnet extract` again")


def store_path(frames_dir: Path, video: str, fmt: str) -> Path:
    """``<frames_dir>/<video><suffix of fmt>``."""
    if fmt not in SUFFIXES:
        raise ValueError(f"unknown frames.format {fmt!r}; use one of {', '.join(FORMATS)}")
    return Path(frames_dir) / f"{video}{SUFFIXES[fmt]}"


def find_video(frames_dir: Path, video: str) -> Path | None:
    """The stored file of `video` in whichever format it was extracted, or None."""
    for fmt in FORMATS:
        path = store_path(frames_dir, video, fmt)
        if path.exists():
            return path
    return None


def format_of(path: Path) -> str:
    """The format of a stored file, from its suffix."""
    for fmt, suffix in SUFFIXES.items():
        if Path(path).name.endswith(suffix):
            return fmt
    raise ValueError(f"{path}: not a frame store file (suffixes {', '.join(SUFFIXES.values())})")


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


def encode_jpeg_pack(frames: np.ndarray, quality: int) -> bytes:
    """The ``jpgpack`` bytes of uint8 (T, H, W, 3) RGB frames."""
    import simplejpeg

    frames = np.ascontiguousarray(frames)
    t, h, w, _ = frames.shape
    images = [simplejpeg.encode_jpeg(f, quality=int(quality), colorspace="RGB", colorsubsampling="420")
              for f in frames]
    start = _HEADER.size + 8 * (t + 1)
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in images])]).astype("<u8") + start
    return b"".join([_HEADER.pack(JPEG_MAGIC, JPEG_VERSION, t, h, w), offsets.tobytes(), *images])


def write_tmp(path: Path, frames: np.ndarray, fmt: str, quality: int) -> Path:
    """Write `frames` in `fmt` next to `path` under a temp name and return it; the caller
    renames it into place (os.replace), so a store file is either complete or absent."""
    tmp = Path(path).with_name(Path(path).name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        if fmt == "npy":
            np.save(fh, np.ascontiguousarray(frames))  # np.save(path) would append ".npy" to the temp name
        elif fmt == "jpeg":
            fh.write(encode_jpeg_pack(frames, quality))
        else:
            raise ValueError(f"unknown frames.format {fmt!r}; use one of {', '.join(FORMATS)}")
    return tmp


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


class StoredVideo:
    """One stored video: ``shape`` (T, H, W, 3) and ``read(idx)`` of the frames a clip needs."""

    shape: tuple[int, int, int, int]

    def read(self, idx: np.ndarray) -> np.ndarray:
        """uint8 (len(idx), H, W, 3) frames `idx` (any order, repeats allowed)."""
        raise NotImplementedError


class _NpyVideo(StoredVideo):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.arr = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as exc:
            raise StoreError(f"{path}: unreadable .npy frame file ({exc}); {_fix(path)}") from None
        if self.arr.ndim != 4 or self.arr.shape[3] != 3 or self.arr.dtype != np.uint8:
            raise StoreError(f"{path}: holds {self.arr.dtype} {self.arr.shape}, not uint8 (T, H, W, 3); {_fix(path)}")
        self.shape = tuple(int(s) for s in self.arr.shape)  # type: ignore[assignment]

    def read(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        # Consecutive frames read as a slice (one sequential read); others gather theirs.
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)):
            return np.array(self.arr[idx[0] : idx[0] + len(idx)])
        return np.array(self.arr[idx])


class _JpegPack(StoredVideo):
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as fh:
                head = fh.read(_HEADER.size)
                if len(head) < _HEADER.size:
                    raise StoreError(f"{path}: truncated .jpgpack file (header cut short); {_fix(path)}")
                magic, version, t, h, w = _HEADER.unpack(head)
                if magic != JPEG_MAGIC:
                    raise StoreError(f"{path}: not a .jpgpack frame file (bad magic {magic!r}); {_fix(path)}")
                if version != JPEG_VERSION:
                    raise StoreError(
                        f"{path}: .jpgpack format version {version}, but this version of asnet reads version "
                        f"{JPEG_VERSION} only; the store was written by another release: {_fix(path)}"
                    )
                raw = fh.read(8 * (t + 1))
                size = os.fstat(fh.fileno()).st_size
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the frame file ({exc}); {_fix(path)}") from None
        if t < 1 or len(raw) < 8 * (t + 1):
            raise StoreError(f"{path}: truncated .jpgpack file (offset table cut short); {_fix(path)}")
        self.offsets = np.frombuffer(raw, dtype="<u8").astype(np.int64)
        if self.offsets[-1] != size or np.any(np.diff(self.offsets) <= 0):
            raise StoreError(f"{path}: .jpgpack file of {size} bytes, its index says {self.offsets[-1]} "
                             f"(truncated or overwritten); {_fix(path)}")
        self.shape = (int(t), int(h), int(w), 3)

    def read(self, idx: np.ndarray) -> np.ndarray:
        import simplejpeg

        idx = np.asarray(idx, dtype=np.int64)
        t, h, w, _ = self.shape
        if len(idx) and (idx.min() < 0 or idx.max() >= t):
            raise IndexError(f"{self.path}: frames {idx.min()}..{idx.max()} of a {t}-frame video")
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
        if not len(idx):
            return out
        # One read of the byte span of the clip's frames (a clip is consecutive frames, a
        # looped one wraps around the whole video, which is short then).
        lo, hi = int(idx.min()), int(idx.max())
        base = int(self.offsets[lo])
        with open(self.path, "rb") as fh:
            fh.seek(base)
            span = fh.read(int(self.offsets[hi + 1]) - base)
        decoded: dict[int, int] = {}
        for k, j in enumerate(idx.tolist()):
            if j in decoded:  # a looped clip repeats frames: decode each once
                out[k] = out[decoded[j]]
                continue
            a, b = int(self.offsets[j]) - base, int(self.offsets[j + 1]) - base
            try:
                # fastupsample: ~9% faster, 0.05 dB (docs/performance.md)
                img = simplejpeg.decode_jpeg(span[a:b], colorspace="RGB", fastupsample=True, buffer=out[k])
            except ValueError as exc:
                raise StoreError(f"{self.path}: frame {j} does not decode ({exc}); {_fix(self.path)}") from None
            if img.shape != (h, w, 3):
                raise StoreError(f"{self.path}: frame {j} is {img.shape[:2]}, the header says {(h, w)}; "
                                 f"{_fix(self.path)}")
            decoded[j] = k
        return out


def open_video(path: Path) -> StoredVideo:
    """Open a stored video file of any format (by suffix); StoreError if it is unreadable."""
    path = Path(path)
    fmt = format_of(path)
    return _NpyVideo(path) if fmt == "npy" else _JpegPack(path)
