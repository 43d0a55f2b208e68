"""ASNet: one backbone applied to two streams (shared weights W_s), fused by G, classified by C.

F(x; W) = C(G(F_s(x_r; W_s), F_s(x_s; W_s)); W_c)   (paper eq. 3)
With streams=1 the same class is the single-stream baseline (eq. 5).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch import Tensor

FUSIONS = ("individual", "sum", "concat", "conv", "multiply")


class FusionHead(nn.Module):
    """G and C of eq. 3 on pooled features (fusion after the last conv block, then pooling).

    individual: each stream through the same classifier, logits averaged; sum / multiply:
    elementwise; concat: cat then linear (the paper's default and best); conv: a learned
    1x1 (here linear, on pooled features) reduction of the stacked streams, as in
    Feichtenhofer et al.'s conv fusion.
    """

    def __init__(self, dim: int, num_classes: int, fusion: str, streams: int) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"model.fusion: unknown fusion {fusion!r}; choose one of {FUSIONS}")
        self.fusion = fusion if streams == 2 else "none"
        self.reduce = nn.Linear(2 * dim, dim) if self.fusion == "conv" else None
        in_dim = 2 * dim if self.fusion == "concat" else dim
        self.classifier = nn.Linear(in_dim, num_classes)

    def forward(self, f_ctx: Tensor, f_sal: Tensor | None = None) -> Tensor:
        """f_ctx, f_sal: (B, D) -> logits (B, C)"""
        if self.fusion == "none" or f_sal is None:
            return self.classifier(f_ctx)
        if self.fusion == "individual":
            return (self.classifier(f_ctx) + self.classifier(f_sal)) / 2
        if self.fusion == "sum":
            return self.classifier(f_ctx + f_sal)
        if self.fusion == "multiply":
            return self.classifier(f_ctx * f_sal)
        fused = torch.cat([f_ctx, f_sal], dim=1)  # (B, 2D)
        if self.reduce is not None:
            fused = torch.relu(self.reduce(fused))  # (B, D)
        return self.classifier(fused)


class ASNet(nn.Module):
    """Backbone + fusion head. `streams` = 1 (single stream) or 2 (Siamese / ASNet)."""

    def __init__(self, backbone: nn.Module, num_classes: int, streams: int, fusion: str = "concat") -> None:
        super().__init__()
        if streams not in (1, 2):
            raise ValueError("streams must be 1 or 2")
        self.streams = streams
        self.backbone = backbone
        # The backbone's own classifier (Kinetics-sized in pretrained checkpoints) is unused.
        self.backbone.reset_classifier(0)
        self.feature_dim: int = backbone.feature_dim
        self.head = FusionHead(self.feature_dim, num_classes, fusion, streams)

    def features(self, x: Tensor) -> Tensor:
        """(B, 3, T, S, S) -> pooled features (B, D)"""
        return self.backbone.features(x)

    def forward(self, x_ctx: Tensor, x_sal: Tensor | None = None) -> Tensor:
        """Both streams in one batched backbone pass (shared weights). -> logits (B, C)"""
        if self.streams == 1 or x_sal is None:
            return self.head(self.features(x_ctx))
        feats = self.features(torch.cat([x_ctx, x_sal]))  # (2B, D)
        f_ctx, f_sal = feats.chunk(2)
        return self.head(f_ctx, f_sal)
