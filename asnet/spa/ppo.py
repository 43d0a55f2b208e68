"""PPO maths for SPA (paper eq. 7-9): discounted returns, advantages, the clipped loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    """V_t^target = sum_i gamma^i r_{t+i} within each episode (no bootstrap after the last step).

    rewards: (T, B) -> (T, B)
    """
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def advantages(returns: Tensor, values: Tensor, normalize: bool,
               reduce: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """A_t = V_t^target - V(s_t) (the paper uses no GAE); optionally standardised per batch.

    `reduce` sums a tensor over the processes of a distributed job: the mean and (unbiased)
    std are then those of every process's advantages together, as one process over the
    whole batch would compute them."""
    adv = returns - values
    if not normalize:
        return adv
    if reduce is None:
        if adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        return adv
    a = adv.double()
    n, total, sq = reduce(torch.stack([a.new_tensor(float(a.numel())), a.sum(), a.pow(2).sum()]))
    mean = total / n
    std = ((sq - n * mean * mean).clamp(min=0) / (n - 1).clamp(min=1)).sqrt()
    # One advantage in all (n = 1) stays as it is, as in one process; decided on the device.
    return torch.where(n > 1, (a - mean) / (std + 1e-8), a).to(adv.dtype)


def ppo_loss(
    new_log_prob: Tensor,
    old_log_prob: Tensor,
    adv: Tensor,
    value: Tensor,
    target: Tensor,
    entropy: Tensor,
    clip_eps: float,
    c1: float,
    c2: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Clipped surrogate + c1 * value loss - c2 * entropy, all (N,) tensors -> (scalar loss,
    its terms as detached 0-dim tensors: reading them on the host would wait for the GPU).

    L_clip = -E[min(rho A, clip(rho, 1 - eps, 1 + eps) A)], rho = pi(a|s) / pi_old(a|s).
    The entropy bonus (c2) is standard PPO; the paper does not mention it (c2 = 0 disables).
    """
    ratio = torch.exp(new_log_prob - old_log_prob)
    surrogate = torch.minimum(ratio * adv, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv)
    policy_loss = -surrogate.mean()
    value_loss = (value - target).pow(2).mean()
    ent = entropy.mean()
    loss = policy_loss + c1 * value_loss - c2 * ent
    stats = {"policy_loss": policy_loss.detach(), "value_loss": value_loss.detach(), "entropy": ent.detach()}
    return loss, stats
