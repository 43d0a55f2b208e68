"""SPA's actor-critic: a shared-trunk three-layer perceptron with Beta policy and value heads."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Beta


class ActorCritic(nn.Module):
    """pi(a | s) and V(s) over the state s = cat(s_g, s_p, s_l).

    The paper says policy and value share a "three-layer perceptron"; its action
    distribution is not given (NOTES item 3). A Beta distribution per action keeps actions
    in (0, 1) without clipping, which actions.py scales to the frame.
    """

    def __init__(self, state_dim: int, n_actions: int, hidden: int = 256) -> None:
        super().__init__()
        self.n_actions = n_actions
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
        h = self.trunk(state.float())
        ab = F.softplus(self.policy(h)) + 1.0  # alpha, beta > 1: unimodal
        alpha, beta = ab.chunk(2, dim=1)  # (N, A) each
        return Beta(alpha, beta), self.value(h).squeeze(1)

    @torch.no_grad()
    def act(self, state: Tensor, deterministic: bool) -> tuple[Tensor, Tensor, Tensor]:
        """Sample (or take the mean of) actions. -> actions (N, A), log_prob (N,), value (N,)"""
        dist, value = self(state)
        action = dist.mean if deterministic else dist.sample()
        action = action.clamp(1e-4, 1 - 1e-4)  # Beta log_prob is -inf at exactly 0 or 1
        return action, dist.log_prob(action).sum(1), value
