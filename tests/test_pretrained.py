"""load_pretrained: Hara et al.'s checkpoint layout ("module."-prefixed state_dict, Kinetics
classifier) and our own model.pt both load into a model with a new classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asnet.config import ModelConfig
from asnet.models import build_model
from asnet.models.pretrained import load_pretrained
from asnet.models.resnet3d import BackboneSpec, build_backbone

CFG = ModelConfig(arch="resnet", depth=10, width=8)


def _hara_file(path: Path) -> torch.nn.Module:
    torch.manual_seed(3)
    kinetics = build_backbone(BackboneSpec(arch="resnet", depth=10, width=8), num_classes=400).eval()
    state = {f"module.{k}": v for k, v in kinetics.state_dict().items()}
    torch.save({"epoch": 200, "arch": "resnet-10", "state_dict": state}, path)
    return kinetics


def test_hara_layout_round_trip(tmp_path: Path) -> None:
    kinetics = _hara_file(tmp_path / "resnet-10-kinetics.pth")
    model = build_model(CFG, num_classes=5, streams=2).eval()
    report = load_pretrained(model, tmp_path / "resnet-10-kinetics.pth")
    assert report == {"missing": [], "unexpected": []}
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.features(x), kinetics.features(x), atol=1e-6)
        assert model(x, x).shape == (2, 5)  # the classifier is the target's, not Kinetics'


def test_our_model_file_and_shape_mismatch(tmp_path: Path) -> None:
    src = build_model(CFG, num_classes=3, streams=1).eval()
    torch.save({"model": src.state_dict(), "variant": "single"}, tmp_path / "model.pt")
    dst = build_model(CFG, num_classes=7, streams=2).eval()
    load_pretrained(dst, tmp_path / "model.pt")
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.allclose(dst.features(x), src.features(x), atol=1e-6)
    wider = build_model(ModelConfig(arch="resnet", depth=10, width=16), num_classes=7, streams=1)
    with pytest.raises(ValueError, match="conv1.weight"):
        load_pretrained(wider, tmp_path / "model.pt")
    with pytest.raises(FileNotFoundError, match="model.pretrained"):
        load_pretrained(wider, tmp_path / "nope.pt")
