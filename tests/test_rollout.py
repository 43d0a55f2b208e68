"""SPA episodes: shapes, and the opt-in temporal stride of the rollout forwards."""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import torch

from asnet.config import load_config
from asnet.models import build_model
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import run_episode, state_dim


def _episode(stride: int) -> tuple[object, list[int]]:
    cfg = load_config(overrides=["preset=tiny", f"spa.state_stride={stride}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 3, streams=2).eval()
    agent = ActorCritic(state_dim(model.feature_dim, 3), cfg.spa.actions, cfg.spa.hidden)
    frames_seen: list[int] = []
    model.backbone.conv1.register_forward_pre_hook(lambda _m, args: frames_seen.append(args[0].shape[2]))
    clips = torch.randint(0, 255, (2, 8, 40, 60, 3), dtype=torch.uint8)  # (B, T, H, W, 3)
    hs, ws = torch.full((2,), 40), torch.full((2,), 60)
    spa = dataclasses.replace(cfg.spa, state_stride=stride)
    ep = run_episode(model, agent, clips, hs, ws, torch.tensor([0, 2]), spa, dataclasses.replace(cfg.input, clip_len=8),
                     steps=3, deterministic=False, autocast=nullcontext)
    return ep, frames_seen


def test_episode_shapes_and_full_clip_by_default() -> None:
    ep, frames = _episode(1)
    assert ep.boxes.shape == (4, 2, 4) and ep.rewards.shape == (3, 2) and ep.states.shape[:2] == (3, 2)
    assert frames == [8] * 5  # scene + initial box + 3 steps, every frame


def test_state_stride_subsamples_the_rollout_forwards_only() -> None:
    ep, frames = _episode(4)
    assert frames == [2] * 5  # frames 0 and 4 of 8
    assert ep.final_boxes.shape == (2, 4)  # a spatial box, applied to the full clip by the caller
