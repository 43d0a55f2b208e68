"""Tests for asnet.data.frames on tiny real video files written with PyAV."""

from __future__ import annotations

import os
import signal
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest

from asnet.data.frames import (
    INDEX_COLUMNS,
    _decode_pyav,
    decode_video,
    extract_videos,
    resample_indices,
)

BITS = 8


def frame_image(i: int, height: int, width: int) -> np.ndarray:
    """Frame ``i`` as BITS vertical black/white bands spelling ``i`` in binary (LSB left).

    Bands survive lossy coding and resizing, so each stored frame's source index can be read back.
    """
    img = np.zeros((height, width), np.uint8)
    for b in range(BITS):
        if (i >> b) & 1:
            img[:, b * width // BITS : (b + 1) * width // BITS] = 255
    return img


def make_video(
    path: Path,
    n: int,
    width: int = 160,
    height: int = 120,
    fps: float = 25,
    codec: str = "mpeg4",
    pix_fmt: str = "yuv420p",
) -> Path:
    """Write an ``n``-frame video whose frame i shows ``frame_image(i)``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for i in range(n):
            img = frame_image(i, height, width)
            if pix_fmt == "gray":
                frame = av.VideoFrame.from_ndarray(img, format="gray")
            else:
                frame = av.VideoFrame.from_ndarray(np.repeat(img[..., None], 3, axis=2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def source_ids(frames: np.ndarray) -> np.ndarray:
    """Read back the source frame index of each stored frame from its bands."""
    _, h, w, _ = frames.shape
    centers = ((np.arange(BITS) + 0.5) * w / BITS).astype(int)
    bits = np.asarray(frames[:, h // 2, centers, :]).mean(axis=-1) > 128
    return (bits * (1 << np.arange(BITS))).sum(axis=1)


# Module-level decoders for the worker hook: real (slow / crashing) decoders, imported by name
# in the worker process.
def slow_decoder(path: Path, short_side: int, fps: float = 25.0) -> tuple[np.ndarray, dict]:
    if "slow" in path.name:
        time.sleep(60)
    return decode_video(path, short_side, fps)


def crashing_decoder(path: Path, short_side: int, fps: float = 25.0) -> tuple[np.ndarray, dict]:
    if "crash" in path.name:
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_video(path, short_side, fps)


def test_resample_indices_nearest_timestamp() -> None:
    assert resample_indices(60, 30.0, 25.0).tolist() == [int(np.floor(k * 1.2 + 0.5)) for k in range(50)]
    idx15 = resample_indices(30, 15.0, 25.0)
    assert len(idx15) == 50 and idx15[:6].tolist() == [0, 1, 1, 2, 2, 3] and idx15[-1] == 29
    assert resample_indices(40, 25.0, 25.0).tolist() == list(range(40))
    assert len(resample_indices(0, 25.0, 25.0)) == 0


def test_decode_30fps_avi_resampled_and_resized(tmp_path: Path) -> None:
    frames, info = decode_video(make_video(tmp_path / "v30.avi", 60, fps=30), short_side=32)
    assert frames.dtype == np.uint8
    assert frames.shape == (50, 32, 43, 3)  # 60 * 25 / 30 frames; 160x120 -> 43x32
    assert info["status"] == "ok" and info["reason"] == ""
    assert info["src_fps"] == pytest.approx(30.0) and info["src_frames"] == 60
    assert info["backend"] == "decord"
    # Content, not just counts: stored frame k shows source frame round(k * 30 / 25).
    np.testing.assert_array_equal(source_ids(frames), resample_indices(60, 30.0, 25.0))
    np.testing.assert_array_equal(info["indices"], resample_indices(60, 30.0, 25.0))


def test_decode_15fps_repeats_frames(tmp_path: Path) -> None:
    frames, info = decode_video(make_video(tmp_path / "v15.mp4", 30, fps=15, codec="libx264"), short_side=24)
    assert frames.shape[0] == 50 and min(frames.shape[1:3]) == 24
    assert info["src_fps"] == pytest.approx(15.0)
    np.testing.assert_array_equal(frames[1], frames[2])  # both are source frame 1
    np.testing.assert_array_equal(source_ids(frames), resample_indices(30, 15.0, 25.0))


def test_grayscale_source_gives_three_channels(tmp_path: Path) -> None:
    frames, _ = decode_video(make_video(tmp_path / "gray.mkv", 10, 64, 48, codec="ffv1", pix_fmt="gray"), 48)
    assert frames.shape == (10, 48, 64, 3)
    np.testing.assert_array_equal(frames[..., 0], frames[..., 1])
    np.testing.assert_array_equal(frames[..., 1], frames[..., 2])


@pytest.mark.parametrize(("w", "h", "expected_hw"), [(320, 32, (16, 160)), (32, 192, (96, 16))])
def test_extreme_aspect_ratios(tmp_path: Path, w: int, h: int, expected_hw: tuple[int, int]) -> None:
    frames, _ = decode_video(make_video(tmp_path / "odd.avi", 5, w, h), short_side=16)
    assert frames.shape[1:3] == expected_hw


def test_pyav_fallback_matches_decord(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.avi", 30, fps=30)
    ref, _ = decode_video(path, 32)
    res = _decode_pyav(path, 32, 25.0)
    assert res.error is None and res.resampler.n_src == 30
    alt = np.stack(res.resampler.frames)
    assert alt.shape == ref.shape
    assert np.abs(alt.astype(int) - ref.astype(int)).max() <= 3  # colour conversion rounding only


def test_extract_reports_broken_files_and_continues(tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    make_video(src / "good.avi", 40)
    (src / "zero.avi").write_bytes(b"")
    (src / "random.avi").write_bytes(np.random.default_rng(0).bytes(4000))
    full_avi = make_video(tmp_path / "full.avi", 60).read_bytes()
    (src / "trunc.avi").write_bytes(full_avi[: len(full_avi) // 2])
    full_mp4 = make_video(tmp_path / "full.mp4", 60, codec="libx264").read_bytes()
    (src / "trunc.mp4").write_bytes(full_mp4[: len(full_mp4) // 2])
    manifest = pd.DataFrame(
        {
            "video": ["good", "zero", "random", "trunc_avi", "trunc_mp4", "missing"],
            "path": ["good.avi", "zero.avi", "random.avi", "trunc.avi", "trunc.mp4", "nope.avi"],
        }
    )
    frames_dir = tmp_path / "ds" / "frames"
    index = extract_videos(manifest, src, frames_dir, short_side=32, min_frames=4, workers=2, progress=False)

    assert list(index.columns) == INDEX_COLUMNS
    row = index.set_index("video")
    assert row.loc["good", "status"] == "ok" and row.loc["good", "frames"] == 40
    for vid in ("zero", "random", "missing"):
        assert row.loc[vid, "status"] == "excluded" and row.loc[vid, "reason"]
        assert not (frames_dir / f"{vid}.npy").exists()
    assert "decode error" in row.loc["random", "reason"]
    # The AVI header claims 60 frames; only the decodable first half is kept, and said so.
    assert row.loc["trunc_avi", "status"] == "repaired"
    assert "fewer frames than reported" in row.loc["trunc_avi", "reason"]
    assert 0 < row.loc["trunc_avi", "frames"] < 60
    assert np.load(frames_dir / "trunc_avi.npy").shape[0] == row.loc["trunc_avi", "frames"]
    # An mp4 cut before its moov atom is undecodable.
    assert row.loc["trunc_mp4", "status"] in ("excluded", "repaired") and row.loc["trunc_mp4", "reason"]

    on_disk = pd.read_csv(frames_dir / "index.csv", keep_default_na=False)
    assert on_disk["video"].tolist() == manifest["video"].tolist()
    bad = pd.read_csv(tmp_path / "ds" / "bad_videos.csv", keep_default_na=False)
    assert set(bad["video"]) == set(index.loc[index["status"] != "ok", "video"])
    assert (bad["reason"] != "").all()
    assert not list(frames_dir.glob("*.tmp*"))
    assert index.attrs["summary"] == {
        "ok": 1,
        "repaired": 1 + (row.loc["trunc_mp4", "status"] == "repaired"),
        "excluded": 4 - (row.loc["trunc_mp4", "status"] == "repaired"),
    }


def test_short_video_loop_padded(tmp_path: Path) -> None:
    make_video(tmp_path / "short.avi", 5)
    index = extract_videos(
        [("short", "short.avi")], tmp_path, tmp_path / "frames", 32, min_frames=16, progress=False
    )
    assert index.loc[0, "status"] == "repaired" and "loop-padded 5 -> 16" in index.loc[0, "reason"]
    arr = np.load(tmp_path / "frames" / "short.npy", mmap_mode="r")
    assert arr.shape[0] == 16
    np.testing.assert_array_equal(source_ids(arr), np.arange(16) % 5)


def test_resume_redoes_only_missing(tmp_path: Path) -> None:
    pairs = [(f"v{i}", f"v{i}.avi") for i in range(3)]
    for _, rel in pairs:
        make_video(tmp_path / rel, 20)
    frames_dir = tmp_path / "frames"
    first = extract_videos(pairs, tmp_path, frames_dir, 32, progress=False)
    assert first.attrs["processed"] == 3
    mtimes = {v: (frames_dir / f"{v}.npy").stat().st_mtime_ns for v, _ in pairs}
    (frames_dir / "v1.npy").unlink()
    (frames_dir / "v2.npy.tmp999").write_bytes(b"partial write of a killed run")

    second = extract_videos(pairs, tmp_path, frames_dir, 32, progress=False)
    assert second.attrs["processed"] == 1 and second.attrs["skipped"] == 2
    assert (frames_dir / "v1.npy").exists()
    for v in ("v0", "v2"):
        assert (frames_dir / f"{v}.npy").stat().st_mtime_ns == mtimes[v]
    assert not list(frames_dir.glob("*.tmp*"))
    pd.testing.assert_frame_equal(first.reset_index(drop=True), second.reset_index(drop=True))


def test_timeout_recorded_and_run_continues(tmp_path: Path) -> None:
    make_video(tmp_path / "slow.avi", 20)
    make_video(tmp_path / "fine.avi", 20)
    start = time.monotonic()
    index = extract_videos(
        [("slow", "slow.avi"), ("fine", "fine.avi")],
        tmp_path,
        tmp_path / "frames",
        32,
        timeout_s=2.0,
        decoder=f"{__name__}:slow_decoder",
        progress=False,
    )
    assert time.monotonic() - start < 20  # the 60 s sleeper was killed
    row = index.set_index("video")
    assert row.loc["slow", "status"] == "excluded" and row.loc["slow", "reason"].startswith("timeout")
    assert row.loc["fine", "status"] == "ok"


def test_crashing_worker_recorded_and_run_continues(tmp_path: Path) -> None:
    make_video(tmp_path / "crash.avi", 20)
    make_video(tmp_path / "fine.avi", 20)
    index = extract_videos(
        [("crash", "crash.avi"), ("fine", "fine.avi")],
        tmp_path,
        tmp_path / "frames",
        32,
        decoder=f"{__name__}:crashing_decoder",
        progress=False,
    )
    row = index.set_index("video")
    assert row.loc["crash", "status"] == "excluded"
    assert row.loc["crash", "reason"] == f"crash (signal {int(signal.SIGSEGV)})"
    assert row.loc["fine", "status"] == "ok"


def test_unimportable_decoder_fails_loudly(tmp_path: Path) -> None:
    make_video(tmp_path / "a.avi", 5)
    with pytest.raises(RuntimeError, match="start-up"):
        extract_videos(
            [("a", "a.avi")], tmp_path, tmp_path / "frames", 32, decoder="no_such_module:f", progress=False
        )


def test_gt_boxes_aligned_and_scaled(tmp_path: Path) -> None:
    make_video(tmp_path / "b.avi", 60, 160, 120, fps=30)
    src_boxes = np.array([[i, 10, i + 50, 60] for i in range(60)], dtype=np.float32)
    extract_videos(
        [("b", "b.avi")],
        tmp_path,
        tmp_path / "frames",
        short_side=60,
        gt_boxes={"b": src_boxes},
        progress=False,
    )
    boxes = np.load(tmp_path / "frames" / "b.boxes.npy")
    frames = np.load(tmp_path / "frames" / "b.npy", mmap_mode="r")
    assert boxes.dtype == np.float32 and boxes.shape == (len(frames), 4) == (50, 4)
    idx = resample_indices(60, 30.0, 25.0)
    expected = np.stack([idx * 0.5, np.full(50, 5.0), (idx + 50) * 0.5, np.full(50, 30.0)], axis=1)
    np.testing.assert_allclose(boxes, expected, rtol=1e-6)
