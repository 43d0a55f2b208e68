"""Tests for the embedded synthetic action dataset (real files, decoded with decord)."""

from __future__ import annotations

from pathlib import Path

import decord
import numpy as np
import pytest

from asnet.data.splits import build_manifest
from asnet.data.synthetic import (
    CLASS_NAMES,
    TARGET_CLASSES,
    SyntheticSpec,
    generate,
    group_background,
    held_out_groups,
    read_gt_boxes,
    render_video,
)

SMALL = SyntheticSpec(n_classes=3, groups=3, clips_per_group=1, frames=16, seed=7)


def _decode(path: Path) -> np.ndarray:
    vr = decord.VideoReader(str(path), num_threads=1)
    return vr.get_batch(list(range(len(vr)))).asnumpy()


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("syn_a")
    summary = generate(root, SMALL, progress=False)
    assert summary["n_videos"] == 9
    return root


def test_layout_and_lists(small_root: Path) -> None:
    names = SMALL.class_names
    videos = sorted(
        p.relative_to(small_root / "videos").as_posix() for p in small_root.glob("videos/*/*.avi")
    )
    expected = sorted(f"{n}/v_{n}_g{g:02d}_c01.avi" for n in names for g in (1, 2, 3))
    assert videos == expected

    splits = small_root / "splits"
    assert (splits / "classInd.txt").read_bytes() == b"".join(
        f"{i + 1} {n}\r\n".encode() for i, n in enumerate(names)
    )
    for k in (1, 2, 3):
        for kind in ("train", "test"):
            raw = (splits / f"{kind}list0{k}.txt").read_bytes()
            assert raw.endswith(b"\r\n")
            # every newline is part of a CRLF pair, as in the official lists
            assert raw.count(b"\n") == raw.count(b"\r\n") > 0
        test_lines = (splits / f"testlist0{k}.txt").read_text().split()
        assert test_lines == [f"{n}/v_{n}_g{k:02d}_c01.avi" for n in names]  # no label, group k held out
        train = (splits / f"trainlist0{k}.txt").read_text().splitlines()
        assert f"{names[1]}/v_{names[1]}_g{(k % 3) + 1:02d}_c01.avi 2" in train
        assert len(train) == 6

    # the lists and files must be consumable by the split parser with nothing missing
    manifest = build_manifest("ucf101", small_root / "videos", splits, 2)
    assert (manifest["subset"] == "test").sum() == 3 and len(manifest) == 9


def test_held_out_groups_match_ucf_pattern() -> None:
    spec = SyntheticSpec()
    assert [list(held_out_groups(spec, k)) for k in (1, 2, 3)] == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_videos_decode_and_boxes_locate_actor(small_root: Path) -> None:
    boxes = read_gt_boxes(small_root / "gt_boxes.csv")
    assert len(boxes) == 9
    for ci, name in enumerate(SMALL.class_names):
        for g in (1, 2, 3):
            stem = f"v_{name}_g{g:02d}_c01"
            frames = _decode(small_root / "videos" / name / f"{stem}.avi")
            vr = decord.VideoReader(str(small_root / "videos" / name / f"{stem}.avi"), num_threads=1)
            assert len(vr) == SMALL.frames
            assert vr.get_avg_fps() == pytest.approx(SMALL.fps)
            t, h, w, _ = frames.shape
            assert h == SMALL.height and w % 2 == 0 and 1.3 * h - 2 <= w <= 2.0 * h + 2

            b = boxes[stem]
            assert b.shape == (SMALL.frames, 4) and b.dtype == np.float32
            assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
            assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()

            rendered = render_video(SMALL, ci, g, 1)
            np.testing.assert_array_equal(rendered.boxes, b)
            # the file is a faithful (near-lossless) encoding of the rendered video
            assert np.abs(frames.astype(np.int16) - rendered.frames).mean() < 6.0

            diff = np.abs(frames.astype(np.float32) - rendered.background).mean(axis=3)
            inside = np.zeros(diff.shape, dtype=bool)
            for i, (x0, y0, x1, y1) in enumerate(b.astype(int)):
                inside[i, y0:y1, x0:x1] = True
            assert diff[inside].mean() > 10 * diff[~inside].mean(), stem


def test_deterministic_by_seed(small_root: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(again, SMALL, progress=False)
    assert (again / "gt_boxes.csv").read_bytes() == (small_root / "gt_boxes.csv").read_bytes()
    for p in sorted(small_root.glob("videos/*/*.avi")):
        q = again / p.relative_to(small_root)
        np.testing.assert_array_equal(_decode(p), _decode(q))

    other = SyntheticSpec(**{**SMALL.__dict__, "seed": SMALL.seed + 1})
    a = render_video(SMALL, 0, 1, 1)
    b = render_video(other, 0, 1, 1)
    assert a.frames.shape != b.frames.shape or not np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.boxes, b.boxes)


def test_actor_is_small_and_often_off_centre() -> None:
    spec = SyntheticSpec(n_classes=len(CLASS_NAMES), frames=16, seed=3)
    cut = half_hidden = outer = n = 0
    for g in range(1, spec.groups + 1):
        bg = group_background(spec, g)
        for ci in range(spec.n_classes):
            for c in range(1, spec.clips_per_group + 1):
                v = render_video(spec, ci, g, c, background=bg)
                h, w = v.frames.shape[1:3]
                b = v.boxes.astype(np.float64)
                assert ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).max() <= 0.05 * h * w
                # centred square crop of side = height, the usual centre-crop evaluation view
                c0, c1 = (w - h) / 2, (w + h) / 2
                visible = np.clip(np.minimum(b[:, 2], c1) - np.maximum(b[:, 0], c0), 0, None) / (
                    b[:, 2] - b[:, 0]
                )
                cut += bool((visible < 1).any())
                half_hidden += bool(visible.mean() < 0.5)
                centre_x = (b[:, 0] + b[:, 2]).mean() / 2
                outer += bool(centre_x < w / 3 or centre_x > 2 * w / 3)
                n += 1
    assert n == len(CLASS_NAMES) * spec.groups * spec.clips_per_group
    assert cut / n > 0.3, f"centre crop cuts the actor in only {cut}/{n} videos"
    assert half_hidden / n > 0.2, f"actor mostly hidden by the centre crop in only {half_hidden}/{n}"
    assert 0.55 < outer / n < 0.85


def _centres(boxes: np.ndarray) -> np.ndarray:
    b = boxes.astype(np.float64)
    return np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)


@pytest.mark.parametrize("clip", [1, 2, 3])
def test_class_is_carried_by_actor_motion(clip: int) -> None:
    spec = SyntheticSpec(n_classes=len(CLASS_NAMES), frames=24, seed=11)
    bg = group_background(spec, 1)
    for ci, name in enumerate(CLASS_NAMES):
        v = render_video(spec, ci, 1, clip, background=bg)
        ctr = _centres(v.boxes)
        span = ctr.max(axis=0) - ctr.min(axis=0)
        sides = v.boxes[:, 2] - v.boxes[:, 0]
        off = ctr - ctr.mean(axis=0)
        cross = (off[:-1, 0] * off[1:, 1] - off[:-1, 1] * off[1:, 0]).sum()
        moving = span.max() >= 4
        if name == "SwingHorizontal":
            assert span[0] >= 4 and span[1] == 0, name
        elif name in ("SwingVertical", "Hop"):
            assert span[1] >= 4 and span[0] == 0, name
        elif name == "Circle":
            assert moving and abs(cross) > 0 and span[0] >= 4 and span[1] >= 4, name
        elif name == "Diagonal":
            r = np.corrcoef(ctr[:, 0], ctr[:, 1])[0, 1]
            assert moving and abs(r) > 0.9, (name, r)
        elif name == "Pulse":
            assert span.max() <= 1 and sides.max() - sides.min() >= 3, name
        elif name == "Blink":
            assert span.max() == 0 and (sides == sides[0]).all(), name
            cx, cy = ctr[0].astype(int)
            lum = v.frames[:, cy, cx].astype(np.float64).mean(axis=1)
            dark = lum < 60
            assert 0.2 < dark.mean() < 0.8, (name, dark.mean())
        elif name == "Figure8":
            assert span[0] >= 4 and span[1] >= 2, name
        elif name == "Pendulum":
            # an arc: highest (smallest y) at both ends of the swing, lowest in the middle
            assert span[0] >= 4 and span[1] >= 1, name
            x_off = np.abs(off[:, 0])
            assert np.corrcoef(x_off, ctr[:, 1])[0, 1] < -0.8, name
        elif name == "Squash":
            w_, h_ = sides, v.boxes[:, 3] - v.boxes[:, 1]
            assert span.max() <= 1 and w_.max() - w_.min() >= 3, name
            assert np.corrcoef(w_, h_)[0, 1] < -0.8, name  # width and height in antiphase
        elif name == "Flash":
            assert span.max() == 0 and (sides == sides[0]).all(), name
            cx, cy = ctr[0].astype(int)
            colours = {tuple(c) for c in v.frames[:, cy, cx] // 32}
            lum = v.frames[:, cy, cx].astype(np.float64).mean(axis=1)
            assert len(colours) >= 2 and lum.min() > 60, name  # two hues, never dark (unlike Blink)
        elif name == "Stomp":
            assert span[1] >= 4 and span[0] == 0, name
            # |sin| lingers near its peak: Stomp spends most frames down low (Hop: up high)
            y = ctr[:, 1]
            assert y.max() - np.median(y) < np.median(y) - y.min(), name
        else:
            raise AssertionError(f"class {name} has no motion check")


def test_source_classes_leave_the_target_unchanged() -> None:
    """The source-only classes are appended: a target video renders the same whether the spec
    has 8 classes or all of them, and the target set never sees a source-only class."""
    target = SyntheticSpec(n_classes=TARGET_CLASSES, groups=3, clips_per_group=1, frames=16, seed=2)
    wide = SyntheticSpec(**{**target.__dict__, "n_classes": len(CLASS_NAMES)})
    assert len(CLASS_NAMES) - TARGET_CLASSES >= 4 and wide.class_names[:TARGET_CLASSES] == target.class_names
    for ci in range(TARGET_CLASSES):
        a, b = render_video(target, ci, 2, 1), render_video(wide, ci, 2, 1)
        assert np.array_equal(a.frames, b.frames) and np.array_equal(a.boxes, b.boxes)


def test_actor_centred_source_framing() -> None:
    """off_centre = 0 (the source set, like Kinetics' framing): every actor in the middle third."""
    spec = SyntheticSpec(n_classes=len(CLASS_NAMES), groups=3, clips_per_group=2, frames=16, seed=1, off_centre=0.0)
    for g in range(1, 4):
        bg = group_background(spec, g)
        for ci in range(spec.n_classes):
            for c in (1, 2):
                v = render_video(spec, ci, g, c, background=bg)
                w = v.frames.shape[2]
                x = _centres(v.boxes)[:, 0]
                centre_x = (x.min() + x.max()) / 2  # 16 frames cover a whole period: the base centre
                assert w / 3 - 1 <= centre_x <= 2 * w / 3 + 1, (CLASS_NAMES[ci], centre_x, w)


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="height"):
        SyntheticSpec(height=81)
    with pytest.raises(ValueError, match="groups"):
        SyntheticSpec(groups=4)
    with pytest.raises(ValueError, match="n_classes"):
        SyntheticSpec(n_classes=len(CLASS_NAMES) + 1)


def test_read_gt_boxes_rejects_gaps(tmp_path: Path) -> None:
    p = tmp_path / "gt.csv"
    p.write_text("video,frame,x0,y0,x1,y1\nv,0,1,2,3,4\nv,2,1,2,3,4\n")
    with pytest.raises(ValueError, match="not 0..1"):
        read_gt_boxes(p)


def test_small_frames_damp_motion_to_fit() -> None:
    # at height 32 the largest amplitudes (1.5 actor sides each way) cannot fit vertically
    spec = SyntheticSpec(
        n_classes=len(CLASS_NAMES), groups=3, clips_per_group=3, height=32, actor_size=(8, 8)
    )
    for g in (1, 2, 3):
        bg = group_background(spec, g)
        for ci in range(spec.n_classes):
            for c in (1, 2, 3):
                v = render_video(spec, ci, g, c, background=bg)
                h, w = v.frames.shape[1:3]
                assert (
                    (v.boxes[:, :2] >= 0).all() and (v.boxes[:, 2] <= w).all() and (v.boxes[:, 3] <= h).all()
                )


def test_classes_survive_a_horizontal_flip() -> None:
    """Training flips clips; a class whose mirror image is another class would be unlearnable."""
    spec = SyntheticSpec(n_classes=len(CLASS_NAMES), frames=24, seed=5)
    bg = group_background(spec, 1)
    directions = {"Circle": set(), "Diagonal": set()}
    for clip in range(1, 13):
        for name in directions:
            v = render_video(spec, CLASS_NAMES.index(name), 1, clip, background=bg)
            off = _centres(v.boxes) - _centres(v.boxes).mean(axis=0)
            if name == "Circle":
                directions[name].add(bool((off[:-1, 0] * off[1:, 1] - off[:-1, 1] * off[1:, 0]).sum() > 0))
            else:
                directions[name].add(bool(np.corrcoef(off[:, 0], off[:, 1])[0, 1] > 0))
    # Both mirror images occur within each class, so a flipped clip is still in its class.
    assert directions == {"Circle": {True, False}, "Diagonal": {True, False}}
    assert not {"CircleCW", "CircleCCW", "DiagonalUp", "DiagonalDown"} & set(CLASS_NAMES)


def test_extra_test_clips_are_test_only(small_root: Path, tmp_path: Path) -> None:
    """Extra test clips add test videos to the split holding their group out and to no training
    list: the training sets and every original video stay byte-identical."""
    more = SyntheticSpec(**{**SMALL.__dict__, "extra_test_clips": 2})
    root = tmp_path / "more"
    summary = generate(root, more, progress=False)
    assert summary["n_videos"] == 9 * 3
    for split in (1, 2, 3):
        assert (root / f"splits/trainlist0{split}.txt").read_bytes() == \
            (small_root / f"splits/trainlist0{split}.txt").read_bytes()
        test = (root / f"splits/testlist0{split}.txt").read_text().split()
        assert len(test) == 3 * 3 and all(f"_g{split:02d}_" in t for t in test)
    for p in sorted(small_root.glob("videos/*/*.avi")):
        assert (root / p.relative_to(small_root)).read_bytes() == p.read_bytes()
    with pytest.raises(ValueError, match="extra_test_clips"):
        SyntheticSpec(clips_per_group=4, extra_test_clips=96)
