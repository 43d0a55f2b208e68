"""SPA episodes (Algorithm 1) with the CNN fixed, and the PPO update on what they collected."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from asnet.config import InputConfig, SPAConfig
from asnet.data.crops import Frames, box_iou, full_frame_boxes
from asnet.hara import Normalisation
from asnet.models.asnet import ASNet
from asnet.spa.actions import actions_to_boxes, initial_boxes, iou_rewards, punishments, rewards
from asnet.spa.agent import ActorCritic
from asnet.spa.ppo import advantages, discounted_returns, ppo_loss
from asnet.train.distributed import StepPlan
from asnet.train.inputs import clip_to_frame


@dataclass
class Episode:
    """What one batch of episodes collected. T = steps, B = batch, S = state dim, A = actions."""

    states: Tensor  # (T, B, S)
    actions: Tensor  # (T, B, A)
    log_probs: Tensor  # (T, B)
    values: Tensor  # (T, B)
    rewards: Tensor | None  # (T, B), None without labels (inference)
    boxes: Tensor  # (T + 1, B, 4): the initial box, then one per step
    losses: Tensor | None  # (T + 1, B) classifier loss with each box

    @property
    def final_boxes(self) -> Tensor:
        return self.boxes[-1]


SPATIAL_GRID = (1, 2, 2)  # (T', H', W') cells of the global feature map in the "spatial" state


def state_dim(feature_dim: int, num_classes: int, kind: str = "paper") -> int:
    """|cat(s_g, s_p, s_l)| = 2 D + C; the "spatial" state adds a coarse global feature map
    (D per grid cell) and the current box (4 normalised coordinates)."""
    extra = feature_dim * SPATIAL_GRID[0] * SPATIAL_GRID[1] * SPATIAL_GRID[2] + 4 if kind == "spatial" else 0
    return 2 * feature_dim + num_classes + extra


@torch.no_grad()
def run_episode(
    model: ASNet,
    agent: ActorCritic,
    clips: Tensor,
    heights: Tensor,
    widths: Tensor,
    labels: Tensor | None,
    spa: SPAConfig,
    inp: InputConfig,
    steps: int,
    deterministic: bool,
    autocast: Callable[[], AbstractContextManager],
    to_input: Callable[[Tensor], Tensor] | None = None,
    *,
    norm: Normalisation,
    gt: Tensor | None = None,
) -> Episode:
    """Place SPA's box `steps` times on each clip of the batch; the CNN is not updated.

    clips: uint8 (B, T, H, W, 3) at stored resolution (or already `Frames` on the model's
    device), cropped from it at every step (the paper crops the ORIGINAL-resolution clip,
    then resizes to the input size). Every crop, box and reward stays on the model's device:
    the loop reads no value on the host, so the GPU never waits for it.
    `norm` is the run's input normalisation (Config.normalisation()).
    `to_input` puts a crop batch in the model's memory format (Runtime.to_input).
    `gt` (B, 4): the actor's box over each clip, read only by spa.reward=oracle_iou (with labels).
    """
    device = next(model.parameters()).device
    oracle = labels is not None and spa.reward == "oracle_iou"
    if oracle and (gt is None or torch.isnan(gt).any()):
        raise ValueError(
            "spa.reward=oracle_iou needs the ground-truth actor box of every clip (the batch's `gt`), "
            "but it is missing (NaN): only the synthetic datasets have one; use spa.reward=loss_sign here"
        )
    prepare = to_input or (lambda x: x)
    frames = clips if isinstance(clips, Frames) else Frames.of(clips, heights, widths, device)
    heights, widths = frames.heights, frames.widths  # (B,) on the device
    labels = labels.to(device, non_blocking=True) if labels is not None else None
    # spa.state_stride > 1 computes SPA's states and rewards on every k-th frame: k times
    # fewer FLOPs for the T + 2 rollout forwards (an approximation of the paper, opt-in);
    # the box it finds is spatial, so the saliency stream still crops the full clip.
    if spa.state_stride > 1:
        frames = frames.every(spa.state_stride)  # (B, ceil(T / k), 3, H, W)
    # spa.state_scale < 1 (opt-in) resizes SPA's crops smaller: 1 / scale^2 times fewer FLOPs
    # per rollout forward; the saliency stream still gets the box at input.size.
    size = spa.state_size(inp.size)

    def embed(boxes: Tensor) -> Tensor:
        x = prepare(frames.crop(boxes, size, norm))
        with autocast():
            return model.features(x).float()  # (B, D)

    def where(boxes: Tensor) -> Tensor:
        return boxes / torch.stack([widths, heights, widths, heights], dim=1)  # (B, 4) in frame units

    def logits_of(g: Tensor, p: Tensor) -> Tensor:
        return model.head(g, p).float()  # (B, C)

    n = frames.pixels.shape[0]
    scene = frames.crop(full_frame_boxes(heights, widths), size, norm)
    with autocast():
        fmap = model.backbone.feature_map(prepare(scene)).float()  # (B, D, T', H', W'), computed once
    s_g = F.adaptive_avg_pool3d(fmap, 1).flatten(1)  # (B, D): the whole scene, as in the paper
    s_map = F.adaptive_avg_pool3d(fmap, SPATIAL_GRID).flatten(1)  # (B, D * cells), "spatial" state only
    box = initial_boxes(n, spa.init_box, heights, widths)
    s_p = embed(box)
    s_l = logits_of(s_g, s_p)
    loss = F.cross_entropy(s_l, labels, reduction="none") if labels is not None else None
    gt = gt.to(device, non_blocking=True) if oracle else None

    states, acts, logps, vals, rews, boxes, losses = [], [], [], [], [], [box], [loss]
    for step in range(steps):
        parts = [s_g, s_p, s_l] + ([s_map, where(box)] if spa.state == "spatial" else [])
        state = torch.cat(parts, dim=1)  # (B, 2D + C [+ D * cells + 4])
        action, log_prob, value = agent.act(state, deterministic)
        box = actions_to_boxes(action, heights, widths, spa.init_box)
        if labels is not None or step < steps - 1:
            # Without labels the last box needs no state and no reward: one forward saved
            # (at inference the saliency stream embeds that box anyway).
            s_p = embed(box)
            s_l = logits_of(s_g, s_p)
        states.append(state)
        acts.append(action)
        logps.append(log_prob)
        vals.append(value)
        boxes.append(box)
        if labels is not None:
            new_loss = F.cross_entropy(s_l, labels, reduction="none")
            pen = punishments(box, heights, widths, spa.min_side, spa.omega)
            if oracle:
                before, after = (box_iou(clip_to_frame(b, heights, widths), gt) for b in (boxes[-2], box))
                rews.append(iou_rewards(before, after, pen, spa.l1, spa.l2))
            else:
                rews.append(rewards(loss, new_loss, pen, spa.l1, spa.l2, spa.reward_sign))
            losses.append(new_loss)
            loss = new_loss
    return Episode(
        states=torch.stack(states),
        actions=torch.stack(acts),
        log_probs=torch.stack(logps),
        values=torch.stack(vals),
        rewards=torch.stack(rews) if labels is not None else None,
        boxes=torch.stack(boxes),
        losses=torch.stack(losses) if labels is not None else None,
    )


def minibatch_bounds(n: int, n_full: int, minibatch: int) -> list[tuple[int, int]]:
    """[start, end) of each PPO minibatch over `n` shuffled transitions, when the fullest
    rank holds `n_full`: ceil(n_full / minibatch) of them whatever `n` is, so every rank
    steps its optimizer (and all-reduces) as often. With n == n_full they are the
    consecutive `minibatch`-sized slices; a shorter rank's are those scaled down (some may
    be empty)."""
    k = -(-n_full // minibatch)
    edges = [min(j * minibatch, n_full) * n // n_full for j in range(k)] + [n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def ppo_update(
    agent: ActorCritic, optimizer: torch.optim.Optimizer, ep: Episode, spa: SPAConfig, generator: torch.Generator,
    plan: StepPlan | None = None,
) -> dict[str, Tensor]:
    """PPO epochs over the episode's transitions in shuffled minibatches (CNN fixed).
    Returns the mean loss terms and reward as 0-dim float64 tensors on the agent's device
    (read them once per epoch, not per step: each read waits for the GPU).

    With spa.state_norm=running the agent's running state statistics then take in the
    episode's states: acting and learning on an episode both see the statistics as they were
    when it was played, and the next episode sees the updated ones.

    Under torchrun (`plan`: every rank's usable clips this step, asnet.train.distributed)
    the advantages are standardised by the moments of every rank's episodes, the state
    statistics take in every rank's states (so all ranks act and learn under the same
    ones), and each rank runs as many minibatches (`minibatch_bounds`), each weighted by
    its share of that minibatch's transitions over all ranks: DDP's gradient average is
    then the mean over every rank's transitions."""
    assert ep.rewards is not None, "a training episode needs labels"
    distributed = plan is not None and plan.distributed
    reduce = plan.reduce if distributed else None  # type: ignore[union-attr]
    returns = discounted_returns(ep.rewards, spa.gamma)  # (T, B)
    adv = advantages(returns, ep.values, spa.normalize_advantage, reduce)
    flat = lambda t: t.reshape(-1, *t.shape[2:])  # noqa: E731  (T, B, ...) -> (T*B, ...)
    states, actions, old_lp, ret, adv_f = map(flat, (ep.states, ep.actions, ep.log_probs, returns, adv))
    n = states.shape[0]
    # Every rank's transition count (one process: its own) and this rank's minibatches; a
    # minibatch's weight is its share over the ranks (exactly 1.0 in one process).
    ns = [ep.states.shape[0] * c for c in plan.counts] if distributed else [n]  # type: ignore[union-attr]
    rank = plan.rank if distributed else 0  # type: ignore[union-attr]
    sizes = [[hi - lo for lo, hi in minibatch_bounds(m, max(ns), spa.minibatch)] for m in ns]
    bounds = minibatch_bounds(n, max(ns), spa.minibatch)
    weights = [sizes[rank][j] * len(ns) / sum(s[j] for s in sizes) for j in range(len(bounds))]
    # Sums stay on the device (float64: the same numbers as Python floats of each value).
    totals: dict[str, Tensor] = {}
    count = 0
    for _ in range(spa.ppo_epochs):
        order = torch.randperm(n, generator=generator)
        for (lo, hi), weight in zip(bounds, weights, strict=True):
            # An empty minibatch (a short rank) still joins DDP's all-reduce: one transition, weight 0.
            idx = order[lo:hi] if hi > lo else order[:1]
            idx = idx.to(states.device)
            dist, value = agent(states[idx])
            new_lp = dist.log_prob(actions[idx]).sum(1)
            loss, stats = ppo_loss(
                new_lp, old_lp[idx], adv_f[idx], value, ret[idx], dist.entropy().sum(1), spa.clip_eps, spa.c1, spa.c2
            )
            optimizer.zero_grad(set_to_none=True)
            (loss * weight).backward()
            optimizer.step()
            if hi == lo:
                continue
            stats["loss"] = loss.detach()
            for k, v in stats.items():
                totals[k] = totals[k] + v.double() if k in totals else v.double()
            count += 1
    getattr(agent, "module", agent).update_state_norm(ep.states, reduce)  # the DDP wrapper's module
    out = {k: v / max(count, 1) for k, v in totals.items()}
    out["reward"] = ep.rewards.mean().double()
    return out
