"""Damaged store files (docs/reliability.md, "Full disk and damaged files"): a flipped bit
anywhere in a version-2 .jpgpack is a StoreError when the frame is read, anywhere in an .npy
(frames or boxes) when `asnet verify-store` checks it; the training loader skips such a
video and counts it, evaluation stops with one line naming the file; version-1 packs still
read; what extraction stores is unchanged apart from the checksums."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_store import textured, write_index, write_video

from asnet import paths
from asnet.config import load_config
from asnet.data.clips import ClipDataset, VideoClips
from asnet.data.store import (
    DEFAULT_JPEG_QUALITY,
    StoreError,
    checksum_path,
    commit_tmp,
    encode_jpeg_pack,
    open_boxes,
    open_video,
    store_path,
    verify_file,
    write_tmp,
)

DATASET = "synthetic_tiny"
TINY = ["preset=tiny"]


def _flipped(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << (pos % 8)
    return bytes(out)


def _read_all(path: Path) -> np.ndarray:
    video = open_video(path)
    return video.read(np.arange(video.shape[0]))


def _positions(n: int, header: int, samples: int = 300) -> list[int]:
    """Every header byte and `samples` spread over the rest."""
    return sorted(set(range(header)) | set(np.linspace(header, n - 1, samples).astype(int).tolist()))


def test_every_sampled_bit_flip_in_a_jpeg_pack_is_a_store_error(tmp_path: Path) -> None:
    """A flip in the header or tables fails the header CRC on open (or its magic, version or
    size check), one in a frame fails that frame's CRC; a version-1 pack decodes most flipped
    frames silently, which is what the checksums are for."""
    frames = textured(16, 24, 32)
    path = write_video(tmp_path, "v", frames, "jpeg")
    data = path.read_bytes()
    header = 24 + 8 * 17 + 4 * 16 + 4
    for pos in _positions(len(data), header):
        path.write_bytes(_flipped(data, pos))
        with pytest.raises(StoreError, match=r"v\.jpgpack: "):
            _read_all(path)
    v1 = encode_jpeg_pack(frames, DEFAULT_JPEG_QUALITY, version=1)
    silent = 0
    for pos in np.linspace(24 + 8 * 17, len(v1) - 1, 100).astype(int):
        path.write_bytes(_flipped(v1, int(pos)))
        try:
            _read_all(path)
            silent += 1
        except StoreError:
            pass
    assert silent > 50, silent


@pytest.mark.parametrize("what", ["frames", "boxes"])
def test_every_sampled_bit_flip_in_an_npy_file_fails_verification(tmp_path: Path, what: str) -> None:
    arr = textured(6, 16, 16) if what == "frames" else np.linspace(0, 9, 6 * 4, dtype=np.float32).reshape(6, 4)
    path = tmp_path / ("v.npy" if what == "frames" else "v.boxes.npy")
    commit_tmp(write_tmp(path, arr, "npy", 0), path)
    assert verify_file(path)
    data = path.read_bytes()
    for pos in _positions(len(data), 128, 200):
        path.write_bytes(_flipped(data, pos))
        with pytest.raises(StoreError, match=rf"{path.name}: "):
            verify_file(path)
    path.write_bytes(data + b"\0")
    with pytest.raises(StoreError, match=r"appended to"):
        verify_file(path)
    path.write_bytes(data)
    checksum_path(path).write_text("not a checksum")
    with pytest.raises(StoreError, match=rf"{path.name}\.crc32: not a checksum file"):
        verify_file(path)
    checksum_path(path).unlink()
    assert verify_file(path) is False  # no checksum: structure checked, reported as unverified


def test_store_bytes_are_unchanged_but_for_the_checksums(tmp_path: Path) -> None:
    """The .npy is what np.save writes, its checksum file the CRC-32 and size of those bytes;
    a version-2 pack holds the version-1 pack's JPEG images byte for byte, and both read to
    the same frames (version 1 unverified)."""
    import zlib

    frames = textured(8, 24, 32)
    npy = write_video(tmp_path, "a", frames, "npy")
    np.save(tmp_path / "ref.npy", frames)
    assert npy.read_bytes() == (tmp_path / "ref.npy").read_bytes()
    data = npy.read_bytes()
    assert checksum_path(npy).read_text() == f"{zlib.crc32(data):08x} {len(data)}\n"
    v2 = write_video(tmp_path, "b", frames, "jpeg")
    v1 = tmp_path / "c.jpgpack"
    v1.write_bytes(encode_jpeg_pack(frames, DEFAULT_JPEG_QUALITY, version=1))
    start2, start1 = 24 + 8 * 9 + 4 * 8 + 4, 24 + 8 * 9
    assert v2.read_bytes()[start2:] == v1.read_bytes()[start1:]
    assert np.array_equal(_read_all(v1), _read_all(v2))
    assert verify_file(v2) is True and verify_file(v1) is False
    assert not list(tmp_path.glob("*.tmp*"))


def test_object_array_npy_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    """np.save of dtype=object (pickled objects): refused unread, as frames and as boxes; a
    training item with such boxes is skipped, evaluation stops with the file named."""
    bad = tmp_path / "x.npy"
    np.save(bad, np.empty((2, 4, 4, 3), dtype=object))
    with pytest.raises(StoreError, match=r"x\.npy: unreadable \.npy frame file"):
        open_video(bad)
    videos = {v: textured(8, 16, 16, seed=i) for i, v in enumerate(["a", "b"])}
    for v, a in videos.items():
        write_video(tmp_path, v, a, "npy")
    write_index(tmp_path, videos)
    boxes = tmp_path / "b.boxes.npy"
    np.save(boxes, np.array([{"x0": 1}] * 8, dtype=object))
    with pytest.raises(StoreError, match=r"b\.boxes\.npy: unreadable \.npy boxes file"):
        open_boxes(boxes)
    m = pd.DataFrame({"video": list(videos), "label": [0, 1]})
    item = ClipDataset(m, tmp_path, clip_len=4)[1]
    assert item["skipped"] == "b" and "b.boxes.npy" in item["reason"]
    with pytest.raises(StoreError, match=r"b\.boxes\.npy"):
        VideoClips(m, tmp_path, clip_len=4)[1]


def test_loader_skips_a_bit_flipped_pack_and_evaluation_refuses_it(tmp_path: Path) -> None:
    videos = {v: textured(10, 24, 32, seed=i) for i, v in enumerate(["a", "b", "c"])}
    for v, a in videos.items():
        write_video(tmp_path, v, a, "jpeg")
    write_index(tmp_path, videos)
    bad = store_path(tmp_path, "b", "jpeg")
    data = bad.read_bytes()
    bad.write_bytes(_flipped(data, len(data) - 200))  # inside the last frame
    m = pd.DataFrame({"video": list(videos), "label": [0, 1, 2]})
    ds = ClipDataset(m, tmp_path, clip_len=10)  # every frame
    assert "clip" in ds[0] and "clip" in ds[2]
    assert ds[1]["skipped"] == "b" and "b.jpgpack: frame 9 fails its checksum" in ds[1]["reason"]
    with pytest.raises(StoreError, match=r"b\.jpgpack: frame 9 fails its checksum"):
        VideoClips(m, tmp_path, clip_len=4)[1]


def test_videos_without_frames_name_the_command_that_extracts_them(tmp_path: Path) -> None:
    frames = tmp_path / "mine" / "frames"
    videos = {v: textured(8, 16, 16, seed=i) for i, v in enumerate(["a", "b"])}
    for v, a in videos.items():
        write_video(frames, v, a, "npy")
    write_index(frames, videos)
    store_path(frames, "b", "npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 videos have no frames in .*mine/frames, e\.g\. \['b'\]; run "
                                                r"`asnet extract --dataset mine`"):
        ClipDataset(pd.DataFrame({"video": ["a", "b"], "label": [0, 1]}), frames, clip_len=4)


def _asnet(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "asnet.cli", *args, "--no-progress", *[a for o in TINY for a in ("--set", o)]]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)


def _one_line(proc: subprocess.CompletedProcess, command: str) -> str:
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"asnet {command}: error: "), proc.stderr[-3000:]
    return lines[0]


def test_verify_store_lists_each_bad_file_and_exits_2(tiny_workdir: Path, tmp_path: Path) -> None:
    """A clean store: exit 0, every file matches. Then a flipped bit in a frame file, a cut
    boxes file, a lost checksum file and a deleted frame file: one line for each bad one
    (file, damage, fix), the summary counts them, exit 2 with one line on stderr."""
    shutil.copytree(tiny_workdir / "data" / DATASET, tmp_path / "data" / DATASET)
    ok = _asnet(tmp_path, "verify-store", "--dataset", DATASET)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip().splitlines()[-1].startswith(f"{DATASET}: 36 files of 18 videos in data/{DATASET}/frames: "
                                                         "36 match their checksums, 0 carry none"), ok.stdout
    frames = tmp_path / paths.frames_dir(DATASET)
    names = sorted(p.name.removesuffix(".npy") for p in frames.glob("*.npy") if not p.name.endswith(".boxes.npy"))
    flip, cut, unsummed, gone = (frames / f"{names[k]}.npy" for k in range(4))
    flip.write_bytes(_flipped(flip.read_bytes(), 3000))
    boxes = frames / f"{names[1]}.boxes.npy"
    boxes.write_bytes(boxes.read_bytes()[:-16])
    checksum_path(unsummed).unlink()
    gone.unlink()
    bad = _asnet(tmp_path, "verify-store", "--dataset", DATASET)
    line = _one_line(bad, "verify-store")
    assert "3 files of the frame store" in line and f"asnet extract --dataset {DATASET}" in line
    out = bad.stdout.strip().splitlines()
    assert out[-1] == (f"{DATASET}: 34 files of 18 videos in data/{DATASET}/frames: 31 match their checksums, "
                       "1 carry none (written before checksums; structure checked), 3 bad"), out
    assert f"data/{DATASET}/frames/{flip.name}: CRC-32 " in out[0] and "(damaged on disk); delete" in out[0]
    assert f"frames/{boxes.name}: " in "\n".join(out[:3]) and "asnet extract" in out[1]
    assert any(f"frames/{gone.stem}.*: no frame file" in o for o in out[:3])


@pytest.fixture(scope="module")
def trained(tiny_workdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny data with a 1-epoch single-stream run at its results/ path."""
    from asnet.train.loop import train_run

    work = tmp_path_factory.mktemp("eval_corrupt")
    shutil.copytree(tiny_workdir / "data", work / "data")
    cfg = load_config(overrides=TINY + ["train.epochs=1"])
    train_run(cfg, work / paths.manifest(DATASET, 1), work / paths.frames_dir(DATASET),
              work / paths.run_dir(DATASET, 1, "single"), "single", progress=False)
    return work


@pytest.mark.parametrize("damage", ["truncated npy", "bit flip in a jpgpack frame"])
def test_evaluate_with_a_damaged_test_video_is_one_line_naming_it(trained: Path, tmp_path: Path, damage: str) -> None:
    work = tmp_path / "w"
    shutil.copytree(trained, work)
    manifest = pd.read_csv(work / paths.manifest(DATASET, 1))
    video = manifest.loc[manifest["subset"] == "test", "video"].iloc[0]
    frames = work / paths.frames_dir(DATASET)
    npy = frames / f"{video}.npy"
    if damage == "truncated npy":
        bad = npy
        bad.write_bytes(bad.read_bytes()[:-1000])
        expect = "unreadable .npy frame file"
    else:
        bad = frames / f"{video}.jpgpack"
        bad.write_bytes(encode_jpeg_pack(np.load(npy), DEFAULT_JPEG_QUALITY))
        npy.unlink()
        data = bad.read_bytes()
        bad.write_bytes(_flipped(data, len(data) - 100))
        expect = "fails its checksum"
    proc = _asnet(work, "evaluate", "--dataset", DATASET, "--split", "1", "--variant", "single",
                  "--set", "train.epochs=1")  # as trained: evaluate refuses a config the run was not trained with
    line = _one_line(proc, "evaluate")
    assert f"data/{DATASET}/frames/{bad.name}: " in line and expect in line, line
