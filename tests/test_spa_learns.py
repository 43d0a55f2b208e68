"""SPA's PPO learns, not only computes its formulas right.

(a) A bandit with a known target box: our ActorCritic + ppo_update + discounted returns /
    advantages, the reward the presets use (the sign of the change of the quantity behind
    the reward, here the IoU with the target, plus eq. 6's penalties), T = 10 steps per
    episode. The deterministic (mean-action) box must reach IoU >= BAR within UPDATES updates.
    gamma = 0.9 on this difference reward cancels each action's credit (issue 11, point 2):
    the test documents that it fails the bar where gamma = 0 passes it.
(b) The synthetic set with the oracle reward (spa.reward=oracle_iou) and a fixed, seeded,
    randomly initialised CNN: SPA must beat the best constant box of the training clips on
    clips of held-out groups (paired per clip: the 95% bootstrap interval of the gain is above 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from asnet.config import SPAConfig, load_config
from asnet.data.clips import box_union
from asnet.data.crops import box_iou
from asnet.data.synthetic import SyntheticSpec, group_background, render_video
from asnet.device import select_runtime
from asnet.models import build_model
from asnet.report.stats import bootstrap_mean_ci
from asnet.spa.actions import actions_to_boxes, initial_boxes, punishments
from asnet.spa.agent import ActorCritic
from asnet.spa.bounds import best_constant_box, constant_boxes
from asnet.spa.frozen import build_agent, clip_ious, train_frozen
from asnet.spa.rollout import Episode, ppo_update
from asnet.train.inputs import clip_to_frame

BAR, UPDATES = 0.5, 200


@pytest.fixture(autouse=True)
def one_thread():
    """Thousands of tiny ops: one intra-op thread is fastest, and on a shared machine a second
    spinning thread made one bandit 30x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
FRAME = 64
TARGET = (36.0, 20.0, 52.0, 36.0)  # a 16-pixel actor right of centre on a 64 x 64 frame


def bandit_iou(gamma: float, state_norm: str, lr: float, updates: int = UPDATES, seed: int = 0) -> float:
    """Train SPA's policy on the bandit; the deterministic box's IoU with the target.

    The default preset's PPO settings (clip, c1, c2, epochs, minibatch 40, advantage
    normalisation, init box 28 / L_min 14 on a 64-pixel frame) with a 64-unit trunk and 8
    episodes per update, so that 200 updates take seconds."""
    torch.manual_seed(seed)
    spa = SPAConfig(gamma=gamma, state_norm=state_norm, lr=lr, init_box=28, min_side=14, minibatch=40, hidden=64)
    b, steps = 8, 10
    hs = ws = torch.full((b,), FRAME)
    target = torch.tensor([TARGET]).expand(b, 4)
    gen = torch.Generator().manual_seed(seed)
    state = (0.1 * torch.randn(1, 32, generator=gen)).expand(b, 32)  # a fixed state, spread ~0.1 like SPA's
    agent = ActorCritic(32, 3, spa.hidden, state_norm)
    opt = torch.optim.AdamW(agent.parameters(), lr=lr, weight_decay=spa.weight_decay)

    def iou(box: torch.Tensor) -> torch.Tensor:
        return box_iou(clip_to_frame(box, hs, ws), target)

    for _ in range(updates):
        box = initial_boxes(b, spa.init_box, hs, ws)
        prev = iou(box)
        cols: dict[str, list[torch.Tensor]] = {"s": [], "a": [], "lp": [], "v": [], "r": []}
        for _ in range(steps):
            action, log_prob, value = agent.act(state, deterministic=False)
            box = actions_to_boxes(action, hs, ws, spa.init_box)
            now = iou(box)
            pen = punishments(box, hs, ws, spa.min_side, spa.omega)
            reward = spa.l1 * torch.sign(now - prev) + spa.l2 * pen  # eq. 6's form, sgn of the change
            prev = now
            for k, v in zip(cols, (state, action, log_prob, value, reward), strict=True):
                cols[k].append(v)
        s, a, lp, v, r = (torch.stack(cols[k]) for k in cols)
        ppo_update(agent, opt, Episode(s, a, lp, v, r, torch.stack([box]), None), spa, gen)
    action, _, _ = agent.act(state[:1], deterministic=True)
    return float(iou(actions_to_boxes(action, hs[:1], ws[:1], spa.init_box))[0])


@pytest.mark.parametrize(("gamma", "learns"), [(0.0, True), (0.9, False)])
def test_bandit_learns_the_target_box_at_gamma_0_not_at_gamma_0_9(gamma: float, learns: bool) -> None:
    iou = bandit_iou(gamma, state_norm="running", lr=1e-3)
    assert (iou >= BAR) is learns, f"gamma {gamma}: deterministic IoU {iou:.3f} after {UPDATES} updates (bar {BAR})"


def test_bandit_is_deterministic() -> None:
    assert bandit_iou(0.0, "running", 1e-3, updates=5) == bandit_iou(0.0, "running", 1e-3, updates=5)


_PRESET = load_config().spa
_PRE_SWEEP = (_PRESET.gamma, _PRESET.state_norm, _PRESET.lr) == (0.9, "none", 1e-4)


@pytest.mark.xfail(_PRE_SWEEP, strict=True,
                   reason="the default preset still has the paper-silent values before the sweep (gamma 0.9, raw "
                          "state, lr 1e-4), under which PPO does not learn the bandit; the owner picks them")
def test_bandit_learns_under_the_default_presets_values() -> None:
    iou = bandit_iou(_PRESET.gamma, _PRESET.state_norm, _PRESET.lr)
    assert iou >= BAR, f"default preset's SPA values: deterministic IoU {iou:.3f} after {UPDATES} updates"


def _synthetic_batches(spec: SyntheticSpec, groups: range, clip_len: int, batch: int) -> list[dict]:
    """Every non-overlapping clip of the rendered videos of `groups`, with its actor box, in
    batches of clips of one frame size (the set's videos differ in aspect ratio)."""
    by_shape: dict[tuple, list[tuple]] = {}
    for g in groups:
        bg = group_background(spec, g)
        for c in range(spec.n_classes):
            for k in range(1, spec.clips_per_group + 1):
                v = render_video(spec, c, g, k, bg)
                for s in range(0, spec.frames - clip_len + 1, clip_len):
                    gt = box_union(v.boxes, np.arange(s, s + clip_len))
                    by_shape.setdefault(v.frames.shape, []).append((v.frames[s : s + clip_len], gt, c))
    out = []
    for items in by_shape.values():
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            h, w = chunk[0][0].shape[1:3]
            out.append({"clip": torch.from_numpy(np.stack([x[0] for x in chunk])),
                        "gt": torch.from_numpy(np.stack([x[1] for x in chunk])),
                        "label": torch.tensor([x[2] for x in chunk]),
                        "height": torch.full((len(chunk),), h), "width": torch.full((len(chunk),), w)})
    return out


def _cat(batches: list[dict], key: str) -> torch.Tensor:
    return torch.cat([b[key] for b in batches])


@pytest.mark.slow
def test_oracle_reward_spa_beats_the_best_constant_box_on_held_out_clips() -> None:
    cfg = load_config(overrides=["preset=tiny", "spa.reward=oracle_iou", "spa.gamma=0", "spa.state_norm=running",
                                 "spa.lr=0.001"])
    spec = SyntheticSpec(n_classes=3, groups=9, clips_per_group=8, frames=16, height=48, seed=0)
    train = _synthetic_batches(spec, range(1, 7), cfg.input.clip_len, 8)
    held_out = _synthetic_batches(spec, range(7, 10), cfg.input.clip_len, 32)
    rel, _ = best_constant_box(_cat(train, "gt"), _cat(train, "height"), _cat(train, "width"))
    constant = box_iou(constant_boxes(rel, _cat(held_out, "height"), _cat(held_out, "width")), _cat(held_out, "gt"))
    rt = select_runtime("cpu", "off", False)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, spec.n_classes, 2).eval()  # random, seeded, never trained
    agent, opt = build_agent(cfg, model, spec.n_classes, cfg.seed)
    history = train_frozen(model, agent, opt, train, cfg, rt, 800, torch.Generator().manual_seed(0))
    iou = clip_ious(model, agent, held_out, cfg, rt)
    assert np.mean([h["reward"] for h in history[-50:]]) > 0  # the policy improves on its initial box
    # Paired per held-out clip: the 95% bootstrap interval of SPA's gain over the constant box is above 0.
    lo, hi = bootstrap_mean_ci((iou - constant).double().numpy())
    msg = f"SPA {iou.mean():.3f} vs best constant box {constant.mean():.3f} on {len(iou)} held-out clips"
    print(f"{msg}: gain interval [{lo:.3f}, {hi:.3f}]")
    assert lo > 0, f"{msg}: gain interval [{lo:.3f}, {hi:.3f}]"
