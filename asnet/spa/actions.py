"""SPA's action space: continuous actions in (0, 1) mapped to pixel boxes, and the reward.

Paper Sec. 3.2: a1 in [0, w], a2 in [0, h] place the top-left corner, a3 in [0, min(w, h)]
is the side of a square box. Table 4's variants: 2 actions (corner only, side fixed at
the initial box size) and 4 actions (corner, width a3 in [0, w], height a4 in [0, h]).
The policy outputs values in (0, 1) (a Beta distribution, see agent.py); this module
scales them to the frame of each sample.
"""

from __future__ import annotations

import torch
from torch import Tensor


def initial_boxes(n: int, init_box: float, height: Tensor, width: Tensor) -> Tensor:
    """The initial patch: the top-left init_box x init_box corner (clipped to the frame). -> (B, 4)"""
    h, w = height.float(), width.float()
    side = torch.minimum(torch.full((n,), float(init_box), device=h.device), torch.minimum(h, w))
    zeros = torch.zeros(n, device=h.device)
    return torch.stack([zeros, zeros, side, side], dim=1)


def actions_to_boxes(actions: Tensor, height: Tensor, width: Tensor, init_box: float) -> Tensor:
    """Map actions (B, A) in [0, 1] to boxes (B, 4) in pixels of frames (H, W).

    A = 2: (x, y), side = init_box; A = 3: (x, y, side); A = 4: (x, y, box w, box h).
    Boxes are NOT clipped here: going out of the frame is what P_o punishes.
    """
    h, w = height.float().to(actions.device), width.float().to(actions.device)
    x0, y0 = actions[:, 0] * w, actions[:, 1] * h
    n_actions = actions.shape[1]
    if n_actions == 2:
        bw = bh = torch.full_like(x0, float(init_box))
    elif n_actions == 3:
        bw = bh = actions[:, 2] * torch.minimum(w, h)
    elif n_actions == 4:
        bw, bh = actions[:, 2] * w, actions[:, 3] * h
    else:
        raise ValueError(f"SPA supports 2, 3 or 4 actions, got {n_actions}")
    return torch.stack([x0, y0, x0 + bw, y0 + bh], dim=1)


def punishments(boxes: Tensor, height: Tensor, width: Tensor, min_side: float, omega: float) -> Tensor:
    """P_b + P_o of eq. 6 for each box. -> (B,)

    P_b = omega when the box's (shorter) side is below L_min; P_o = omega when the box is
    not inside the frame. The paper prints "a1 + a3 <= w or a2 + a3 <= h" for being
    inside; "and" is meant (NOTES item 2): a box is inside only if it fits both ways.
    """
    h, w = height.float().to(boxes.device), width.float().to(boxes.device)
    side = torch.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    p_b = torch.where(side >= min_side, 0.0, omega)
    # A tiny tolerance keeps float rounding of an action of exactly 1.0 from counting as "out".
    inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= w + 1e-4) & (boxes[:, 3] <= h + 1e-4)
    p_o = torch.where(inside, 0.0, omega)
    return p_b + p_o


def rewards(
    loss_before: Tensor,
    loss_after: Tensor,
    penalty: Tensor,
    l1: float,
    l2: float,
    sign: str = "decrease",
) -> Tensor:
    """Eq. 6: r = l1 * sgn(loss change) + l2 * (P_b + P_o). -> (B,)

    sign="decrease" rewards a box that lowers the classifier's loss, as the text intends;
    sign="printed" is eq. 6 as printed, sgn(L_{t+1} - L_t), kept for the audit (NOTES item 1).
    """
    if sign == "decrease":
        delta = loss_before - loss_after
    elif sign == "printed":
        delta = loss_after - loss_before
    else:
        raise ValueError(f"reward sign must be 'decrease' or 'printed', got {sign!r}")
    return l1 * torch.sign(delta) + l2 * penalty


def iou_rewards(iou_before: Tensor, iou_after: Tensor, penalty: Tensor, l1: float, l2: float) -> Tensor:
    """spa.reward=oracle_iou: r = l1 * (IoU(box_{t+1}, gt) - IoU(box_t, gt)) + l2 * (P_b + P_o). -> (B,)

    Not the paper's reward: the change of overlap with the ground-truth actor box (synthetic
    data only), so the policy learns from a reward that is right by construction; its IoU is
    the ceiling of what SPA can learn with its state and actions.
    """
    return l1 * (iou_after - iou_before) + l2 * penalty
