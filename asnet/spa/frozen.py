"""SPA alone, with the CNN frozen: PPO updates on training clips and SPA's IoU with the actor on
held-out clips. What the learning tests (tests/test_spa_learns.py) and the sweep of SPA's open
values (benchmarks/spa_sweep.py) run; the training loop alternates the same rollout and update
with CNN steps (asnet.train.loop)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from asnet.config import Config
from asnet.data.crops import box_iou
from asnet.device import Runtime
from asnet.models.asnet import ASNet
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import ppo_update, run_episode, state_dim
from asnet.train.inputs import clip_to_frame

Batch = dict[str, Any]  # clip uint8 (B, T, H, W, 3), height, width, label (B,), gt (B, 4)


def build_agent(cfg: Config, model: ASNet, num_classes: int, seed: int) -> tuple[ActorCritic, torch.optim.Optimizer]:
    """A fresh SPA agent (seeded) and its AdamW, as asnet.train.loop.build_parts makes them."""
    torch.manual_seed(seed)
    agent = ActorCritic(state_dim(model.feature_dim, num_classes, cfg.spa.state), cfg.spa.actions, cfg.spa.hidden,
                        cfg.spa.state_norm)
    opt = torch.optim.AdamW(agent.parameters(), lr=cfg.spa.lr, weight_decay=cfg.spa.weight_decay)
    return agent, opt


def _cycle(batches: Iterable[Batch]) -> Iterator[Batch]:
    while True:
        empty = True
        for b in batches:
            empty = False
            yield b
        if empty:
            raise ValueError("no training batches for SPA")


def train_frozen(
    model: ASNet,
    agent: ActorCritic,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    cfg: Config,
    rt: Runtime,
    updates: int,
    generator: torch.Generator,
) -> list[dict[str, float]]:
    """`updates` PPO updates of SPA, each on one training episode (cfg.spa.train_steps steps) of
    the next batch (`batches` is iterated again when exhausted); the CNN is in eval mode and
    never updated. Returns each update's stats (reward, losses)."""
    model.eval()
    stream = _cycle(batches)
    history = []
    for _ in range(updates):
        b = next(stream)
        ep = run_episode(model, agent, b["clip"], b["height"], b["width"], b["label"], cfg.spa, cfg.input,
                         cfg.spa.train_steps, deterministic=False, autocast=rt.autocast, to_input=rt.to_input,
                         norm=cfg.normalisation(), gt=b["gt"])
        history.append(ppo_update(agent, optimizer, ep, cfg.spa, generator))
    # Read once at the end: the updates never waited for the device.
    return [{k: float(v) for k, v in h.items()} for h in history]


@torch.no_grad()
def clip_ious(model: ASNet, agent: ActorCritic, batches: Iterable[Batch], cfg: Config, rt: Runtime) -> torch.Tensor:
    """SPA's IoU with the actor at test time (deterministic, cfg.spa.test_steps steps) of every
    clip of `batches` that has an actor box. -> (N,)"""
    model.eval()
    out = []
    for b in batches:
        ep = run_episode(model, agent, b["clip"], b["height"], b["width"], None, cfg.spa, cfg.input,
                         cfg.spa.test_steps, deterministic=True, autocast=rt.autocast, to_input=rt.to_input,
                         norm=cfg.normalisation())
        keep = ~torch.isnan(b["gt"]).any(1)
        out.append(box_iou(clip_to_frame(ep.final_boxes, b["height"], b["width"]), b["gt"])[keep])
    return torch.cat(out) if out else torch.zeros(0)


def mean_iou(model: ASNet, agent: ActorCritic, batches: Iterable[Batch], cfg: Config, rt: Runtime) -> float:
    """The mean of clip_ious."""
    ious = clip_ious(model, agent, batches, cfg, rt)
    if ious.numel() == 0:
        raise ValueError("no held-out clip has a ground-truth actor box")
    return float(ious.double().mean())
