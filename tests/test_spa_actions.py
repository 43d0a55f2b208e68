"""Action -> box mapping, punishments at the edges, and the reward of eq. 6."""

import torch

from asnet.spa.actions import actions_to_boxes, initial_boxes, punishments, rewards

H, W = torch.tensor([64]), torch.tensor([128])


def test_three_actions_map_to_square_boxes():
    boxes = actions_to_boxes(torch.tensor([[0.5, 0.25, 0.5]]), H, W, init_box=28)
    # x = 0.5*128, y = 0.25*64, side = 0.5*min(128, 64) = 32
    assert torch.allclose(boxes, torch.tensor([[64.0, 16.0, 96.0, 48.0]]))


def test_two_and_four_actions():
    b2 = actions_to_boxes(torch.tensor([[0.0, 0.5]]), H, W, init_box=28)
    assert torch.allclose(b2, torch.tensor([[0.0, 32.0, 28.0, 60.0]]))
    b4 = actions_to_boxes(torch.tensor([[0.25, 0.0, 0.5, 0.5]]), H, W, init_box=28)
    assert torch.allclose(b4, torch.tensor([[32.0, 0.0, 96.0, 32.0]]))


def test_initial_box_is_top_left_and_clipped_to_small_frames():
    assert torch.equal(initial_boxes(1, 28, H, W), torch.tensor([[0.0, 0.0, 28.0, 28.0]]))
    assert torch.equal(initial_boxes(1, 112, H, W), torch.tensor([[0.0, 0.0, 64.0, 64.0]]))


def test_punishments_at_edges():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 64.0, 64.0],  # exactly fills the height: inside, big enough
            [64.0, 0.0, 128.0, 64.0],  # touches the right edge: inside
            [65.0, 0.0, 129.0, 64.0],  # one pixel out on the right
            [0.0, 1.0, 64.0, 65.0],  # one pixel out at the bottom
            [10.0, 10.0, 23.0, 23.0],  # side 13 < L_min 14
            [120.0, 60.0, 130.0, 70.0],  # both: small and out
        ]
    )
    hh, ww = H.repeat(6), W.repeat(6)
    p = punishments(boxes, hh, ww, min_side=14, omega=-5.0)
    assert p.tolist() == [0.0, 0.0, -5.0, -5.0, -5.0, -10.0]


def test_inside_rule_is_and_not_or():
    # Fits horizontally but not vertically: the printed "or" would call it inside.
    p = punishments(torch.tensor([[0.0, 40.0, 30.0, 70.0]]), H, W, min_side=14, omega=-5.0)
    assert p.tolist() == [-5.0]


def test_reward_sign_conventions():
    before, after = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.5, 1.5, 1.0])
    pen = torch.tensor([0.0, -5.0, 0.0])
    r = rewards(before, after, pen, l1=1.0, l2=0.1, sign="decrease")
    assert torch.allclose(r, torch.tensor([1.0, -1.5, 0.0]))
    r = rewards(before, after, pen, l1=1.0, l2=0.1, sign="printed")
    assert torch.allclose(r, torch.tensor([-1.0, 0.5, 0.0]))
