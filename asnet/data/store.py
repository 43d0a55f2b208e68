"""The frame store's file formats: one file per video, written once at extraction, read per clip.

``frames.format`` selects the format (``FORMATS``); every later stage finds a video's file by
its suffix, so readers need no configuration:

* ``npy`` (``<video>.npy``): uint8 (T, H, W, 3), read through a memory map. Fastest to read
  (no decoding), ~6.5 MB per video-second at short side 256. It has no version field: an
  ``.npy`` store is version 1 of this format, as written by every release so far. Its
  checksum lives beside it in ``<video>.npy.crc32`` (``CHECKSUM_SUFFIX``): the CRC-32 of the
  whole file and its size (``<8 hex digits> <bytes>``), written at extraction and checked by
  ``verify_file`` (``asnet verify-store``), not per clip: a clip reads a few frames of a
  memory map, and hashing the whole file for it would cost more than the read (docs/reliability.md).
  ``<video>.boxes.npy`` (ground-truth boxes) has its ``.crc32`` likewise.
* ``jpeg`` (``<video>.jpgpack``): the frames as JPEG images (libjpeg-turbo through
  ``simplejpeg``, 4:2:0, quality ``frames.jpeg_quality``) packed into one file behind an
  offset index, so a clip costs one open, one read of its frames' bytes and the decoding of
  those frames only. ~0.4 MB per video-second at short side 256 (docs/performance.md).

``jpgpack`` layout (little endian): magic ``ASNETJPK`` (8 bytes), format version (u32),
T, H, W (3 x u32), then T + 1 offsets (u64, from the start of the file; the last one is the
file size), then (version 2) T CRC-32s (u32, one per JPEG image) and the CRC-32 (u32) of
every byte before it, then the T JPEG images back to back. Version 2 (``JPEG_VERSION``) is
written; version 1 (no checksums: the images follow the offsets) is still read. The header's
CRC is checked when the file is opened, a frame's CRC when the frame is decoded (a few
microseconds next to a JPEG decode), so a flipped bit anywhere in a version-2 pack is a
``StoreError``. Another version is refused with a message saying how to re-extract; a file
whose size is not its last offset (truncated, or appended to) is refused likewise, before any
decoding.

Every problem with a stored file raises ``StoreError`` naming the file and the fix; the
training loader skips such a video and counts it (asnet.data.clips), evaluation stops.
Files are written under a temp name, fsynced and renamed into place (``write_tmp``,
``commit_tmp``): a store file is complete or absent, and a failed write (a full disk) is an
``OSError``, never a video to exclude.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from asnet.faults import fault_point

FORMATS: tuple[str, ...] = ("npy", "jpeg")
SUFFIXES: dict[str, str] = {"npy": ".npy", "jpeg": ".jpgpack"}
JPEG_MAGIC = b"ASNETJPK"
JPEG_VERSION = 2  # written; JPEG_VERSIONS are read
JPEG_VERSIONS: tuple[int, ...] = (1, 2)
CHECKSUM_SUFFIX = ".crc32"
_BLOCK = 16 << 20  # bytes hashed per read when a whole file is checked
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


def checksum_path(path: Path) -> Path:
    """``<file>.crc32``: the checksum file of an ``.npy`` store file (frames or boxes)."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


class _Crc32Writer:
    """A write-only file object that forwards to `fh` and keeps the CRC-32 and size of what
    went through. (np.save then writes the array in chunks through `write`, where a short
    write raises the OSError of the disk, errno included, rather than numpy's errno-less
    "N requested and M written".)"""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> int:
        self.crc = zlib.crc32(data, self.crc)
        self.size += memoryview(data).nbytes
        return self.fh.write(data)


def _jpeg_pack(images: list[bytes], h: int, w: int, version: int) -> bytes:
    t = len(images)
    if version not in JPEG_VERSIONS:
        raise ValueError(f"jpgpack version {version}: this code writes versions {', '.join(map(str, JPEG_VERSIONS))}")
    start = _HEADER.size + _table_size(t, version)
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in images])]).astype("<u8") + start
    head = _HEADER.pack(JPEG_MAGIC, version, t, h, w) + offsets.tobytes()
    if version >= 2:
        head += np.array([zlib.crc32(b) for b in images], dtype="<u4").tobytes()
        head += struct.pack("<I", zlib.crc32(head))
    return b"".join([head, *images])


def _table_size(t: int, version: int) -> int:
    """Bytes of a pack's tables after the fixed header: offsets, and in version 2 the frame
    CRCs and the header CRC."""
    return 8 * (t + 1) + (4 * t + 4 if version >= 2 else 0)


def encode_jpeg_pack(frames: np.ndarray, quality: int, version: int = JPEG_VERSION) -> bytes:
    """The ``jpgpack`` bytes of uint8 (T, H, W, 3) RGB frames; `version` 1 (no checksums)
    only to compare with or test what older releases wrote."""
    import simplejpeg

    frames = np.ascontiguousarray(frames)
    t, h, w, _ = frames.shape
    images = [simplejpeg.encode_jpeg(f, quality=int(quality), colorspace="RGB", colorsubsampling="420")
              for f in frames]
    return _jpeg_pack(images, h, w, version)


def rewrite_jpeg_pack(path: Path, version: int) -> None:
    """Rewrite a ``.jpgpack`` in another format `version`, the same JPEG images (to compare
    the versions: benchmarks/loader.py's ``jpeg_pack_v1``)."""
    pack = _JpegPack(Path(path))
    data = Path(path).read_bytes()
    images = [data[a:b] for a, b in zip(pack.offsets[:-1], pack.offsets[1:], strict=True)]
    tmp = Path(path).with_name(Path(path).name + f".tmp{os.getpid()}")
    tmp.write_bytes(_jpeg_pack(images, pack.shape[1], pack.shape[2], version))
    os.replace(tmp, path)


def _write_checksum(path: Path, crc: int, size: int) -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(f"{crc:08x} {size}\n")
        fh.flush()
        os.fsync(fh.fileno())


def write_tmp(path: Path, frames: np.ndarray, fmt: str, quality: int) -> Path:
    """Write `frames` in `fmt` next to `path` under a temp name, fsynced, and return it (an
    ``npy`` file gets its temp checksum file too); `commit_tmp` renames them into place, so a
    store file is either complete or absent. A failed write (a full disk: ENOSPC, EDQUOT,
    EIO) raises its OSError and leaves no temp file."""
    path = Path(path)
    if fmt not in SUFFIXES:
        raise ValueError(f"unknown frames.format {fmt!r}; use one of {', '.join(FORMATS)}")
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fault_point("store.write")
            if fmt == "npy":
                out = _Crc32Writer(fh)
                np.save(out, np.ascontiguousarray(frames))  # np.save(path) would append ".npy" to the temp name
            else:
                fh.write(encode_jpeg_pack(frames, quality))
            fh.flush()
            # Durable before the rename: the index row and done marker that follow it are
            # trusted by every rerun.
            os.fsync(fh.fileno())
        if fmt == "npy":
            _write_checksum(checksum_path(tmp), out.crc, out.size)
    except BaseException:
        tmp.unlink(missing_ok=True)
        checksum_path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def commit_tmp(tmp: Path, path: Path) -> None:
    """Rename a `write_tmp` file (and its checksum file) to `path`. The old checksum file goes
    first, so a kill in between leaves a file without one (unverified), never a mismatch."""
    tmp, path = Path(tmp), Path(path)
    checksum_path(path).unlink(missing_ok=True)
    os.replace(tmp, path)
    if checksum_path(tmp).exists():
        os.replace(checksum_path(tmp), checksum_path(path))


def remove(path: Path) -> None:
    """Delete a store file and its checksum file, if there."""
    Path(path).unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------


class StoredVideo:
    """One stored video: ``shape`` (T, H, W, 3) and ``read(idx)`` of the frames a clip needs."""

    shape: tuple[int, int, int, int]

    def read(self, idx: np.ndarray) -> np.ndarray:
        """uint8 (len(idx), H, W, 3) frames `idx` (any order, repeats allowed)."""
        raise NotImplementedError


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        # allow_pickle=False: an object array (pickled Python objects) is refused, never run.
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # a damaged header also raises SyntaxError (numpy parses it as a literal)
        raise StoreError(f"{path}: unreadable .npy {what} file ({exc}); {_fix(path)}") from None


class _NpyVideo(StoredVideo):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.arr = _load_npy(path, "frame")
        if self.arr.ndim != 4 or self.arr.shape[3] != 3 or self.arr.dtype != np.uint8:
            raise StoreError(f"{path}: holds {self.arr.dtype} {self.arr.shape}, not uint8 (T, H, W, 3); {_fix(path)}")
        self.shape = tuple(int(s) for s in self.arr.shape)  # type: ignore[assignment]

    def read(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx)
        # Consecutive frames read as a slice (one sequential read); others gather theirs.
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)):
            return np.array(self.arr[idx[0] : idx[0] + len(idx)])
        return np.array(self.arr[idx])


def open_boxes(path: Path) -> np.ndarray:
    """The memory-mapped float32 (T, 4) boxes of a ``<video>.boxes.npy``; StoreError if unreadable."""
    arr = _load_npy(Path(path), "boxes")
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype != np.float32:
        raise StoreError(f"{path}: holds {arr.dtype} {arr.shape}, not float32 (T, 4) boxes; {_fix(path)}")
    return arr


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
                if version not in JPEG_VERSIONS:
                    raise StoreError(
                        f"{path}: .jpgpack format version {version}, but this version of asnet reads versions "
                        f"{', '.join(map(str, JPEG_VERSIONS))} only; the store was written by another release: "
                        f"{_fix(path)}"
                    )
                size = os.fstat(fh.fileno()).st_size
                n_table = _table_size(t, version)
                # A damaged T must not make us read (or allocate) more than the file holds.
                raw = fh.read(n_table) if t >= 1 and _HEADER.size + n_table <= size else b""
        except OSError as exc:
            raise StoreError(f"{path}: cannot read the frame file ({exc}); {_fix(path)}") from None
        if t < 1 or len(raw) < n_table:
            raise StoreError(f"{path}: truncated .jpgpack file (offset table cut short); {_fix(path)}")
        self.crcs: np.ndarray | None = None
        if version >= 2:
            (stored,) = struct.unpack_from("<I", raw, n_table - 4)
            if zlib.crc32(head + raw[:-4]) != stored:
                raise StoreError(f"{path}: .jpgpack header fails its checksum (damaged on disk); {_fix(path)}")
            self.crcs = np.frombuffer(raw, dtype="<u4", count=t, offset=8 * (t + 1))
        self.offsets = np.frombuffer(raw, dtype="<u8", count=t + 1).astype(np.int64)
        if (self.offsets[-1] != size or self.offsets[0] != _HEADER.size + n_table
                or np.any(np.diff(self.offsets) <= 0)):
            raise StoreError(f"{path}: .jpgpack file of {size} bytes, its index says {self.offsets[-1]} "
                             f"(truncated or overwritten); {_fix(path)}")
        self.version = int(version)
        self.shape = (int(t), int(h), int(w), 3)

    def check_frame(self, j: int, data: bytes) -> None:
        """StoreError if frame `j`'s bytes do not match its CRC (version 2)."""
        if self.crcs is not None and zlib.crc32(data) != int(self.crcs[j]):
            raise StoreError(f"{self.path}: frame {j} fails its checksum (damaged on disk); {_fix(self.path)}")

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
            data = span[a:b]
            self.check_frame(j, data)
            try:
                # fastupsample: ~9% faster, 0.05 dB (docs/performance.md)
                img = simplejpeg.decode_jpeg(data, colorspace="RGB", fastupsample=True, buffer=out[k])
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


# --------------------------------------------------------------------------------------
# Verifying
# --------------------------------------------------------------------------------------


def _file_crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def _check_against_checksum_file(path: Path) -> bool:
    side = checksum_path(path)
    try:
        text = side.read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{side}: unreadable checksum file ({exc}); {_fix(path)}") from None
    try:
        want_crc, want_size = (int(text.split()[0], 16), int(text.split()[1]))
    except (ValueError, IndexError):
        raise StoreError(f"{side}: not a checksum file ({text[:40]!r}); {_fix(path)}") from None
    try:
        size = path.stat().st_size
        crc = _file_crc(path) if size == want_size else None
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the file ({exc}); {_fix(path)}") from None
    if crc is None:
        raise StoreError(f"{path}: {size} bytes, {want_size} when written (truncated or appended to); {_fix(path)}")
    if crc != want_crc:
        raise StoreError(f"{path}: CRC-32 {crc:08x}, {want_crc:08x} when written (damaged on disk); {_fix(path)}")
    return True


def verify_file(path: Path) -> bool:
    """Check a store file (frames of any format, or ``.boxes.npy``) byte for byte against its
    checksums, and its structure. True: every byte matched; False: the file carries no
    checksum (a version-1 ``.jpgpack``, an ``.npy`` without its ``.crc32``), so only its
    structure was checked. StoreError (naming the file, the damage and the fix) otherwise."""
    path = Path(path)
    if path.name.endswith(".boxes.npy"):
        open_boxes(path)
        return _check_against_checksum_file(path)
    if format_of(path) == "npy":
        _NpyVideo(path)
        return _check_against_checksum_file(path)
    pack = _JpegPack(path)
    if pack.crcs is None:
        return False
    try:
        with open(path, "rb") as fh:
            fh.seek(int(pack.offsets[0]))
            images = fh.read()
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the file ({exc}); {_fix(path)}") from None
    rel = pack.offsets - pack.offsets[0]
    for j in range(pack.shape[0]):
        pack.check_frame(j, images[rel[j] : rel[j + 1]])
    return True
