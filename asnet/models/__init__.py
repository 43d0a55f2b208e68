"""Models: Hara et al.'s 3D ResNets/ResNeXt backbones and the ASNet two-stream wrapper."""

from __future__ import annotations

from dataclasses import asdict

from asnet import hara
from asnet.config import ModelConfig
from asnet.models.asnet import ASNet
from asnet.models.resnet3d import BackboneSpec, build_backbone, zero_init_bottlenecks


def build_model(cfg: ModelConfig, num_classes: int, streams: int) -> ASNet:
    """An ASNet (streams=2) or single-stream model (streams=1) from the `model` config."""
    spec = BackboneSpec(
        arch=cfg.arch, depth=cfg.depth, width=cfg.width, cardinality=cfg.cardinality, no_max_pool=cfg.no_max_pool,
        shortcut=hara.shortcut_of(asdict(cfg)),
    )
    backbone = build_backbone(spec, num_classes)
    if cfg.zero_init_residual:
        zero_init_bottlenecks(backbone)
    return ASNet(backbone, num_classes, streams, cfg.fusion)


__all__ = ["ASNet", "BackboneSpec", "build_backbone", "build_model"]
