"""The frame store's formats (asnet.data.store): round trips, versions, corrupt files, and the
training loader's handling of them (skip + count, never a crash of the epoch)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from asnet import paths, stages
from asnet.config import ConfigError, load_config
from asnet.data.clips import ClipDataset, VideoClips, pad_collate
from asnet.data.crops import crop_resize_uint8
from asnet.data.frames import INDEX_COLUMNS, extract_videos
from asnet.data.store import (
    DEFAULT_JPEG_QUALITY,
    FORMATS,
    JPEG_VERSION,
    StoreError,
    commit_tmp,
    encode_jpeg_pack,
    open_video,
    store_path,
    write_tmp,
)
from asnet.train.inputs import WorkerCrops, context_boxes
from asnet.variants import get_variant

# JPEG tolerance at the default quality (4:2:0) on `textured` frames: the mean absolute error
# per pixel value and the PSNR. Measured 3.9 grey levels and 31.7 dB, most of it the frames'
# sensor noise, which JPEG drops (quality 90: 3.5 and 32.5 dB).
JPEG_MEAN_ABS_TOL = 4.5
JPEG_MIN_PSNR_DB = 30.0


def textured(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 (t, h, w, 3): smooth colour gradients, blocks and mild noise, moving per frame
    (neither flat colour, which JPEG codes perfectly, nor pure noise, which it cannot)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.empty((t, h, w, 3), np.uint8)
    for k in range(t):
        base = np.stack([128 + 60 * np.sin((xx + 3 * k) / 9.0), 128 + 60 * np.cos((yy - 2 * k) / 7.0),
                         128 + 40 * np.sin((xx + yy + k) / 13.0)], axis=-1)
        base[h // 4 : h // 2, (k % (w // 2)) : (k % (w // 2)) + w // 4] = (200, 40, 60)
        out[k] = np.clip(base + rng.normal(0, 3, base.shape), 0, 255).astype(np.uint8)
    return out


def write_video(frames_dir: Path, video: str, frames: np.ndarray, fmt: str) -> Path:
    path = store_path(frames_dir, video, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    commit_tmp(write_tmp(path, frames, fmt, DEFAULT_JPEG_QUALITY), path)
    return path


def write_index(frames_dir: Path, videos: dict[str, np.ndarray]) -> None:
    rows = [[v, a.shape[0], a.shape[1], a.shape[2], 25.0, a.shape[0], "ok", ""] for v, a in videos.items()]
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(frames_dir / "index.csv", index=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_every_format(tmp_path: Path, fmt: str) -> None:
    """What is read back is what was stored: exactly for npy, within the pinned JPEG tolerance
    for jpeg; any frame order, repeats included (looped clips)."""
    frames = textured(12, 48, 64)
    stored = open_video(write_video(tmp_path, "v", frames, fmt))
    assert stored.shape == (12, 48, 64, 3)
    all_frames = stored.read(np.arange(12))
    assert all_frames.dtype == np.uint8 and all_frames.shape == frames.shape
    err = np.abs(all_frames.astype(np.float32) - frames.astype(np.float32))
    if fmt == "npy":
        assert err.max() == 0
    else:
        assert err.mean() <= JPEG_MEAN_ABS_TOL, err.mean()
        psnr = 10 * np.log10(255.0**2 / float((err**2).mean()))
        assert psnr >= JPEG_MIN_PSNR_DB, psnr
    for idx in (np.array([3, 4, 5, 6]), np.array([10, 11, 0, 1, 10]), np.array([7])):
        assert np.array_equal(stored.read(idx), all_frames[idx])


def test_jpeg_pack_is_smaller_than_npy(tmp_path: Path) -> None:
    frames = textured(20, 96, 128)
    npy = write_video(tmp_path, "a", frames, "npy").stat().st_size
    jpg = write_video(tmp_path, "b", frames, "jpeg").stat().st_size
    assert jpg * 5 < npy, (jpg, npy)


def _pack_with_version(tmp_path: Path, version: int) -> Path:
    path = write_video(tmp_path, f"v{version}", textured(4, 16, 16), "jpeg")
    data = bytearray(path.read_bytes())
    data[8:12] = struct.pack("<I", version)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("version", [0, JPEG_VERSION + 1])
def test_other_format_versions_are_refused(tmp_path: Path, version: int) -> None:
    path = _pack_with_version(tmp_path, version)
    with pytest.raises(StoreError, match=rf"{path.name}: \.jpgpack format version {version}.*asnet extract"):
        open_video(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_or_corrupt_files_raise_store_error(tmp_path: Path, fmt: str) -> None:
    path = write_video(tmp_path, "v", textured(6, 32, 32), fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])  # truncated (a killed copy, a full disk)
    with pytest.raises(StoreError, match=path.name):
        open_video(path).read(np.arange(6))
    path.write_bytes(data[:10])
    with pytest.raises(StoreError, match=path.name):
        open_video(path)
    if fmt == "jpeg":  # right size, garbage inside a frame: found when that frame is read
        header = 8 + 16 + 8 * 7 + 4 * 6 + 4  # version 2: offsets, frame CRCs, header CRC
        path.write_bytes(data[:header] + bytes(len(data) - header))
        with pytest.raises(StoreError, match=rf"{path.name}: frame 0 fails its checksum"):
            open_video(path).read(np.arange(2))
        # A version-1 pack has no checksums: the decoder finds the garbage.
        v1 = encode_jpeg_pack(textured(6, 32, 32), DEFAULT_JPEG_QUALITY, version=1)
        path.write_bytes(v1[: 8 + 16 + 8 * 7] + bytes(len(v1) - (8 + 16 + 8 * 7)))
        with pytest.raises(StoreError, match=rf"{path.name}: frame 0 does not decode"):
            open_video(path).read(np.arange(2))


def test_extract_writes_the_jpeg_store_atomically(tmp_path: Path) -> None:
    """extract_videos in the jpeg format: one .jpgpack per video, no temp file left, frames
    as in the npy store within the JPEG tolerance."""
    from test_frames import make_video

    src = tmp_path / "src"
    src.mkdir()
    make_video(src / "a.avi", 20, width=96, height=72)
    pairs = [("a", "a.avi")]
    extract_videos(pairs, src, tmp_path / "npy" / "frames", short_side=48, progress=False)
    extract_videos(pairs, src, tmp_path / "jpg" / "frames", short_side=48, progress=False, fmt="jpeg")
    files = sorted(p.name for p in (tmp_path / "jpg" / "frames").iterdir())
    assert files == ["a.jpgpack", "index.csv"]
    ref = np.load(tmp_path / "npy" / "frames" / "a.npy")
    got = open_video(tmp_path / "jpg" / "frames" / "a.jpgpack").read(np.arange(len(ref)))
    assert np.abs(got.astype(float) - ref.astype(float)).mean() <= JPEG_MEAN_ABS_TOL


@pytest.mark.parametrize("fmt", FORMATS)
def test_loader_skips_an_unreadable_video_and_names_it(tmp_path: Path, fmt: str) -> None:
    """Training: the unreadable video is left out of its batch and listed with a named error;
    the epoch goes on. Evaluation: the named error (a test set is not silently shrunk)."""
    videos = {v: textured(10, 24, 32, seed=i) for i, v in enumerate(["a", "b", "c"])}
    for v, a in videos.items():
        write_video(tmp_path, v, a, fmt)
    write_index(tmp_path, videos)
    bad = store_path(tmp_path, "b", fmt)
    bad.write_bytes(bad.read_bytes()[:-50])
    m = pd.DataFrame({"video": list(videos), "label": [0, 1, 2]})
    ds = ClipDataset(m, tmp_path, clip_len=4, seed=0)
    batches = list(DataLoader(ds, batch_size=2, collate_fn=pad_collate))
    assert [len(b["label"]) for b in batches] == [1, 1]
    assert batches[0]["skipped"][0][0] == "b" and bad.name in batches[0]["skipped"][0][1]
    assert "skipped" not in batches[1]
    assert pad_collate([ds[1]])["label"].numel() == 0
    with pytest.raises(StoreError, match=bad.name):
        VideoClips(m, tmp_path, clip_len=4)[1]


def test_worker_crops_match_the_main_process_crop_and_ignore_worker_count(tmp_path: Path) -> None:
    """The crop a worker cuts is crop_resize_uint8 of the clip with the box and flip drawn from
    the clip's own (seed, epoch, index) stream, still uint8 (normalised on the device); 0 or 2
    workers give the same tensors."""
    videos = {v: textured(12, 40, 56, seed=i) for i, v in enumerate(["a", "b", "c", "d"])}
    for v, a in videos.items():
        write_video(tmp_path, v, a, "npy")
    write_index(tmp_path, videos)
    cfg = load_config(overrides=["preset=tiny"])
    variant = get_variant("siamese_center")
    crops = WorkerCrops.of(variant, cfg)
    m = pd.DataFrame({"video": list(videos), "label": [0, 1, 2, 0]})
    ds = ClipDataset(m, tmp_path, clip_len=4, seed=5, crops=crops)
    ds.set_epoch(2)
    item = ds[1]
    assert "clip" not in item and item["x_ctx"].shape == (3, 4, 32, 32) and item["x_sal"].shape == (3, 4, 32, 32)
    assert item["x_ctx"].dtype == torch.uint8 and item["x_sal"].dtype == torch.uint8
    plain = ClipDataset(m, tmp_path, clip_len=4, seed=5)
    plain.set_epoch(2)
    raw = plain[1]
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([5, 2, 1, 1]).generate_state(1, np.uint64)[0] >> 1))
    flip = torch.rand(1, generator=gen) < 0.5
    h, w = torch.tensor([raw["height"]]), torch.tensor([raw["width"]])
    box = context_boxes(variant, cfg, h, w, raw["gt"][None], True, gen)
    want = crop_resize_uint8(raw["clip"][None], box, cfg.input.size, h, w, flip)[0]
    assert torch.equal(item["x_ctx"], want) and bool(item["flip"]) == bool(flip)

    def epoch(workers: int) -> list[dict]:
        return list(DataLoader(ds, batch_size=2, collate_fn=pad_collate, num_workers=workers))

    for a, b in zip(epoch(0), epoch(2), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("x_ctx", "x_sal", "flip", "label"))
    spa = ClipDataset(m, tmp_path, clip_len=4, seed=5, crops=WorkerCrops.of(get_variant("asnet"), cfg))
    spa.set_epoch(2)
    # SPA crops the full clip on the device: the worker ships the clip and the context box it drew
    # (from the same per-clip stream), not a crop.
    item = spa[1]
    assert "clip" in item and "x_ctx" not in item and "x_sal" not in item
    assert torch.equal(item["ctx_box"], box[0]) and bool(item["flip"]) == bool(flip)


def _copy_tiny(tiny_workdir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_workdir / "data", dest / "data")
    return dest


def test_training_epoch_counts_a_corrupt_video_and_goes_on(tiny_workdir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """One truncated training video: the epoch runs, its log says skipped_videos = 1; with the
    crops in the workers (jpeg store or not) the ASNet run trains too."""
    from asnet.train import checkpoint
    from asnet.train.loop import train_run

    monkeypatch.chdir(_copy_tiny(tiny_workdir, tmp_path))
    from asnet.train.loop import split_validation

    # One batch of every training video (no partial batch dropped), so the victim is read.
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", "train.crop_in_workers=true", "train.batch_size=64"])
    manifest = pd.read_csv(paths.manifest("synthetic_tiny", 1))
    train_df, _ = split_validation(manifest[manifest["subset"] == "train"].reset_index(drop=True),
                                   cfg.train.val_fraction, cfg.seed)
    victim = train_df["video"].iloc[0]
    bad = paths.frames_dir("synthetic_tiny") / f"{victim}.npy"
    bad.write_bytes(bad.read_bytes()[:-1000])
    run_dir = tmp_path / "run"
    train_run(stages.run_config(cfg, "asnet"), paths.manifest("synthetic_tiny", 1),
              paths.frames_dir("synthetic_tiny"), run_dir, "asnet", progress=False)
    history = checkpoint.load(run_dir / "model.pt")["history"]
    assert history[0]["skipped_videos"] == 1


def test_store_format_is_part_of_the_extraction_params(tiny_workdir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An npy store is not extended with jpeg files (or the reverse): refused, naming the fix."""
    monkeypatch.chdir(_copy_tiny(tiny_workdir, tmp_path))
    cfg = load_config(overrides=["preset=tiny", "frames.format=jpeg"])
    with pytest.raises(ConfigError, match="frames: .* holds frames extracted with .*delete it"):
        stages.extract_chunk(cfg, "synthetic_tiny", 0, progress=False)


def test_paper_presets_use_the_jpeg_store_and_worker_crops() -> None:
    for preset in ("paper", "paper64"):
        cfg = load_config(overrides=[f"preset={preset}"])
        assert cfg.frames.format == "jpeg" and cfg.train.crop_in_workers
    for preset in ("default", "tiny"):
        cfg = load_config(overrides=[f"preset={preset}"])
        assert cfg.frames.format == "npy" and not cfg.train.crop_in_workers


def test_jpeg_store_end_to_end(tiny_workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """frames.format=jpeg through the stages: extract (chunks + merge), train with the crops in
    the workers, evaluate; the store holds .jpgpack files only and says its format."""
    from asnet.train.evaluate import evaluate_run
    from asnet.train.loop import train_run

    shutil.copytree(tiny_workdir / "data" / "synthetic_tiny", tmp_path / "data" / "synthetic_tiny",
                    ignore=shutil.ignore_patterns("frames", "frames_chunks", "bad_videos.csv"))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", "frames.format=jpeg", "train.crop_in_workers=true"])
    index = stages.extract(cfg, "synthetic_tiny", progress=False)
    frames_dir = paths.frames_dir("synthetic_tiny")
    suffixes = {p.name.split(".", 1)[1] for p in frames_dir.iterdir() if not p.name.endswith((".csv", ".json"))}
    assert suffixes == {"jpgpack", "boxes.npy", "boxes.npy.crc32"}, suffixes  # a .jpgpack holds its checksums
    assert (index["status"] == "ok").all()
    assert '"format": "jpeg"' in (frames_dir / "params.json").read_text()
    run_dir = tmp_path / "run"
    model = train_run(stages.run_config(cfg, "single"), paths.manifest("synthetic_tiny", 1), frames_dir, run_dir,
                      "single", progress=False)
    metrics = evaluate_run(model, paths.manifest("synthetic_tiny", 1), frames_dir, run_dir / "eval", progress=False)
    assert metrics["videos_evaluated"] == metrics["videos_listed"] > 0
