"""SPA's actor-critic: a shared-trunk three-layer perceptron with Beta policy and value heads."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Beta

STATE_NORMS = ("none", "running")
# Running statistics weigh at most this many past states: a Welford mean/variance that turns
# into an exponential moving average once it has seen them, so the statistics follow the
# features while the CNN trains (SPA and the CNN alternate) instead of freezing on the first ones.
NORM_WINDOW = 10_000
NORM_CLIP = 10.0  # standardised features beyond +-10 std are clipped (a rare outlier cannot dominate)


class ActorCritic(nn.Module):
    """pi(a | s) and V(s) over the state s = cat(s_g, s_p, s_l).

    The paper says policy and value share a "three-layer perceptron"; its action
    distribution is not given (NOTES item 3). A Beta distribution per action keeps actions
    in (0, 1) without clipping, which actions.py scales to the frame.

    state_norm="running" standardises the state by a running mean / std kept as buffers
    (`state_mean`, `state_var`, `state_count`: saved and restored with the agent's
    state_dict). Only `update_state_norm` changes them, which SPA's PPO update calls on
    training episodes; acting and evaluation read them frozen. state_norm="none" (the paper)
    registers no buffers, so its state_dict is the one of checkpoints written before the key.
    """

    def __init__(self, state_dim: int, n_actions: int, hidden: int = 256, state_norm: str = "none") -> None:
        super().__init__()
        if state_norm not in STATE_NORMS:
            raise ValueError(f"spa.state_norm must be one of {STATE_NORMS}, got {state_norm!r}")
        self.n_actions = n_actions
        self.state_norm = state_norm
        if state_norm == "running":
            self.register_buffer("state_mean", torch.zeros(state_dim))
            self.register_buffer("state_var", torch.ones(state_dim))
            self.register_buffer("state_count", torch.zeros((), dtype=torch.float64))
        self.trunk = nn.Sequential(
            nn.Linear(state_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)
        )
        self.policy = nn.Linear(hidden, 2 * n_actions)
        self.value = nn.Linear(hidden, 1)
        # Start near Beta(1, 1)-ish, broad exploration over the frame.
        nn.init.zeros_(self.policy.weight)
        nn.init.zeros_(self.policy.bias)

    def forward(self, state: Tensor) -> tuple[Beta, Tensor]:
        """state (N, state_dim) -> (Beta over (N, A), value (N,))"""
        h = self.trunk(self.normalise(state.float()))
        ab = F.softplus(self.policy(h)) + 1.0  # alpha, beta > 1: unimodal
        alpha, beta = ab.chunk(2, dim=1)  # (N, A) each
        # No argument validation: its checks read tensors on the host, a GPU sync per call.
        return Beta(alpha, beta, validate_args=False), self.value(h).squeeze(1)

    def normalise(self, state: Tensor) -> Tensor:
        """The state as the trunk sees it: standardised by the running statistics (if any)."""
        if self.state_norm == "none":
            return state
        z = (state - self.state_mean) / torch.sqrt(self.state_var + 1e-6)
        return z.clamp(-NORM_CLIP, NORM_CLIP)

    @torch.no_grad()
    def update_state_norm(self, states: Tensor, reduce: Callable[[Tensor], Tensor] | None = None) -> None:
        """Merge a batch of states (N, state_dim) into the running mean / variance (Chan et al.'s
        parallel Welford update; the past counts at most NORM_WINDOW states). Deterministic.

        `reduce` sums a tensor over the processes of a distributed job: the batch is then
        every process's states together, and every process ends with the same statistics."""
        if self.state_norm == "none":
            return
        x = states.reshape(-1, states.shape[-1]).double()
        if reduce is None:
            if states.numel() == 0:
                return
            n = float(x.shape[0])
            mean_b, var_b = x.mean(0), x.var(0, unbiased=False)
        else:
            d = x.shape[1]
            total = reduce(torch.cat([x.new_tensor([float(x.shape[0])]), x.sum(0), x.pow(2).sum(0)]))
            n = total[0].clamp(min=1)  # 0-dim float64 on the device: no host read (a step has states)
            mean_b = total[1 : 1 + d] / n
            var_b = (total[1 + d :] / n - mean_b * mean_b).clamp(min=0)
        past = self.state_count.clamp(max=NORM_WINDOW)  # 0-dim float64 on the device: no host read
        total = past + n
        delta = mean_b - self.state_mean.double()
        mean = self.state_mean.double() + delta * (n / total)
        m2 = self.state_var.double() * past + var_b * n + delta.pow(2) * past * n / total
        self.state_mean.copy_(mean.to(self.state_mean.dtype))
        self.state_var.copy_((m2 / total).to(self.state_var.dtype))
        self.state_count.fill_(total)

    @torch.no_grad()
    def act(self, state: Tensor, deterministic: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Sample (or take the mean of) actions. -> actions (N, A), log_prob (N,), value (N,)"""
        dist, value = self(state)
        action = dist.mean if deterministic else dist.sample()
        action = action.clamp(1e-4, 1 - 1e-4)  # Beta log_prob is -inf at exactly 0 or 1
        return action, dist.log_prob(action).sum(1), value
