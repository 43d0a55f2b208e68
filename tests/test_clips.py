"""Tests for asnet.data.clips on stored-format arrays written to tmp_path."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from asnet.data.clips import (
    ClipDataset,
    VideoClips,
    eval_clip_indices,
    hara_clip_indices,
    pad_collate,
    spread_clip_indices,
)
from asnet.data.frames import INDEX_COLUMNS

# video -> (frames, height, width); every pixel of frame t holds t, so clip contents reveal
# exactly which frames were read.
VIDEOS = {"long": (100, 8, 12), "mid": (40, 10, 8), "short": (5, 8, 8)}


def write_store(root: Path, videos: dict[str, tuple[int, int, int]], excluded: tuple[str, ...] = ()) -> Path:
    """Write ``<root>/frames`` in the stored format plus its index.csv."""
    frames_dir = root / "frames"
    frames_dir.mkdir(parents=True)
    rows = []
    for video, (t, h, w) in videos.items():
        arr = np.broadcast_to(np.arange(t, dtype=np.uint8)[:, None, None, None], (t, h, w, 3))
        np.save(frames_dir / f"{video}.npy", np.ascontiguousarray(arr))
        rows.append([video, t, h, w, 25.0, t, "ok", ""])
    for video in excluded:
        rows.append([video, 0, 0, 0, float("nan"), 0, "excluded", "decode error: test"])
    pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(frames_dir / "index.csv", index=False)
    return frames_dir


def manifest(videos: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"video": videos, "label": list(range(len(videos)))})


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return write_store(tmp_path, VIDEOS)


def frame_ids(clip: torch.Tensor) -> list[int]:
    return clip[:, 0, 0, 0].tolist()


def test_clip_dataset_deterministic_by_seed_epoch_index(store: Path) -> None:
    m = manifest(list(VIDEOS))
    a = ClipDataset(m, store, clip_len=8, seed=3)
    b = ClipDataset(m, store, clip_len=8, seed=3)
    b.set_epoch(2)
    late = frame_ids(b[1]["clip"])  # read out of order and from a different epoch history
    for epoch in (0, 1, 2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        for i in range(len(a)):
            assert frame_ids(a[i]["clip"]) == frame_ids(b[i]["clip"])
    a.set_epoch(2)
    assert frame_ids(a[1]["clip"]) == late
    other_seed = ClipDataset(m, store, clip_len=8, seed=4)
    seq = {s: [] for s in (3, 4)}
    for epoch in range(3):
        for ds, s in ((a, 3), (other_seed, 4)):
            ds.set_epoch(epoch)
            seq[s] += [frame_ids(ds[i]["clip"]) for i in range(len(ds))]
    assert seq[3] != seq[4]


def test_epochs_differ_and_worker_count_irrelevant(store: Path) -> None:
    ds = ClipDataset(manifest(["long", "mid"]), store, clip_len=8, seed=0)
    starts = []
    for epoch in range(6):
        ds.set_epoch(epoch)
        starts.append(frame_ids(ds[0]["clip"])[0])
    assert len(set(starts)) > 1

    ds.set_epoch(5)
    single = [frame_ids(x["clip"]) for x in ds]
    loader = DataLoader(ds, batch_size=1, num_workers=2, collate_fn=pad_collate)
    multi = [frame_ids(batch["clip"][0]) for batch in loader]
    assert single == multi


def test_clips_within_bounds_and_contiguous(store: Path) -> None:
    ds = ClipDataset(manifest(["long", "mid"]), store, clip_len=16, seed=1)
    for epoch in range(20):
        ds.set_epoch(epoch)
        for i, video in enumerate(["long", "mid"]):
            item = ds[i]
            ids = frame_ids(item["clip"])
            assert ids == list(range(ids[0], ids[0] + 16))
            assert 0 <= ids[0] and ids[-1] < VIDEOS[video][0]
            assert item["clip"].dtype == torch.uint8
            assert tuple(item["clip"].shape) == (16, VIDEOS[video][1], VIDEOS[video][2], 3)
            assert (item["height"], item["width"]) == VIDEOS[video][1:]
            assert item["label"] == i and item["index"] == i
            assert torch.isnan(item["gt"]).all() and item["gt"].shape == (4,)


def test_short_video_loops(store: Path) -> None:
    ds = ClipDataset(manifest(["short"]), store, clip_len=8, seed=0)
    for epoch in range(5):
        ds.set_epoch(epoch)
        ids = frame_ids(ds[0]["clip"])
        assert ids == [(ids[0] + k) % 5 for k in range(8)]


def test_gt_union_over_clip_frames(store: Path) -> None:
    t = VIDEOS["long"][0]
    boxes = np.stack([np.arange(t), np.full(t, 2.0), np.arange(t) + 3, np.full(t, 6.0)], axis=1).astype(
        np.float32
    )
    boxes[10:20] = np.nan  # frames without a box
    np.save(store / "long.boxes.npy", boxes)
    ds = ClipDataset(manifest(["long"]), store, clip_len=8, seed=0)
    for epoch in range(10):
        ds.set_epoch(epoch)
        item = ds[0]
        ids = np.array(frame_ids(item["clip"]))
        valid = ids[(ids < 10) | (ids >= 20)]
        expected = [valid.min(), 2, valid.max() + 3, 6] if len(valid) else [np.nan] * 4
        np.testing.assert_array_equal(item["gt"].numpy(), np.array(expected, dtype=np.float32))

    vc = VideoClips(manifest(["long"]), store, clip_len=10)
    gt = vc[0]["gt"].numpy()
    assert gt.shape == (10, 4)
    np.testing.assert_array_equal(gt[0], [0, 2, 12, 6])
    assert np.isnan(gt[1]).all()  # frames 10..19 carry no box
    np.testing.assert_array_equal(gt[9], [90, 2, 102, 6])


def test_video_clips_non_overlapping(store: Path) -> None:
    vc = VideoClips(manifest(["long", "mid", "short"]), store, clip_len=16)
    expected = {"long": 7, "mid": 3, "short": 1}  # ceil(n / 16): the last partial clip is loop-padded
    for i, video in enumerate(["long", "mid", "short"]):
        item = vc[i]
        t, h, w = VIDEOS[video]
        n = expected[video]
        assert tuple(item["clips"].shape) == (n, 16, h, w, 3)
        ids = item["clips"][:, :, 0, 0, 0]
        full = t // 16
        assert ids[:full].flatten().tolist() == list(range(full * 16))
        tail = t - full * 16  # 4, 8, 5 frames: looped from the tail clip's own start
        if tail:
            assert ids[full].tolist() == [full * 16 + k % tail for k in range(16)]
        assert item["frames"].tolist() == ids.tolist()
        assert item["video"] == video and item["label"] == i and item["gt"].shape == (n, 4)


def test_pad_collate_shapes(store: Path) -> None:
    ds = ClipDataset(manifest(["long", "mid"]), store, clip_len=4, seed=0)
    batch = pad_collate([ds[0], ds[1]])
    assert tuple(batch["clip"].shape) == (2, 4, 10, 12, 3)  # max H (mid), max W (long)
    assert batch["height"].tolist() == [8, 10] and batch["width"].tolist() == [12, 8]
    assert batch["label"].tolist() == [0, 1] and batch["gt"].shape == (2, 4)
    assert (batch["clip"][0, :, 8:] == 0).all() and (batch["clip"][1, :, :, 8:] == 0).all()
    torch.testing.assert_close(batch["clip"][1, :, :10, :8], ds[1]["clip"])

    vc = VideoClips(manifest(["long", "short"]), store, clip_len=16)
    vb = pad_collate([vc[0], vc[1]])
    assert tuple(vb["clips"].shape) == (2, 7, 16, 8, 12, 3)
    assert vb["num_clips"].tolist() == [7, 1] and vb["video"] == ["long", "short"]
    assert vb["gt"].shape == (2, 7, 4) and torch.isnan(vb["gt"][1, 1:]).all()
    assert (vb["clips"][1, 1:] == 0).all()


def test_excluded_videos_skipped_with_warning(tmp_path: Path) -> None:
    frames_dir = write_store(tmp_path / "ds", {"long": VIDEOS["long"]}, excluded=("broken", "gone"))
    m = manifest(["long", "broken", "gone"])
    for cls in (ClipDataset, VideoClips):
        with pytest.warns(UserWarning, match=r"skipping 2 of 3 videos .*bad_videos\.csv"):
            ds = cls(m, frames_dir, 8)
        assert ds.videos == ["long"] and len(ds) == 1 and ds.labels == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when nothing is excluded
        ClipDataset(manifest(["long"]), frames_dir, 8)


def test_unextracted_video_is_an_error(store: Path) -> None:
    with pytest.raises(FileNotFoundError, match="1 videos have no frames"):
        ClipDataset(manifest(["long", "never_extracted"]), store, 8)


def test_hara_clips_loop_pad_their_own_frames() -> None:
    assert hara_clip_indices(20, 8).tolist() == [list(range(8)), list(range(8, 16)), [16, 17, 18, 19] * 2]
    assert hara_clip_indices(5, 8).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]  # shorter than a clip
    assert hara_clip_indices(17, 8)[-1].tolist() == [16] * 8  # a one-frame tail repeats that frame
    for n in (1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100):
        for clip_len in (1, 4, 8, 16):
            idx = hara_clip_indices(n, clip_len)
            assert idx.shape == (-(-n // clip_len), clip_len)  # ceil(n / L) clips
            for j, row in enumerate(idx):
                start = j * clip_len
                length = min(n, start + clip_len) - start
                assert row.tolist() == [start + k % length for k in range(clip_len)]
            assert sorted(set(idx.ravel().tolist())) == list(range(n))  # every frame, once per clip
    with pytest.raises(ValueError, match="empty video"):
        hara_clip_indices(0, 8)


def test_mmaction_clips_spread_from_first_to_last_full_clip() -> None:
    idx = spread_clip_indices(100, 16, 10)
    starts = idx[:, 0].tolist()
    assert starts == [round(k * 84 / 9) for k in range(10)] == [0, 9, 19, 28, 37, 47, 56, 65, 75, 84]
    assert (idx == np.array(starts)[:, None] + np.arange(16)).all() and idx.max() == 99
    assert (spread_clip_indices(16, 16, 10) == np.arange(16)).all()  # one clip fits exactly: 10 copies
    assert spread_clip_indices(5, 8, 10).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]] * 10  # loops (out_of_bound 'loop')
    assert eval_clip_indices(20, 8, "mmaction_10x3").shape == (10, 8)
    with pytest.raises(ValueError, match="mmaction_10x3"):
        eval_clip_indices(20, 8, "tencrop")


def test_video_clips_padded_tail_gt_and_mmaction_views(store: Path) -> None:
    t = VIDEOS["mid"][0]  # 40 frames, clips of 16: [0..15], [16..31], [32..39, 32..39]
    boxes = np.stack([np.arange(t), np.zeros(t), np.arange(t) + 1, np.ones(t)], axis=1).astype(np.float32)
    np.save(store / "mid.boxes.npy", boxes)
    item = VideoClips(manifest(["mid"]), store, clip_len=16)[0]
    assert item["clips"][2, :, 0, 0, 0].tolist() == list(range(32, 40)) * 2
    np.testing.assert_array_equal(item["gt"][2].numpy(), [32, 0, 40, 1])  # the padded clip's own frames
    mm = VideoClips(manifest(["mid"]), store, clip_len=16, views="mmaction_10x3")[0]
    assert tuple(mm["clips"].shape) == (10, 16, *VIDEOS["mid"][1:], 3)
    assert mm["clips"][:, :, 0, 0, 0].tolist() == spread_clip_indices(40, 16).tolist() == mm["frames"].tolist()
    np.testing.assert_array_equal(mm["gt"][-1].numpy(), [24, 0, 40, 1])
