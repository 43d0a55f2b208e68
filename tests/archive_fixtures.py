"""Test helpers: tiny videos and real RAR archives in the official UCF-101 / HMDB-51 layouts.

Creating RAR archives normally needs the non-free `rar` tool, which Debian main does not
carry. The RAR 1.5-4.x format is simple for uncompressed ("stored", method 0x30) entries,
so :func:`write_rar4` writes such archives directly: marker block, archive header, one file
header (with CRC32) plus data per file, end-of-archive block. `lsar` reports them as RAR and
`file` as "RAR archive data, v2.0". Compressed RAR (and RAR5) cannot be produced here; the
unpacking code does not depend on the compression method, the tool does.
"""

from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from asnet.data.synthetic import write_video

_RAR_MARK = b"Rar!\x1a\x07\x00"
_DOS_TIME_2025_01_01 = (45 << 25) | (1 << 21) | (1 << 16)
_HOST_UNIX = 3


def _block(head_type: int, flags: int, body: bytes) -> bytes:
    # HEAD_CRC is the low 16 bits of CRC32 over everything after it
    raw = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
    return struct.pack("<H", zlib.crc32(raw) & 0xFFFF) + raw


def write_rar4(path: Path, files: dict[str, bytes]) -> Path:
    """Write a RAR 4.x archive storing ``files`` ({'dir/name': data}) uncompressed."""
    out = bytearray(_RAR_MARK)
    out += _block(0x73, 0, bytes(6))  # main archive header, no flags
    for name, data in files.items():
        encoded = name.replace("/", "\\").encode()  # RAR 1.5-4 paths use backslashes
        body = struct.pack(
            "<IIBIIBBHI", len(data), len(data), _HOST_UNIX, zlib.crc32(data), _DOS_TIME_2025_01_01,
            20, 0x30, len(encoded), 0o100644,  # unpack version 2.0, method "store", mode rw-r--r--
        ) + encoded
        out += _block(0x74, 0x8000, body) + data  # 0x8000: data follows the header
    out += _block(0x7B, 0x4000, b"")  # end of archive
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


def tiny_avi_bytes(seed: int, frames: int = 8, size: int = 32) -> bytes:
    """A real mpeg4 .avi of ``frames`` ``size``x``size`` frames (a moving bar), as bytes."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=3, dtype=np.uint8)
    video = np.zeros((frames, size, size, 3), dtype=np.uint8) + base
    for t in range(frames):
        video[t, :, (t * 3) % size : (t * 3) % size + 4] = 255
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"asnet-tiny-{os.getpid()}-{seed}.avi"
    try:
        write_video(tmp, video, fps=25)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def ucf101_archives(out: Path, classes: list[str], per_class: int) -> tuple[Path, Path, dict[str, bytes]]:
    """``UCF101.rar`` + split zip in the official layout; returns them and {relpath: bytes}."""
    names = [f"{c}/v_{c}_g{g:02d}_c01.avi" for c in classes for g in range(1, per_class + 1)]
    videos = {name: tiny_avi_bytes(seed) for seed, name in enumerate(names)}
    rar = write_rar4(out / "UCF101.rar", {f"UCF-101/{k}": v for k, v in videos.items()})
    zpath = out / "UCF101TrainTestSplits-RecognitionTask.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("ucfTrainTestlist/classInd.txt", "".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)))
        train = [k for k in videos if "_g01_" not in k]
        test = [k for k in videos if "_g01_" in k]
        label = {c: i for i, c in enumerate(classes, 1)}
        z.writestr("ucfTrainTestlist/trainlist01.txt", "".join(f"{k} {label[k.split('/')[0]]}\r\n" for k in train))
        z.writestr("ucfTrainTestlist/testlist01.txt", "".join(f"{k}\r\n" for k in test))
    return rar, zpath, videos


def hmdb51_videos(classes: list[str], per_class: int) -> dict[str, bytes]:
    """{'<class>/<video>.avi': real video bytes} with HMDB-like names (odd characters included)."""
    names = [f"{c}/Boy_(#{k})_{c}_f_nm_np1_fr_med_{k}.avi" for c in classes for k in range(per_class)]
    return {name: tiny_avi_bytes(seed) for seed, name in enumerate(names)}


def hmdb51_split_lines(videos: dict[str, bytes], cls: str) -> str:
    """One ``<class>_test_split<k>.txt``: first video test (2), last unused (0), rest train (1);
    trailing spaces as in the official files."""
    names = sorted(k.split("/", 1)[1] for k in videos if k.startswith(f"{cls}/"))
    flags = ["2"] + ["1"] * (len(names) - 2) + ["0"]
    return "".join(f"{n} {f} \n" for n, f in zip(names, flags, strict=True))


def hmdb51_archives(out: Path, classes: list[str], per_class: int) -> tuple[Path, Path, dict[str, bytes]]:
    """``hmdb51_org.rar`` (a RAR of per-class RARs) + ``test_train_splits.rar``."""
    videos = hmdb51_videos(classes, per_class)
    inner_dir = out / "inner"
    inner = {}
    for c in classes:
        p = write_rar4(inner_dir / f"{c}.rar", {k: v for k, v in videos.items() if k.startswith(f"{c}/")})
        inner[f"{c}.rar"] = p.read_bytes()
    shutil.rmtree(inner_dir)
    rar = write_rar4(out / "hmdb51_org.rar", inner)
    lists = {
        f"testTrainMulti_7030_splits/{c}_test_split{k}.txt": hmdb51_split_lines(videos, c).encode()
        for c in classes
        for k in (1, 2, 3)
    }
    splits = write_rar4(out / "test_train_splits.rar", lists)
    return rar, splits, videos


def require_unar() -> None:
    """Skip when `unar` is absent, except under CI, where a missing tool is a failure."""
    if shutil.which("unar") is None:
        msg = "`unar` is not installed: apt-get install unar"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
