"""Parameter and FLOP accounting for the single-stream baseline and ASNet.

Two conventions for "FLOPs" are in use, and they differ by a factor of 2:

* ``torch.utils.flop_counter.FlopCounterMode`` (and so :func:`count_flops`) counts a
  multiply-add as **2** FLOPs (a conv/linear costs ``2 * MACs``).
* Video papers, including ASNet's Table 6 ("GFLOPs x Views") and the I3D / R(2+1)D / S3D
  numbers it quotes, give **multiply-adds** and call them GFLOPs.

The paper-comparable number is therefore :func:`gmacs` (``flops / 2 / 1e9``), and that is
what the report's cost table uses (column ``gmacs``, labelled "GFLOPs (multiply-adds)").
Only convolutions, linear layers and matmuls are counted (what FlopCounterMode knows);
BatchNorm, ReLU and pooling are not, as is usual in those papers.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from asnet.config import Config, load_config, with_overrides
from asnet.models import build_model
from asnet.models.asnet import FusionHead
from asnet.models.resnet3d import BackboneSpec, build_backbone
from asnet.spa.agent import ActorCritic
from asnet.spa.rollout import state_dim
from asnet.variants import get_variant

# The paper's claim (Sec. 4.4): ASNet adds 0.475 M parameters to its 48.34 M backbone.
PAPER_EXTRA_PARAMS = 475_000
PAPER_BACKBONE_PARAMS = 48_340_000
KINETICS_CLASSES = 400


def count_flops(model: nn.Module, inputs: tuple) -> int:
    """FLOPs of ONE forward pass ``model(*inputs)``, as torch counts them (multiply-add = 2).

    Runs under ``torch.no_grad()``: the backward pass is never counted (FlopCounterMode's
    backward formula for grouped convolutions over-counts in torch 2.13, and inference cost
    is what the paper reports anyway). Works on ``meta`` tensors, so a ResNeXt-101 costs no
    memory and well under a second. Use :func:`gmacs` for the papers' "GFLOPs".
    """
    was_training = model.training
    model.eval()  # BatchNorm in eval mode: the inference graph
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def gmacs(flops: int | float) -> float:
    """Giga multiply-adds from torch's FLOP count: what papers (and our cost table) call GFLOPs."""
    return flops / 2 / 1e9


def n_params(module: nn.Module | None) -> int:
    """Number of parameters (trainable or not) of `module`; 0 for None."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


class FeaturesModule(nn.Module):
    """Adapter so count_flops can call ``.features`` (pooled clip embedding) of a backbone or ASNet."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def spa_clip_shape(cfg: Config) -> tuple[int, int]:
    """(frames, pixels) of the clips SPA's own forwards see: every spa.state_stride-th frame,
    resized to input.size * spa.state_scale (the paper: the whole clip at input.size)."""
    t = -(-cfg.input.clip_len // cfg.spa.state_stride)
    return t, cfg.spa.state_size(cfg.input.size)


def model_cost(cfg: Config, num_classes: int, variant: str, views: int = 1) -> dict[str, Any]:
    """Parameters, per-view inference cost and per-clip training cost of `variant` for clips
    of ``cfg.input.clip_len x cfg.input.size^2``, counting the forwards our code runs:

    * single stream: 1 backbone forward (context); two streams (siamese_center, asnet): 2.
    * asnet also runs SPA at test time: 1 scene + ``test_steps`` patch forwards (the initial
      box, then every box but the last: the last one only feeds the saliency stream),
      ``test_steps`` head evaluations for the state's logits and ``test_steps`` agent
      forwards. SPA's forwards see :func:`spa_clip_shape` clips (cheaper with
      spa.state_stride / spa.state_scale).
    * training (``gflops_train_step``, per clip): forward + backward ~ 3 forwards per stream,
      plus, for asnet, the episode's 1 scene + ``train_steps + 1`` patch forwards (every box
      is scored for its reward). The PPO update of the small MLP is not counted.

    Models are built on the ``meta`` device (no memory, fast). Keys ending in ``_params`` are
    parameter counts; ``gflops_*`` follow torch (2 per multiply-add), ``gmacs_*`` the papers.
    """
    v = get_variant(variant)
    cfg = with_overrides(cfg, v.overrides)  # e.g. asnet_fast_spa's cheaper SPA
    t, s = cfg.input.clip_len, cfg.input.size
    t_spa, s_spa = spa_clip_shape(cfg)
    with torch.device("meta"):
        model = build_model(cfg.model, num_classes, v.streams)
        clip = torch.empty(1, 3, t, s, s)
        spa_clip = torch.empty(1, 3, t_spa, s_spa, s_spa)
        feat = torch.empty(1, model.feature_dim)
    agent = None
    if v.saliency == "spa":
        # On the CPU, not meta: the Beta distribution validates its parameters with a
        # data-dependent check (.item()), which meta tensors cannot do. It is small (< 2 M).
        agent = ActorCritic(state_dim(model.feature_dim, num_classes, cfg.spa.state), cfg.spa.actions,
                            cfg.spa.hidden)
    backbone_flops = count_flops(FeaturesModule(model.backbone), (clip,))
    head_flops = count_flops(model.head, (feat, feat) if v.streams == 2 else (feat,))
    spa_forward_flops = 0
    rollout = train_rollout = 0
    if agent is not None:
        spa_forward_flops = (backbone_flops if (t_spa, s_spa) == (t, s)
                             else count_flops(FeaturesModule(model.backbone), (spa_clip,)))
        state = torch.zeros(1, agent.trunk[0].in_features)
        per_step = spa_forward_flops + head_flops + count_flops(agent, (state,))
        rollout = spa_forward_flops + cfg.spa.test_steps * per_step  # scene + test_steps patches
        # training: scene + initial patch (+ its logits) + train_steps x (agent, patch, logits)
        train_rollout = 2 * spa_forward_flops + head_flops + cfg.spa.train_steps * per_step

    per_view = v.streams * backbone_flops + head_flops + rollout
    out: dict[str, Any] = {
        "variant": variant,
        "arch": f"{cfg.model.arch}-{cfg.model.depth}",
        "clip": f"{t}x{s}x{s}",
        "spa_clip": f"{t_spa}x{s_spa}x{s_spa}" if agent is not None else "",
        "num_classes": num_classes,
        "backbone_params": n_params(model.backbone),  # without its (unused) Kinetics fc
        "head_params": n_params(model.head),
        "spa_params": n_params(agent),
        "backbone_forwards": v.streams + (1 + cfg.spa.test_steps if agent is not None else 0),
        "gflops_backbone_forward": backbone_flops / 1e9,
        "gflops_spa_forward": spa_forward_flops / 1e9,
        "gflops_per_view": per_view / 1e9,
        "gflops_train_step": (3 * (v.streams * backbone_flops + head_flops) + train_rollout) / 1e9,
        "gmacs_backbone_forward": gmacs(backbone_flops),
        "gmacs_context": gmacs(backbone_flops),
        "gmacs_saliency": gmacs(backbone_flops) if v.streams == 2 else 0.0,
        "gmacs_spa_rollout": gmacs(rollout),
        "gmacs_head": gmacs(head_flops),
        "gmacs_per_view": gmacs(per_view),
        "views": views,
        "gmacs_total": gmacs(per_view) * views,
    }
    out["total_params"] = out["backbone_params"] + out["head_params"] + out["spa_params"]
    return out


def actor_critic_params(state: int, n_actions: int, hidden: int) -> int:
    """Closed form of ``n_params(ActorCritic(state, n_actions, hidden))``.

    Linear(S, h) + Linear(h, h) + policy Linear(h, 2A) (Beta alpha, beta) + value Linear(h, 1):
    (S+1)h + (h+1)h + (h+1)2A + (h+1) = h^2 + (S + 2A + 3) h + 2A + 1.
    """
    return hidden * hidden + (state + 2 * n_actions + 3) * hidden + 2 * n_actions + 1


def hidden_for_params(target: int, state: int, n_actions: int) -> int:
    """The hidden size h whose ActorCritic parameter count is closest to `target`."""
    b = state + 2 * n_actions + 3
    c = 2 * n_actions + 1 - target
    root = (-b + math.sqrt(b * b - 4 * c)) / 2  # positive root of h^2 + b h + c = 0
    cands = [h for h in (math.floor(root), math.ceil(root)) if h >= 1] or [1]
    return min(cands, key=lambda h: abs(actor_critic_params(state, n_actions, h) - target))


def extra_params_check(
    cfg: Config | None = None,
    num_classes: int = 101,
    paper_extra: int = PAPER_EXTRA_PARAMS,
    paper_backbone: int = PAPER_BACKBONE_PARAMS,
) -> dict[str, Any]:
    """ASNet's extra parameters over the single-stream model, against the paper's claim.

    The paper (Sec. 4.4) says ASNet adds 0.475 M parameters (< 1 %) to its 48.34 M
    3D ResNeXt-101. 48.34 M is the Kinetics model *with its 400-way fc* (48,340,816), not
    the 101-class model. The extra parameters of ASNet (concat fusion) are:

    * classifier: Linear(2D, C) instead of Linear(D, C), i.e. D*C more weights (the bias is
      shared): 2048 * 101 = 206,848;
    * SPA: our ActorCritic on the state cat(s_g, s_p, s_l) of 2D + C dims.

    Returned: the counts, and the SPA hidden size that reproduces `paper_extra` under two
    readings (SPA alone; SPA plus the larger classifier). `cfg` defaults to the paper preset.
    """
    cfg = cfg or load_config(overrides=["preset=paper"])
    spec = BackboneSpec(arch=cfg.model.arch, depth=cfg.model.depth, width=cfg.model.width,
                        cardinality=cfg.model.cardinality, no_max_pool=cfg.model.no_max_pool)
    # One (meta) backbone build; the heads are the same FusionHead build_model attaches.
    # Building three ResNeXt-101s would give identical trunk counts at 3x the time.
    with torch.device("meta"):
        kinetics = build_backbone(spec, KINETICS_CLASSES)
        dim = kinetics.feature_dim
        single_head = FusionHead(dim, num_classes, cfg.model.fusion, streams=1)
        asnet_head = FusionHead(dim, num_classes, cfg.model.fusion, streams=2)
    trunk = n_params(kinetics) - n_params(getattr(kinetics, kinetics.head_name))
    s_dim = state_dim(dim, num_classes, cfg.spa.state)
    spa_ours = actor_critic_params(s_dim, cfg.spa.actions, cfg.spa.hidden)
    extra_head = n_params(asnet_head) - n_params(single_head)
    h_spa_only = hidden_for_params(paper_extra, s_dim, cfg.spa.actions)
    h_with_head = hidden_for_params(paper_extra - extra_head, s_dim, cfg.spa.actions)
    return {
        "backbone_kinetics400_params": n_params(kinetics),
        "paper_backbone_params": paper_backbone,
        "backbone_params": trunk,
        "single_head_params": n_params(single_head),
        "asnet_head_params": n_params(asnet_head),
        "extra_head_params": extra_head,
        "single_total_params": trunk + n_params(single_head),
        "state_dim": s_dim,
        "spa_hidden": cfg.spa.hidden,
        "spa_params": spa_ours,
        "extra_params": extra_head + spa_ours,
        "extra_fraction": (extra_head + spa_ours) / (trunk + n_params(single_head)),
        "paper_extra_params": paper_extra,
        "paper_extra_fraction": paper_extra / paper_backbone,
        "hidden_matching_paper_spa_only": h_spa_only,
        "spa_params_at_that_hidden": actor_critic_params(s_dim, cfg.spa.actions, h_spa_only),
        "hidden_matching_paper_spa_plus_head": h_with_head,
        "extra_params_at_that_hidden": extra_head + actor_critic_params(s_dim, cfg.spa.actions, h_with_head),
    }
