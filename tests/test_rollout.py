"""SPA episodes: shapes, the forwards they cost, and the opt-in cheaper rollout forwards."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import torch

from asnet.config import load_config
from asnet.models import build_model
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import run_episode, state_dim


def _episode(stride: int, scale: float = 1.0, labels: bool = True) -> tuple[object, list[tuple[int, ...]]]:
    cfg = load_config(overrides=["preset=tiny", f"spa.state_stride={stride}", f"spa.state_scale={scale}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 3, streams=2).eval()
    agent = ActorCritic(state_dim(model.feature_dim, 3), cfg.spa.actions, cfg.spa.hidden)
    seen: list[tuple[int, ...]] = []  # (T, H, W) of every backbone forward
    model.backbone.conv1.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[2:])))
    clips = torch.randint(0, 255, (2, 8, 40, 60, 3), dtype=torch.uint8)  # (B, T, H, W, 3)
    hs, ws = torch.full((2,), 40), torch.full((2,), 60)
    ep = run_episode(model, agent, clips, hs, ws, torch.tensor([0, 2]) if labels else None, cfg.spa,
                     dataclasses.replace(cfg.input, clip_len=8), steps=3, deterministic=not labels, autocast=nullcontext,
                     norm=cfg.normalisation())
    return ep, seen


def test_episode_shapes_and_full_clip_by_default() -> None:
    ep, seen = _episode(1)
    s = load_config(overrides=["preset=tiny"]).input.size
    assert ep.boxes.shape == (4, 2, 4) and ep.rewards.shape == (3, 2) and ep.states.shape[:2] == (3, 2)
    assert seen == [(8, s, s)] * 5  # scene + initial box + 3 steps, every frame, at the input size


def test_inference_skips_the_last_boxs_forward() -> None:
    ep, seen = _episode(1, labels=False)
    assert ep.rewards is None and ep.boxes.shape == (4, 2, 4)
    assert len(seen) == 4  # scene + initial box + 2 steps: the 3rd box needs no state or reward


def test_state_stride_subsamples_the_rollout_forwards_only() -> None:
    ep, seen = _episode(4)
    assert [t for t, _, _ in seen] == [2] * 5  # frames 0 and 4 of 8
    assert ep.final_boxes.shape == (2, 4)  # a spatial box, applied to the full clip by the caller


def test_state_scale_shrinks_the_rollout_forwards_only() -> None:
    ep, seen = _episode(2, scale=0.5)
    assert seen == [(4, 16, 16)] * 5  # tiny preset: input.size 32
    assert ep.rewards is not None and torch.isfinite(ep.rewards).all()
