"""Crop geometry: conventional crops, fixed boxes, IoU, and crop_resize's pixels."""

import torch

from asnet.data.crops import (
    box_iou,
    centre_crop_boxes,
    crop_resize,
    full_frame_boxes,
    multiscale_corner_boxes,
    oracle_boxes,
    random_boxes,
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


def test_crop_resize_is_bit_identical_to_normalising_then_flipping():
    """The flip is applied to the uint8 patch (cheap) and the normalisation in place: the
    numbers must equal, bit for bit, resizing, normalising and then mirroring the floats
    (what default-preset training has always computed)."""
    gen = torch.Generator().manual_seed(3)
    clips = torch.randint(0, 256, (4, 3, 60, 90, 3), dtype=torch.uint8, generator=gen)
    boxes = torch.tensor([[0.0, 0.0, 60.0, 60.0], [30.0, 10.0, 80.0, 60.0], [5.0, 3.0, 21.0, 19.0], [70.0, 40.0, 90.0, 60.0]])
    flip = torch.tensor([True, False, True, True])
    hs, ws = torch.full((4,), 60), torch.full((4,), 90)
    for norm in (Normalisation("kinetics", 1.0, (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
                 Normalisation("activitynet", 255.0, (114.7748, 107.7354, 99.475), (1.0, 1.0, 1.0))):
        got = crop_resize(clips, boxes, 16, norm, hs, ws, flip)
        assert torch.equal(got, _reference_crop_resize(clips, boxes, 16, norm, flip))
        assert torch.equal(crop_resize(clips, boxes, 16, norm, hs, ws), _reference_crop_resize(clips, boxes, 16, norm, [False] * 4))
