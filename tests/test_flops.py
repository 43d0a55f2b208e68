"""Tests for asnet.report.flops: FLOP counting against hand counts, model costs, the params claim."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asnet.config import load_config
from asnet.models.resnet3d import BackboneSpec, build_backbone
from asnet.report.flops import (
    actor_critic_params,
    count_flops,
    extra_params_check,
    gmacs,
    hidden_for_params,
    model_cost,
    n_params,
)
from asnet.spa.agent import ActorCritic


def test_conv3d_flops_match_hand_count() -> None:
    conv = nn.Conv3d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)
    x = torch.zeros(2, 3, 4, 10, 10)
    # Output (2, 8, 2, 5, 5); each output value is 3 * 27 multiply-adds; torch counts 2 per MAC.
    macs = 2 * 8 * (2 * 5 * 5) * (3 * 27)
    assert count_flops(conv, (x,)) == 2 * macs
    assert gmacs(count_flops(conv, (x,))) == pytest.approx(macs / 1e9)


def test_grouped_conv3d_flops_match_hand_count() -> None:
    # ResNeXt's grouped 3x3x3 conv: each output channel sees Cin / groups input channels.
    conv = nn.Conv3d(8, 16, kernel_size=3, padding=1, groups=4, bias=False)
    x = torch.zeros(1, 8, 2, 4, 4)
    macs = 16 * (2 * 4 * 4) * (8 // 4) * 27
    assert count_flops(conv, (x,)) == 2 * macs


def test_linear_flops_match_hand_count_and_backward_is_not_counted() -> None:
    lin = nn.Linear(7, 5)
    x = torch.zeros(3, 7, requires_grad=True)
    # addmm: 3 x 7 x 5 multiply-adds (the bias add is not counted by torch); no backward.
    assert count_flops(lin, (x,)) == 2 * 3 * 7 * 5


def test_count_flops_on_meta_equals_cpu_and_restores_mode() -> None:
    spec = BackboneSpec(arch="resnext", depth=50, width=16)
    torch.manual_seed(0)
    cpu = build_backbone(spec, 5)
    with torch.device("meta"):
        meta = build_backbone(spec, 5)
    cpu.train()
    x = torch.zeros(1, 3, 4, 32, 32)
    n_cpu = count_flops(cpu, (x,))
    assert cpu.training  # count_flops evaluates in eval mode, then puts the mode back
    assert n_cpu > 0
    assert count_flops(meta, (x.to("meta"),)) == n_cpu


def test_model_cost_orders_variants_and_counts_forwards() -> None:
    cfg = load_config(overrides=["preset=tiny"])
    single = model_cost(cfg, 3, "single")
    siamese = model_cost(cfg, 3, "siamese_center")
    asnet = model_cost(cfg, 3, "asnet", views=4)
    assert single["backbone_forwards"] == 1 and siamese["backbone_forwards"] == 2
    # context + saliency + SPA: 1 scene + test_steps patches (the last box only feeds the saliency stream)
    assert asnet["backbone_forwards"] == 2 + 1 + cfg.spa.test_steps
    assert single["gmacs_per_view"] < siamese["gmacs_per_view"] < asnet["gmacs_per_view"]
    assert asnet["gmacs_per_view"] == pytest.approx(5 * single["gmacs_backbone_forward"], rel=1e-2)
    # training: 3 forwards per stream + scene + (train_steps + 1) patches
    fwd = single["gflops_backbone_forward"]
    assert single["gflops_train_step"] == pytest.approx(3 * fwd, rel=1e-2)
    assert asnet["gflops_train_step"] == pytest.approx((6 + 1 + cfg.spa.train_steps + 1) * fwd, rel=1e-2)
    assert asnet["gmacs_total"] == pytest.approx(4 * asnet["gmacs_per_view"])
    assert asnet["gflops_per_view"] == pytest.approx(2 * asnet["gmacs_per_view"])
    assert single["spa_params"] == 0 and asnet["spa_params"] > 0
    assert asnet["total_params"] == asnet["backbone_params"] + asnet["head_params"] + asnet["spa_params"]
    # concat head: Linear(2D, C) vs Linear(D, C)
    dim = (single["head_params"] - 3) // 3
    assert asnet["head_params"] - single["head_params"] == dim * 3


def test_cheaper_spa_forwards_are_counted_on_what_spa_sees() -> None:
    cfg = load_config(overrides=["preset=tiny", "input.clip_len=8", "spa.state_stride=2", "spa.state_scale=0.5"])
    full = model_cost(load_config(overrides=["preset=tiny", "input.clip_len=8"]), 3, "asnet")
    cheap = model_cost(cfg, 3, "asnet")
    assert cheap["spa_clip"] == "4x16x16" and full["spa_clip"] == "8x32x32"
    # a conv net's FLOPs scale with T x H x W: 1/2 x 1/4 (up to padding at these tiny sizes)
    assert cheap["gflops_spa_forward"] == pytest.approx(full["gflops_spa_forward"] / 8, rel=0.35)
    assert cheap["gmacs_context"] == full["gmacs_context"] and cheap["gmacs_per_view"] < full["gmacs_per_view"]


def test_actor_critic_closed_form_and_inverse() -> None:
    for s, a, h in ((10, 2, 4), (4197, 3, 110), (50, 4, 33)):
        assert actor_critic_params(s, a, h) == n_params(ActorCritic(s, a, h))
    assert hidden_for_params(actor_critic_params(4197, 3, 110), 4197, 3) == 110


def test_extra_params_check_paper_preset() -> None:
    out = extra_params_check()  # paper preset: ResNeXt-101, width 64, 101 classes
    assert out["backbone_kinetics400_params"] == 48_340_816  # the paper's "48.34 M"
    assert out["backbone_params"] == 48_340_816 - (2048 * 400 + 400)
    assert out["single_head_params"] == 2048 * 101 + 101
    assert out["asnet_head_params"] == 2 * 2048 * 101 + 101
    assert out["extra_head_params"] == 2048 * 101
    assert out["state_dim"] == 2 * 2048 + 101
    assert out["spa_params"] == actor_critic_params(4197, 3, out["spa_hidden"])
    assert out["hidden_matching_paper_spa_only"] == 110
    assert abs(out["spa_params_at_that_hidden"] - 475_000) < 1_000
    assert out["paper_extra_fraction"] < 0.01
