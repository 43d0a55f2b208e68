"""Embedded synthetic action dataset in the UCF-101 on-disk layout.

The generator embodies ASNet's premise: the class is carried *only* by a small actor
(a bright square with a dark border) whose motion pattern is the class. The actor sits at a
random, usually off-centre position in a wide frame, surrounded by moving distractors that
never follow a class pattern, on a textured per-group background. Centre and random crops
therefore often cut the actor off, while a crop around the ground-truth box sees it large.

Layout written under ``out_root`` (same as UCF-101, so the same parsers apply)::

    videos/<ClassName>/v_<ClassName>_gXX_cYY.avi   mpeg4 in AVI, yuv420p, spec.fps
    splits/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt   (CRLF)
    gt_boxes.csv   video,frame,x0,y0,x1,y1   (source pixels, x1/y1 exclusive)
    spec.json      the SyntheticSpec used, for provenance
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

# Order matters: SyntheticSpec.n_classes takes the first n. All are periodic with a
# period of 8-12 frames, so an 8-frame clip at 25 fps covers most of one cycle.
# Every class is invariant under a horizontal flip (the paper's training augmentation):
# a mirrored clockwise circle is an anticlockwise one, so direction is random within
# Circle and Diagonal rather than being two classes that flipping would swap.
CLASS_NAMES: tuple[str, ...] = (
    "SwingHorizontal",  # x = A sin(theta)
    "SwingVertical",  # y = A sin(theta)
    "Circle",  # (x, y) = A (cos theta, +-sin theta), direction random per video
    "Diagonal",  # oscillation along "/" or "\\" (random per video): (a sin theta, -+a sin theta)
    "Pulse",  # static, side s(t) = s0 (1 + 0.45 sin theta)
    "Blink",  # static, fill switches between bright and dark every half period
    "Hop",  # y = -A |sin(theta / 2)|: bounces up from a floor
    "Figure8",  # (x, y) = (A sin theta, A/2 sin 2 theta), mirror-symmetric
    # Classes of the pretraining source only (the Kinetics stand-in, SOURCE_SPEC): motions the
    # target set does not have, as Kinetics has actions UCF-101 lacks. Appended, so the first
    # 8 (the target's) render exactly as before.
    "Pendulum",  # x = A sin theta, y = -A/2 sin^2 theta: a swing along an arc, highest at the ends
    "Squash",  # static, width and height pulse in antiphase: w = s (1 + 0.4 sin), h = s (1 - 0.4 sin)
    "Flash",  # static, fill switches between two bright hues every half period
    "Stomp",  # y = +A |sin(theta / 2)|: drops down from a ceiling (Hop upside down)
)
# The target set's classes: what the default preset's n_classes = 8 takes.
TARGET_CLASSES = 8

_PERIOD_RANGE = (8.0, 12.0)  # frames per cycle
_AMPLITUDE_RANGE = (0.6, 1.5)  # in actor sides
_ASPECT_RANGE = (1.3, 2.0)
_OFF_CENTRE_PROB = 0.7  # probability the actor's centre lies in the outer thirds of the width
_BG_MARGIN = 16  # the group texture is larger than any frame so each video crops its own view

# FFmpeg's lambda scale: global_quality = qscale * FF_QP2LAMBDA (as `-q:v 2` does)
_FF_QP2LAMBDA = 118
_QSCALE = 2

_BOX_COLUMNS = ("video", "frame", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the synthetic dataset. Everything is deterministic from ``seed``."""

    n_classes: int = 8
    groups: int = 9  # split k tests on the k-th third of the groups (g01-03, g04-06, g07-09)
    clips_per_group: int = 3
    # Clips per (class, group) beyond clips_per_group that only the split holding the group
    # out tests: more test videos, the same training sets (the audit's power; docs/results.md).
    extra_test_clips: int = 0
    frames: int = 32
    fps: int = 25
    height: int = 80
    actor_size: tuple[int, int] = (8, 12)
    distractors: tuple[int, int] = (2, 4)
    seed: int = 0
    # Probability that the actor's centre lies in the outer thirds of the width. 0.7 gives
    # the paper's premise (centre/random crops often miss); 0.0 keeps actors in the middle
    # third, like the actor-centred clips of a pretraining set such as Kinetics.
    off_centre: float = _OFF_CENTRE_PROB

    def __post_init__(self) -> None:
        if not 1 <= self.n_classes <= len(CLASS_NAMES):
            raise ValueError(f"n_classes must be in 1..{len(CLASS_NAMES)}, got {self.n_classes}")
        if self.groups < 3 or self.groups % 3 or self.groups > 99:
            raise ValueError(f"groups must be a multiple of 3 in 3..99 (three test folds), got {self.groups}")
        if not 1 <= self.clips_per_group <= 99:
            raise ValueError(f"clips_per_group must be in 1..99, got {self.clips_per_group}")
        if not 0 <= self.extra_test_clips <= 99 - self.clips_per_group:
            raise ValueError(f"extra_test_clips must be in 0..{99 - self.clips_per_group} (clip numbers stop at "
                             f"c99), got {self.extra_test_clips}")
        if self.frames < 1 or self.fps < 1:
            raise ValueError(f"frames and fps must be positive, got {self.frames}, {self.fps}")
        # yuv420p needs even dimensions; below 32 px the actor and its motion do not fit.
        if self.height < 32 or self.height % 2:
            raise ValueError(f"height must be even and >= 32, got {self.height}")
        lo, hi = self.actor_size
        if not 3 <= lo <= hi <= self.height // 4:
            raise ValueError(f"actor_size must satisfy 3 <= lo <= hi <= height/4, got {self.actor_size}")
        if not 0.0 <= self.off_centre <= 1.0:
            raise ValueError(f"off_centre must be a probability, got {self.off_centre}")
        dlo, dhi = self.distractors
        if not 0 <= dlo <= dhi:
            raise ValueError(f"distractors must satisfy 0 <= lo <= hi, got {self.distractors}")

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes used by this spec (the first ``n_classes`` of CLASS_NAMES)."""
        return CLASS_NAMES[: self.n_classes]


@dataclass(frozen=True)
class RenderedVideo:
    """One rendered video before encoding."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    boxes: np.ndarray  # (T, 4) int32 x0, y0, x1, y1 (exclusive)
    background: np.ndarray  # (H, W, 3) uint8, the frame without actor and distractors


def video_stem(class_name: str, group: int, clip: int) -> str:
    """UCF-101 style file stem, e.g. ``v_Circle_g01_c02``."""
    return f"v_{class_name}_g{group:02d}_c{clip:02d}"


def held_out_groups(spec: SyntheticSpec, split: int) -> range:
    """Groups held out for testing in ``split`` (1..3), mirroring UCF-101's g01-07/g08-14/g15-21."""
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split}")
    per_fold = spec.groups // 3
    return range((split - 1) * per_fold + 1, split * per_fold + 1)


# --------------------------------------------------------------------------- rendering


def group_background(spec: SyntheticSpec, group: int) -> np.ndarray:
    """Mildly textured background shared by a group, like one UCF-101 group's scene."""
    rng = np.random.default_rng([spec.seed, 0, group])
    h = spec.height + _BG_MARGIN
    w = int(round(spec.height * _ASPECT_RANGE[1])) + 2 + _BG_MARGIN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(60, 170, size=3).astype(np.float32)
    texture = np.zeros((h, w), np.float32)
    for _ in range(4):  # a few oriented low-frequency waves
        freq = rng.uniform(0.03, 0.15)
        angle = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        texture += rng.uniform(3, 7) * np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)) + phase)
    # coarse blotches: upsampled block noise
    blocks = rng.normal(0, 6, size=(h // 8 + 2, w // 8 + 2)).astype(np.float32)
    texture += np.kron(blocks, np.ones((8, 8), np.float32))[:h, :w]
    tint = rng.uniform(0.7, 1.3, size=3).astype(np.float32)
    grain = rng.normal(0, 2.5, size=(h, w, 3)).astype(np.float32)
    bg = base + texture[..., None] * tint + grain
    return np.clip(bg, 0, 255).astype(np.uint8)


def _disc_mask(diameter: int) -> np.ndarray:
    r = diameter / 2
    yy, xx = np.mgrid[0:diameter, 0:diameter] + 0.5
    return (yy - r) ** 2 + (xx - r) ** 2 <= r * r


def _diamond_mask(diameter: int) -> np.ndarray:
    r = diameter / 2
    yy, xx = np.mgrid[0:diameter, 0:diameter] + 0.5
    return np.abs(yy - r) + np.abs(xx - r) <= r


def _paste(frame: np.ndarray, mask: np.ndarray, x0: int, y0: int, colour: np.ndarray) -> None:
    """Paint ``colour`` where ``mask`` is set, mask top-left at (x0, y0), clipped to the frame."""
    h, w = frame.shape[:2]
    mh, mw = mask.shape
    fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + mw, w), min(y0 + mh, h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    sub = mask[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    frame[fy0:fy1, fx0:fx1][sub] = colour


@dataclass(frozen=True)
class _Trajectory:
    """Per-frame motion of the actor: offsets from its base centre, box size, fill state."""

    dx: np.ndarray
    dy: np.ndarray
    widths: np.ndarray  # int64 box width per frame
    heights: np.ndarray  # int64 box height per frame (== widths except Squash)
    fill_on: np.ndarray  # bool: bright fill (else the border colour shows through)
    alt_fill: np.ndarray  # bool: the second hue (Flash only)


def _actor_trajectory(class_name: str, frames: int, side: int, rng: np.random.Generator) -> _Trajectory:
    """The actor's motion for one video of `class_name` (random period, amplitude, phase)."""
    t = np.arange(frames, dtype=np.float64)
    period = rng.uniform(*_PERIOD_RANGE)
    amp = rng.uniform(*_AMPLITUDE_RANGE) * side
    phase = rng.uniform(0, 2 * math.pi)
    theta = 2 * math.pi * t / period + phase
    zero = np.zeros_like(t)
    dx, dy = zero, zero
    sides = np.full(frames, float(side))
    heights = None  # None: square, as wide as high
    fill_on = np.ones(frames, dtype=bool)
    alt_fill = np.zeros(frames, dtype=bool)
    diag = amp * 0.75  # per-axis amplitude, so the diagonal excursion is ~1.06 A
    if class_name == "SwingHorizontal":
        dx = amp * np.sin(theta)
    elif class_name == "SwingVertical":
        dy = amp * np.sin(theta)
    elif class_name == "Circle":
        direction = 1.0 if rng.random() < 0.5 else -1.0
        dx, dy = amp * np.cos(theta), direction * amp * np.sin(theta)
    elif class_name == "Diagonal":
        direction = 1.0 if rng.random() < 0.5 else -1.0
        dx, dy = diag * np.sin(theta), direction * diag * np.sin(theta)
    elif class_name == "Pulse":
        sides = side * (1 + 0.45 * np.sin(theta))
    elif class_name == "Blink":
        fill_on = np.sin(theta) >= 0
    elif class_name == "Hop":
        dy = -amp * np.abs(np.sin(theta / 2))
    elif class_name == "Figure8":
        dx, dy = amp * np.sin(theta), 0.5 * amp * np.sin(2 * theta)
    elif class_name == "Pendulum":
        dx, dy = amp * np.sin(theta), -0.5 * amp * np.sin(theta) ** 2
    elif class_name == "Squash":
        sides = side * (1 + 0.4 * np.sin(theta))
        heights = side * (1 - 0.4 * np.sin(theta))
    elif class_name == "Flash":
        alt_fill = np.sin(theta) < 0
    elif class_name == "Stomp":
        dy = amp * np.abs(np.sin(theta / 2))
    else:
        raise ValueError(f"unknown synthetic class {class_name!r}")
    widths = np.maximum(np.rint(sides), 3).astype(np.int64)
    hs = widths if heights is None else np.maximum(np.rint(heights), 3).astype(np.int64)
    return _Trajectory(dx, dy, widths, hs, fill_on, alt_fill)


def _sample_centre(lo: float, hi: float, width: int, rng: np.random.Generator, off_centre: float) -> float:
    """Actor centre x: in the outer thirds with probability `off_centre`, else the middle third."""
    third = width / 3
    if rng.random() < off_centre:
        # u**2 skews towards the frame edge, where centre crops lose the actor entirely
        u = rng.random() ** 2
        if rng.random() < 0.5:
            a, b = lo, min(hi, third)
            x = a + u * (b - a)
        else:
            a, b = max(lo, 2 * third), hi
            x = b - u * (b - a)
    else:
        a, b = max(lo, third), min(hi, 2 * third)
        x = a + rng.random() * (b - a)
    if a > b:  # the motion is too wide for that band in this frame: fall back to anywhere valid
        x = lo + rng.random() * (hi - lo)
    return float(x)


def _bright_colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated, bright fill: one channel high, one low, one random, then jittered."""
    c = np.array([rng.uniform(215, 255), rng.uniform(0, 60), rng.uniform(0, 255)])
    c = c[rng.permutation(3)] + rng.normal(0, 8, size=3)
    return np.clip(c, 0, 255).astype(np.uint8)


def _distractor_paths(
    n: int, frames: int, width: int, height: int, size: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Top-left positions (n, T, 2) of distractors: linear drift with reflection, or a smooth
    random walk. Drift speeds are low enough that no bounce repeats within a video, so no
    distractor ever looks periodic like a class."""
    out = np.zeros((n, frames, 2))
    for i in range(n):
        limit = np.array([width - size[i], height - size[i]], dtype=np.float64)
        pos = rng.uniform([0, 0], limit)
        if rng.random() < 0.5:
            angle = rng.uniform(0, 2 * math.pi)
            vel = rng.uniform(0.3, 1.5) * np.array([math.cos(angle), math.sin(angle)])
            steps = np.tile(vel, (frames, 1))
        else:
            steps = np.zeros((frames, 2))
            v = np.zeros(2)
            for t in range(frames):
                v = 0.8 * v + rng.normal(0, 0.45, size=2)
                steps[t] = v
        for t in range(frames):
            out[i, t] = pos
            pos = pos + steps[t]
            # reflect at the borders so distractors stay in view
            for k in range(2):
                if pos[k] < 0:
                    pos[k] = -pos[k]
                    steps[t:, k] *= -1
                elif pos[k] > limit[k]:
                    pos[k] = 2 * limit[k] - pos[k]
                    steps[t:, k] *= -1
    return out


def render_video(
    spec: SyntheticSpec,
    class_index: int,
    group: int,
    clip: int,
    background: np.ndarray | None = None,
) -> RenderedVideo:
    """Render one video deterministically from (spec.seed, class_index, group, clip).

    ``class_index`` is 0-based into ``spec.class_names``; ``background`` may pass the
    precomputed group texture (from the same spec and group) to save time.
    """
    class_name = spec.class_names[class_index]
    if background is None:
        background = group_background(spec, group)
    rng = np.random.default_rng([spec.seed, 1, class_index, group, clip])
    h = spec.height
    aspect = rng.uniform(*_ASPECT_RANGE)
    w = int(round(h * aspect / 2)) * 2
    oy = int(rng.integers(0, background.shape[0] - h + 1))
    ox = int(rng.integers(0, background.shape[1] - w + 1))
    bg = background[oy : oy + h, ox : ox + w].copy()

    side = int(rng.integers(spec.actor_size[0], spec.actor_size[1] + 1))
    traj = _actor_trajectory(class_name, spec.frames, side, rng)
    dx, dy = traj.dx, traj.dy
    half_w, half_h = traj.widths / 2, traj.heights / 2
    for _ in range(20):
        # keep one pixel away from the border for every frame of the motion (rounding slack)
        lo_x, hi_x = float(np.max(half_w - dx)) + 1, float(np.min(w - half_w - dx)) - 1
        lo_y, hi_y = float(np.max(half_h - dy)) + 1, float(np.min(h - half_h - dy)) - 1
        if lo_x <= hi_x and lo_y <= hi_y:
            break
        # small frames (e.g. height 48) cannot hold the largest amplitudes: damp the motion
        dx, dy = dx * 0.85, dy * 0.85
    else:
        raise ValueError(f"actor motion does not fit in a {w}x{h} frame; lower actor_size")
    cx = _sample_centre(lo_x, hi_x, w, rng, spec.off_centre)
    cy = float(rng.uniform(lo_y, hi_y))
    x0 = np.rint(cx + dx - half_w).astype(np.int64)
    y0 = np.rint(cy + dy - half_h).astype(np.int64)
    boxes = np.stack([x0, y0, x0 + traj.widths, y0 + traj.heights], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)

    fill = _bright_colour(rng)
    border = rng.uniform(0, 35, size=3).astype(np.uint8)  # dark, contrasting with the bright fill
    border_w = max(1, side // 5)

    n_dis = int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))
    dis_size = rng.integers(max(3, spec.actor_size[0] - 2), spec.actor_size[1] + 3, size=n_dis)
    dis_masks = [(_disc_mask if rng.random() < 0.5 else _diamond_mask)(int(s)) for s in dis_size]
    dis_colour = rng.uniform(30, 230, size=(n_dis, 3)).astype(np.uint8)
    dis_pos = _distractor_paths(n_dis, spec.frames, w, h, dis_size, rng)
    # Flash's second hue: the same bright colour with its channels rotated (no random draw, so
    # every other class renders exactly as before this class existed)
    alt = fill[[1, 2, 0]]

    frames = np.empty((spec.frames, h, w, 3), np.uint8)
    for t in range(spec.frames):
        frame = frames[t]
        frame[:] = bg
        for i in range(n_dis):
            px, py = np.rint(dis_pos[i, t]).astype(int)
            _paste(frame, dis_masks[i], int(px), int(py), dis_colour[i])
        # the actor is drawn last so it is never occluded and its box is exact
        bx0, by0, bx1, by1 = (int(v) for v in boxes[t])
        frame[by0:by1, bx0:bx1] = border
        bw = min(border_w, min(by1 - by0, bx1 - bx0) // 3)
        if traj.fill_on[t] and bw > 0:
            frame[by0 + bw : by1 - bw, bx0 + bw : bx1 - bw] = alt if traj.alt_fill[t] else fill
    return RenderedVideo(frames=frames, boxes=boxes.astype(np.int32), background=bg)


# --------------------------------------------------------------------------- writing


def write_video(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode RGB frames (T, H, W, 3) as high-quality mpeg4/yuv420p in an AVI container."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames.shape
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # single-threaded encoding keeps the bitstream byte-identical across runs
        stream.thread_count = 1
        # constant quantiser like `ffmpeg -q:v 2`; stream.options={"qscale": ...} is silently ignored
        stream.codec_context.qscale = True
        stream.codec_context.global_quality = _QSCALE * _FF_QP2LAMBDA
        for arr in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_crlf(path: Path, lines: list[str]) -> None:
    # official UCF-101 lists are CRLF with a final CRLF
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode("ascii"))


def write_split_lists(out_dir: Path, spec: SyntheticSpec) -> dict[int, dict[str, int]]:
    """Write classInd.txt and the three train/test lists; returns counts per split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = spec.class_names
    _write_crlf(out_dir / "classInd.txt", [f"{i + 1} {n}" for i, n in enumerate(names)])
    counts: dict[int, dict[str, int]] = {}
    for split in (1, 2, 3):
        held_out = set(held_out_groups(spec, split))
        train: list[str] = []
        test: list[str] = []
        for ci, name in enumerate(names):
            for g in range(1, spec.groups + 1):
                for c in range(1, spec.clips_per_group + spec.extra_test_clips + 1):
                    rel = f"{name}/{video_stem(name, g, c)}.avi"
                    if g in held_out:
                        test.append(rel)
                    elif c <= spec.clips_per_group:  # extra clips are test-only
                        train.append(f"{rel} {ci + 1}")
        _write_crlf(out_dir / f"trainlist0{split}.txt", train)
        _write_crlf(out_dir / f"testlist0{split}.txt", test)
        counts[split] = {"train": len(train), "test": len(test)}
    return counts


def generate(out_root: Path, spec: SyntheticSpec, progress: bool = True) -> dict:
    """Generate the whole dataset under ``out_root``; returns a summary with counts and timing."""
    start = time.perf_counter()
    out_root = Path(out_root)
    video_dir = out_root / "videos"
    names = spec.class_names
    jobs = [
        (ci, g, c)
        for ci in range(len(names))
        for g in range(1, spec.groups + 1)
        for c in range(1, spec.clips_per_group + spec.extra_test_clips + 1)
    ]
    backgrounds = {g: group_background(spec, g) for g in range(1, spec.groups + 1)}
    box_rows: list[tuple[str, int, int, int, int, int]] = []
    widths: list[int] = []
    for ci, g, c in tqdm(jobs, desc="synthetic videos", unit="video", disable=not progress):
        name = names[ci]
        stem = video_stem(name, g, c)
        video = render_video(spec, ci, g, c, background=backgrounds[g])
        write_video(video_dir / name / f"{stem}.avi", video.frames, spec.fps)
        widths.append(video.frames.shape[2])
        box_rows.extend((stem, t, *(int(v) for v in video.boxes[t])) for t in range(spec.frames))

    with open(out_root / "gt_boxes.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(_BOX_COLUMNS)
        writer.writerows(box_rows)
    counts = write_split_lists(out_root / "splits", spec)
    spec_dict = asdict(spec)
    (out_root / "spec.json").write_text(json.dumps(spec_dict, indent=2) + "\n")
    return {
        "out_root": str(out_root),
        "n_videos": len(jobs),
        "n_classes": len(names),
        "classes": list(names),
        "frames_per_video": spec.frames,
        "height": spec.height,
        "width_range": [min(widths), max(widths)],
        "splits": counts,
        "seconds": round(time.perf_counter() - start, 2),
        "spec": spec_dict,
    }


def read_gt_boxes(path: Path) -> dict[str, np.ndarray]:
    """Read gt_boxes.csv into ``{video_stem: float32 array (frames, 4) of x0, y0, x1, y1}``."""
    per_video: dict[str, list[tuple[int, list[float]]]] = {}
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != _BOX_COLUMNS:
            raise ValueError(f"{path}: expected header {','.join(_BOX_COLUMNS)}, got {header}")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 6:
                raise ValueError(f"{path}:{lineno}: expected 6 columns, got {len(row)}")
            try:
                frame = int(row[1])
                box = [float(v) for v in row[2:]]
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: non-numeric value in {row}") from e
            per_video.setdefault(row[0], []).append((frame, box))
    out: dict[str, np.ndarray] = {}
    for video, items in per_video.items():
        items.sort(key=lambda it: it[0])
        frames = [fr for fr, _ in items]
        if frames != list(range(len(frames))):
            raise ValueError(f"{path}: frames of {video} are not 0..{len(frames) - 1} exactly once")
        out[video] = np.asarray([b for _, b in items], dtype=np.float32)
    return out
