"""spa.state_norm (running state statistics in the agent) and spa.reward=oracle_iou."""

from __future__ import annotations

import dataclasses
import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from asnet import paths
from asnet.config import ConfigError, load_config
from asnet.data.crops import box_iou
from asnet.models import build_model
from asnet.spa.actions import iou_rewards, punishments
from asnet.spa.agent import NORM_WINDOW, ActorCritic
from asnet.spa.rollout import ppo_update, run_episode, state_dim
from asnet.train import checkpoint
from asnet.train.inputs import clip_to_frame
from asnet.train.loop import rebuild_trained, train_run
from asnet.variants import get_variant

DATASET, SPLIT = "synthetic_tiny", 1


def test_running_norm_buffers_only_when_asked() -> None:
    plain = ActorCritic(10, 3, 16)
    assert not [k for k in plain.state_dict() if k.startswith("state_")]  # the paper's agent: as before
    running = ActorCritic(10, 3, 16, "running")
    assert {"state_mean", "state_var", "state_count"} <= set(running.state_dict())
    with pytest.raises(ValueError, match="spa.state_norm"):
        ActorCritic(10, 3, 16, "batch")


def test_running_statistics_are_the_data_mean_and_variance_then_an_ema() -> None:
    agent = ActorCritic(4, 3, 16, "running")
    x = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(0)) * torch.tensor([0.05, 0.2, 1.0, 3.0]) + 2.0
    for batch in x:  # three merges give the statistics of all 150 states (Welford / Chan)
        agent.update_state_norm(batch)
    flat = x.reshape(-1, 4).double()
    assert torch.allclose(agent.state_mean.double(), flat.mean(0), atol=1e-5)
    assert torch.allclose(agent.state_var.double(), flat.var(0, unbiased=False), rtol=1e-4)
    z = agent.normalise(x.reshape(-1, 4))
    assert torch.allclose(z.mean(0), torch.zeros(4), atol=1e-4) and torch.allclose(z.std(0), torch.ones(4), atol=1e-2)
    # Beyond NORM_WINDOW states the past weighs NORM_WINDOW: a new batch of n moves the mean by n / (W + n).
    agent.state_count.fill_(10 * NORM_WINDOW)
    before = agent.state_mean.clone()
    agent.update_state_norm(torch.full((NORM_WINDOW, 4), 100.0))
    assert torch.allclose(agent.state_mean, (before + 100.0) / 2, rtol=1e-5)


def _episode_parts(norm: str, reward: str = "loss_sign"):
    cfg = load_config(overrides=["preset=tiny", f"spa.state_norm={norm}", f"spa.reward={reward}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 3, streams=2).eval()
    agent = ActorCritic(state_dim(model.feature_dim, 3), cfg.spa.actions, cfg.spa.hidden, norm)
    clips = torch.randint(0, 255, (2, 4, 40, 60, 3), dtype=torch.uint8)
    hs, ws = torch.full((2,), 40), torch.full((2,), 60)
    return cfg, model, agent, clips, hs, ws


def _play(cfg, model, agent, clips, hs, ws, labels, gt=None):
    return run_episode(model, agent, clips, hs, ws, labels, cfg.spa, cfg.input, steps=3, deterministic=labels is None,
                       autocast=nullcontext, norm=cfg.normalisation(), gt=gt)


def test_statistics_change_in_the_ppo_update_only() -> None:
    cfg, model, agent, clips, hs, ws = _episode_parts("running")
    frozen = {k: v.clone() for k, v in agent.state_dict().items() if k.startswith("state_")}
    ep = _play(cfg, model, agent, clips, hs, ws, torch.tensor([0, 1]))
    _play(cfg, model, agent, clips, hs, ws, None)  # evaluation
    assert all(torch.equal(agent.state_dict()[k], v) for k, v in frozen.items())
    opt = torch.optim.AdamW(agent.parameters(), lr=1e-3)
    ppo_update(agent, opt, ep, cfg.spa, torch.Generator().manual_seed(0))
    assert float(agent.state_count) == ep.states.shape[0] * ep.states.shape[1]
    assert torch.allclose(agent.state_mean, ep.states.reshape(-1, ep.states.shape[-1]).mean(0), atol=1e-5)


def test_oracle_reward_is_the_change_of_iou_with_the_actor_plus_penalties() -> None:
    r = iou_rewards(torch.tensor([0.1, 0.5]), torch.tensor([0.4, 0.2]), torch.tensor([0.0, -5.0]), 1.0, 0.1)
    assert torch.allclose(r, torch.tensor([0.3, -0.8]))
    cfg, model, agent, clips, hs, ws = _episode_parts("none", "oracle_iou")
    gt = torch.tensor([[10.0, 5.0, 30.0, 25.0], [40.0, 10.0, 58.0, 28.0]])
    ep = _play(cfg, model, agent, clips, hs, ws, torch.tensor([0, 1]), gt)
    ious = torch.stack([box_iou(clip_to_frame(b, hs, ws), gt) for b in ep.boxes])  # (T + 1, B)
    pen = torch.stack([punishments(b, hs, ws, cfg.spa.min_side, cfg.spa.omega) for b in ep.boxes[1:]])
    assert torch.allclose(ep.rewards, cfg.spa.l1 * (ious[1:] - ious[:-1]) + cfg.spa.l2 * pen, atol=1e-6)
    with pytest.raises(ValueError, match=r"spa.reward=oracle_iou .*`gt`"):
        _play(cfg, model, agent, clips, hs, ws, torch.tensor([0, 1]), torch.full((2, 4), float("nan")))
    _play(cfg, model, agent, clips, hs, ws, None, None)  # at test time no reward, no box needed


def test_config_keys_are_validated_and_reward_defaults_to_the_paper() -> None:
    from asnet.config import SPAConfig

    assert (SPAConfig().state_norm, SPAConfig().reward) == ("none", "loss_sign")  # the paper's raw state
    cfg = load_config(overrides=["preset=default"])
    # The presets standardise the state (chosen on validation, README); the reward is eq. 6.
    assert (cfg.spa.state_norm, cfg.spa.reward) == ("running", "loss_sign")
    with pytest.raises(ConfigError, match="spa.state_norm"):
        load_config(overrides=["preset=tiny", "spa.state_norm=batch"])
    with pytest.raises(ConfigError, match="spa.reward"):
        load_config(overrides=["preset=tiny", "spa.reward=iou"])
    assert dict(get_variant("asnet_oracle_spa").overrides) == {"spa.reward": "oracle_iou"}
    assert dict(get_variant("asnet_spatial_spa").overrides) == {"spa.state": "spatial"}


def test_running_norm_is_saved_restored_and_old_checkpoints_resume(in_tiny_workdir: Path) -> None:
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1", "spa.state_norm=running"])
    out = in_tiny_workdir / "norm_run"
    shutil.rmtree(out, ignore_errors=True)
    model_path = train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "asnet", progress=False)
    ck = checkpoint.load(model_path)
    assert float(ck["agent"]["state_count"]) > 0 and "state_mean" in checkpoint.load(out / "state/last.pt")["agent"]
    _, _, _, agent = rebuild_trained(ck)
    assert torch.equal(agent.state_mean, ck["agent"]["state_mean"]) and agent.state_norm == "running"

    # A run saved before the keys existed (no spa.state_norm / spa.reward in its config, no
    # buffers) resumes and evaluates under today's defaults.
    old_cfg = load_config(overrides=["preset=tiny", "train.epochs=2"])
    old = in_tiny_workdir / "old_run"
    shutil.rmtree(old, ignore_errors=True)
    train_run(old_cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), old, "asnet", progress=False,
              stop_after_epoch=0)
    last = checkpoint.load(old / "state/last.pt")
    for key in ("state_norm", "reward"):
        del last["config"]["spa"][key]
    torch.save(last, old / "state/last.pt")
    model_path = train_run(old_cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), old, "asnet",
                           progress=False)
    ck = checkpoint.load(model_path)
    del ck["config"]["spa"]["state_norm"]
    assert rebuild_trained(ck)[3] is not None


def test_oracle_reward_without_actor_boxes_stops_before_training(in_tiny_workdir: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    shutil.copytree(paths.frames_dir(DATASET), frames, ignore=shutil.ignore_patterns("*.boxes.npy"))
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    cfg = dataclasses.replace(cfg, spa=dataclasses.replace(cfg.spa, reward="oracle_iou"))
    with pytest.raises(ValueError, match=r"spa.reward=oracle_iou needs ground-truth actor boxes.*\.boxes\.npy"):
        train_run(cfg, paths.manifest(DATASET, SPLIT), frames, tmp_path / "run", "asnet", progress=False)
    assert not (tmp_path / "run").exists()


def test_new_keys_retrain_only_when_set() -> None:
    from asnet import stages

    cfg = load_config(overrides=["preset=tiny"])
    base = stages.train_signature(cfg, DATASET, "asnet")
    # At their defaults the keys are left out of the digest (existing runs are not retrained)...
    assert stages.train_signature(
        load_config(overrides=["preset=tiny", "spa.state_norm=none", "spa.reward=loss_sign"]), DATASET, "asnet") == base
    # ...and any other value retrains.
    assert stages.train_signature(load_config(overrides=["preset=tiny", "spa.state_norm=running"]), DATASET, "asnet") != base
    assert stages.train_signature(cfg, DATASET, "asnet_oracle_spa") != base
