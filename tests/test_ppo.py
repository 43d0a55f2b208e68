"""PPO returns/advantages/loss on hand-computed cases."""

import math

import torch

from asnet.spa.ppo import advantages, discounted_returns, ppo_loss


def test_discounted_returns_hand_computed():
    r = torch.tensor([[1.0, 0.0], [-1.0, 1.0], [1.0, 1.0]])  # (T=3, B=2)
    g = discounted_returns(r, gamma=0.5)
    # column 0: G2 = 1, G1 = -1 + 0.5*1 = -0.5, G0 = 1 + 0.5*(-0.5) = 0.75
    # column 1: G2 = 1, G1 = 1 + 0.5 = 1.5, G0 = 0 + 0.75 = 0.75
    assert torch.allclose(g, torch.tensor([[0.75, 0.75], [-0.5, 1.5], [1.0, 1.0]]))


def test_gamma_zero_and_one():
    r = torch.tensor([[1.0], [2.0], [3.0]])
    assert torch.equal(discounted_returns(r, 0.0), r)
    assert torch.equal(discounted_returns(r, 1.0), torch.tensor([[6.0], [5.0], [3.0]]))


def test_advantage_without_and_with_normalisation():
    ret = torch.tensor([1.0, 2.0, 3.0])
    val = torch.tensor([0.5, 2.5, 1.0])
    assert torch.allclose(advantages(ret, val, normalize=False), torch.tensor([0.5, -0.5, 2.0]))
    a = advantages(ret, val, normalize=True)
    assert abs(float(a.mean())) < 1e-6 and abs(float(a.std()) - 1) < 1e-5


def test_ppo_loss_clipping_hand_computed():
    # ratio = e^{log 1.5} = 1.5 with eps 0.2: positive advantage is clipped at 1.2,
    # negative advantage takes the unclipped (more pessimistic) 1.5.
    old = torch.zeros(2)
    new = torch.full((2,), math.log(1.5))
    adv = torch.tensor([2.0, -2.0])
    value = torch.tensor([1.0, 0.0])
    target = torch.tensor([0.0, 2.0])
    entropy = torch.tensor([0.3, 0.5])
    loss, stats = ppo_loss(new, old, adv, value, target, entropy, clip_eps=0.2, c1=0.5, c2=0.1)
    policy = -((1.2 * 2.0) + (1.5 * -2.0)) / 2  # = 0.3
    value_loss = (1.0 + 4.0) / 2  # = 2.5
    expected = policy + 0.5 * value_loss - 0.1 * 0.4
    assert abs(float(loss) - expected) < 1e-6
    assert abs(stats["policy_loss"] - policy) < 1e-6
    assert abs(stats["value_loss"] - value_loss) < 1e-6


def test_ppo_loss_gradient_zero_when_clipped():
    new = torch.tensor([math.log(1.5)], requires_grad=True)
    loss, _ = ppo_loss(new, torch.zeros(1), torch.tensor([1.0]), torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.2, 0.0, 0.0)
    loss.backward()
    assert float(new.grad) == 0.0  # outside the trust region in the improving direction: no push
