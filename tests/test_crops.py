"""Crop geometry: conventional crops, fixed boxes, IoU, and crop_resize's pixels."""

import pytest
import torch
import torch.nn.functional as F

from asnet.data.crops import (
    CORNERS,
    Frames,
    box_iou,
    centre_crop_boxes,
    corner_boxes,
    crop_resize,
    crop_resize_uint8,
    full_frame_boxes,
    multiscale_corner_boxes,
    normalise,
    oracle_boxes,
    random_boxes,
    square_at,
)
from asnet.hara import Normalisation
from asnet.train.inputs import clip_to_frame

H, W = torch.tensor([64, 80]), torch.tensor([128, 80])


def test_centre_crop_is_short_side_square_in_the_middle():
    b = centre_crop_boxes(H, W)
    assert torch.equal(b, torch.tensor([[32.0, 0.0, 96.0, 64.0], [0.0, 0.0, 80.0, 80.0]]))


def test_multiscale_corner_boxes_stay_inside_and_use_the_scales():
    gen = torch.Generator().manual_seed(0)
    hs, ws = torch.full((200,), 64), torch.full((200,), 128)
    b = multiscale_corner_boxes(hs, ws, (1.0, 0.5), gen)
    sides = (b[:, 2] - b[:, 0]).unique().tolist()
    assert sorted(sides) == [32.0, 64.0]
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 128).all() and (b[:, 1] >= 0).all() and (b[:, 3] <= 64).all()
    x0s = set(b[:, 0].tolist())
    assert {0.0, 96.0, 64.0, 32.0} <= x0s  # left corners, right corners (both sides), centres


def test_random_and_oracle_boxes_inside_frame():
    gen = torch.Generator().manual_seed(1)
    b = random_boxes(torch.full((50,), 64), torch.full((50,), 100), 28, gen)
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 100).all()
    assert torch.allclose(b[:, 2] - b[:, 0], torch.full((50,), 28.0))
    gt = torch.tensor([[120.0, 50.0, 128.0, 60.0]])  # small actor at the bottom-right
    o = oracle_boxes(gt, torch.tensor([64]), torch.tensor([128]), min_side=14)
    # centred on y, pushed left into the frame on x
    assert torch.allclose(o, torch.tensor([[114.0, 48.0, 128.0, 62.0]]))


def test_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 10.0, 10.0], [2.0, 2.0, 3.0, 3.0]])
    assert torch.allclose(box_iou(a, b), torch.tensor([50 / 150, 1.0, 0.0]))


def test_clip_to_frame():
    b = clip_to_frame(torch.tensor([[-5.0, 10.0, 20.0, 90.0]]), torch.tensor([64]), torch.tensor([128]))
    assert torch.equal(b, torch.tensor([[0.0, 10.0, 20.0, 64.0]]))


def test_crop_resize_takes_the_right_pixels_and_flips():
    clip = torch.zeros(1, 2, 64, 128, 3, dtype=torch.uint8)
    clip[0, :, 0:32, 96:128, 0] = 255  # red top-right quadrant block
    clip[0, :, 0:32, 112:128, 1] = 255  # its right half also green
    norm = Normalisation("unit", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    box = torch.tensor([[96.0, 0.0, 128.0, 32.0]])
    x = crop_resize(clip, box, 16, norm, torch.tensor([64]), torch.tensor([128]))
    assert x.shape == (1, 3, 2, 16, 16)
    assert torch.allclose(x[0, 0], torch.ones(2, 16, 16))  # all red
    assert x[0, 1, :, :, -1].min() > 0.99 and x[0, 1, :, :, 0].max() < 0.01  # green on the right only
    xf = crop_resize(clip, box, 16, norm, torch.tensor([64]), torch.tensor([128]), flip=torch.tensor([True]))
    assert xf[0, 1, :, :, 0].min() > 0.99  # flipped: green on the left


def test_full_frame_box_and_padding_ignored():
    clip = torch.zeros(1, 1, 40, 100, 3, dtype=torch.uint8)
    clip[0, :, :, 80:, :] = 255  # padding beyond the true width 80
    b = full_frame_boxes(torch.tensor([40]), torch.tensor([80]))
    x = crop_resize(clip, b, 8, Normalisation("unit", 1.0, (0.0,) * 3, (1.0,) * 3), torch.tensor([40]), torch.tensor([80]))
    assert float(x.max()) == 0.0


def _reference_crop_resize(clips, boxes, size, norm, flip):
    """crop_resize as first written: resize, normalise as floats, then mirror the floats."""
    import torch.nn.functional as F

    from asnet.data.crops import pixel_window

    to_pixels = 255.0 / norm.value_scale
    m = torch.tensor(norm.mean).view(3, 1, 1, 1) * to_pixels
    s = torch.tensor(norm.std).view(3, 1, 1, 1) * to_pixels
    out = []
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = pixel_window(box, clips.shape[2], clips.shape[3])
        patch = clips[i, :, y0:y1, x0:x1, :].permute(0, 3, 1, 2)
        if patch.shape[-2:] != (size, size):
            aa = patch.shape[-1] > size or patch.shape[-2] > size
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False, antialias=aa)
        x = (patch.permute(1, 0, 2, 3).float() - m) / s
        out.append(x.flip(-1) if bool(flip[i]) else x)
    return torch.stack(out)


def test_worker_crop_is_bit_identical_to_normalising_then_flipping():
    """The workers' uint8 crop, mirrored as uint8 and normalised on the device, must equal,
    bit for bit, resizing, normalising and then mirroring the floats."""
    gen = torch.Generator().manual_seed(3)
    clips = torch.randint(0, 256, (4, 3, 60, 90, 3), dtype=torch.uint8, generator=gen)
    boxes = torch.tensor([[0.0, 0.0, 60.0, 60.0], [30.0, 10.0, 80.0, 60.0], [5.0, 3.0, 21.0, 19.0], [70.0, 40.0, 90.0, 60.0]])
    flip = torch.tensor([True, False, True, True])
    hs, ws = torch.full((4,), 60), torch.full((4,), 90)
    for norm in (Normalisation("kinetics", 1.0, (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
                 Normalisation("activitynet", 255.0, (114.7748, 107.7354, 99.475), (1.0, 1.0, 1.0))):
        got = normalise(crop_resize_uint8(clips, boxes, 16, hs, ws, flip), norm)
        assert torch.equal(got, _reference_crop_resize(clips, boxes, 16, norm, flip))
        plain = normalise(crop_resize_uint8(clips, boxes, 16, hs, ws), norm)
        assert torch.equal(plain, _reference_crop_resize(clips, boxes, 16, norm, [False] * 4))


# Boxes that exercise every branch of the resampling: shrink both ways, shrink one way and
# stretch the other, stretch both ways (no antialias), exactly the output size (a copy),
# partly outside the frame, fractional corners, a box inside a narrower true frame (padding).
BOXES = torch.tensor([
    [3.0, 4.0, 50.0, 51.0], [-10.0, -5.0, 30.0, 40.0], [3.0, 4.0, 27.0, 28.0], [10.0, 10.0, 20.0, 30.0],
    [0.0, 0.0, 85.0, 64.0], [30.4, 2.5, 70.6, 60.5], [2.0, 2.0, 12.0, 9.0], [60.0, 0.0, 95.0, 40.0],
])


def _float_reference(clips, boxes, size, hs, ws, flip):
    """The crop computed in float by F.interpolate per box (no rounding to grey levels)."""
    from asnet.data.crops import pixel_window

    out = []
    for i, box in enumerate(boxes):
        x0, y0, x1, y1 = pixel_window(box, int(hs[i]), int(ws[i]))
        patch = clips[i, :, y0:y1, x0:x1, :].permute(0, 3, 1, 2).float()
        if patch.shape[-2:] != (size, size):
            aa = patch.shape[-1] > size or patch.shape[-2] > size
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False, antialias=aa)
        patch = patch.permute(1, 0, 2, 3)
        out.append(patch.flip(-1) if bool(flip[i]) else patch)
    return torch.stack(out)


@pytest.mark.parametrize("size", [24, 48])
def test_device_crop_is_the_float_resize_and_within_one_grey_level_of_the_workers(size):
    """Frames.crop (one batched matrix product per axis, no host reads) computes what
    F.interpolate computes in float, to float rounding; the workers' uint8 crop differs from
    it by the rounding to whole grey levels only (at most 1, about 0.25 on average)."""
    gen = torch.Generator().manual_seed(5)
    n = BOXES.shape[0]
    clips = torch.randint(0, 256, (n, 3, 64, 96, 3), dtype=torch.uint8, generator=gen)
    hs, ws = torch.full((n,), 64), torch.full((n,), 96)
    ws[-1] = 90  # a narrower frame padded to 96: the box is clipped to 90
    flip = torch.tensor([True, False, True, False, True, False, False, True])
    grey = Normalisation("grey", 255.0, (0.0,) * 3, (1.0,) * 3)  # network input == grey levels
    got = crop_resize(clips, BOXES, size, grey, hs, ws, flip)
    assert got.shape == (n, 3, 3, size, size) and got.dtype == torch.float32
    assert (got - _float_reference(clips, BOXES, size, hs, ws, flip)).abs().max() < 2e-3
    workers = crop_resize_uint8(clips, BOXES, size, hs, ws, flip).float()
    diff = (got - workers).abs()
    assert diff.max() <= 1.0 + 1e-3 and diff.mean() < 0.35


def test_frames_crop_many_times_and_every_kth_frame():
    gen = torch.Generator().manual_seed(6)
    clips = torch.randint(0, 256, (2, 6, 40, 50, 3), dtype=torch.uint8, generator=gen)
    hs, ws = torch.tensor([40, 36]), torch.tensor([50, 50])
    frames = Frames.of(clips, hs, ws)
    norm = Normalisation("unit", 1.0, (0.5,) * 3, (0.25,) * 3)
    boxes = torch.tensor([[0.0, 0.0, 30.0, 30.0], [10.0, 5.0, 40.0, 35.0]])
    once = frames.crop(boxes, 16, norm)
    assert torch.equal(once, frames.crop(boxes, 16, norm))  # the frames are not changed by a crop
    assert torch.equal(once, crop_resize(clips, boxes, 16, norm, hs, ws))
    assert torch.equal(frames.every(2).crop(boxes, 16, norm), crop_resize(clips[:, ::2], boxes, 16, norm, hs, ws))


def test_corner_boxes_equal_square_at_per_sample():
    gen = torch.Generator().manual_seed(7)
    pos = torch.randint(len(CORNERS), (30,), generator=gen)
    side = torch.rand(30, generator=gen) * 80 + 10
    h, w = torch.full((30,), 64.0), torch.full((30,), 90.0)
    want = torch.cat([square_at(CORNERS[int(p)], side[i : i + 1], h[i : i + 1], w[i : i + 1]) for i, p in enumerate(pos)])
    assert torch.equal(corner_boxes(pos, side, h, w), want)


def test_device_crop_runs_under_fake_tensors():
    """No value of a box or a frame size is read on the host: the crop runs on fake tensors
    (which hold no data), as asnet plan measures a step's memory."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        clips = torch.empty(2, 4, 64, 96, 3, dtype=torch.uint8)
        boxes = torch.empty(2, 4)
        hs, ws = torch.empty(2), torch.empty(2)
        x = crop_resize(clips, boxes, 32, Normalisation("unit", 1.0, (0.5,) * 3, (0.25,) * 3), hs, ws,
                        torch.empty(2, dtype=torch.bool))
        assert x.shape == (2, 3, 4, 32, 32)
