"""Tests for asnet.models.resnet3d: shapes, Hara checkpoint key layout, round trip, bf16."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F

from asnet.depths import DEPTHS
from asnet.models.resnet3d import BackboneSpec, DenseNet3D, ResNet3D, _ZeroPadShortcut, build_backbone


def _meta_model(arch: str, depth: int, num_classes: int = 400, **kw: object) -> torch.nn.Module:
    # Building on the meta device allocates nothing, so even ResNeXt-101 is instant.
    with torch.device("meta"):
        return build_backbone(BackboneSpec(arch=arch, depth=depth, **kw), num_classes)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- spec


def test_default_shortcut_matches_hara_kinetics_checkpoints() -> None:
    # Old README: resnet-18/34 -> A, resnet-50+ -> B, resnext-101 -> B.
    assert BackboneSpec(arch="resnet", depth=18).shortcut == "A"
    assert BackboneSpec(arch="resnet", depth=34).shortcut == "A"
    assert BackboneSpec(arch="resnet", depth=50).shortcut == "B"
    assert BackboneSpec(arch="resnet", depth=10).shortcut == "B"
    assert BackboneSpec(arch="resnext", depth=101).shortcut == "B"
    assert BackboneSpec(arch="resnet", depth=18, shortcut="B").shortcut == "B"
    assert BackboneSpec(arch="resnet", depth=18) == BackboneSpec(arch="resnet", depth=18, shortcut="A")


@pytest.mark.parametrize(
    "kw",
    [dict(arch="vgg"), dict(depth=11), dict(arch="resnext", depth=18), dict(shortcut="C"),
     dict(width=0), dict(arch="resnext", depth=50, width=8)],
)
def test_spec_rejects_invalid(kw: dict) -> None:
    with pytest.raises(ValueError):
        BackboneSpec(**kw)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("depth", [10, 18])
@pytest.mark.parametrize("shape", [(2, 3, 8, 48, 48), (1, 3, 16, 112, 112)])
def test_small_resnet_shapes(depth: int, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = ResNet3D(BackboneSpec(arch="resnet", depth=depth, width=16), num_classes=7).eval()
    assert model.feature_dim == 128
    x = torch.randn(shape)
    with torch.no_grad():
        assert model.features(x).shape == (shape[0], 128)
        assert model(x).shape == (shape[0], 7)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_shortcuts_and_options_train_step(shortcut: str) -> None:
    spec = BackboneSpec(arch="resnet", depth=18, width=16, shortcut=shortcut, conv1_t_size=3,
                        conv1_t_stride=2, no_max_pool=True)
    model = ResNet3D(spec, num_classes=5)
    model(torch.randn(2, 3, 8, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_zero_pad_shortcut_matches_hara_and_passes_gradient() -> None:
    x = torch.randn(2, 4, 5, 6, 7, requires_grad=True)
    out = _ZeroPadShortcut(out_planes=8, stride=2)(x)
    # Hara: avg_pool3d(kernel 1, stride 2) then zero channels appended.
    ref = torch.cat([F.avg_pool3d(x, kernel_size=1, stride=2), torch.zeros(2, 4, 3, 3, 4)], dim=1)
    torch.testing.assert_close(out, ref)
    out.sum().backward()  # unlike Hara's out.data, the identity path carries gradient
    assert x.grad is not None and x.grad[:, :, ::2, ::2, ::2].eq(1).all()


def test_small_resnext_and_densenet_shapes() -> None:
    torch.manual_seed(0)
    rx = build_backbone(BackboneSpec(arch="resnext", depth=50, width=16), 3).eval()
    assert isinstance(rx, ResNet3D) and rx.feature_dim == 512
    with torch.no_grad():
        assert rx.features(torch.randn(2, 3, 8, 48, 48)).shape == (2, 512)
    dn = build_backbone(BackboneSpec(arch="densenet", depth=121, width=16), 3).eval()
    assert isinstance(dn, DenseNet3D) and dn.feature_dim == 256
    with torch.no_grad():
        # DenseNet's three 2x transitions (like Hara's) need T >= 16.
        assert dn(torch.randn(1, 3, 16, 48, 48)).shape == (1, 3)


# ---------------------------------------------------------------- Hara key layout

# Written down from kenshohara/3D-ResNets-PyTorch models/resnet.py & models/resnext.py
# (pre-2020 release used for the *-kinetics.pth checkpoints), width 64, 400 classes.
RESNET18_KEYS = {
    "conv1.weight": (64, 3, 7, 7, 7),
    "bn1.weight": (64,),
    "bn1.running_var": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3, 3),
    "layer1.1.bn2.bias": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3, 3),
    "layer2.0.conv2.weight": (128, 128, 3, 3, 3),
    "layer3.1.conv2.weight": (256, 256, 3, 3, 3),
    "layer4.0.conv1.weight": (512, 256, 3, 3, 3),
    "layer4.1.bn2.running_mean": (512,),
    "fc.weight": (400, 512),
    "fc.bias": (400,),
}
RESNET50_KEYS = {
    "conv1.weight": (64, 3, 7, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 1, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1, 1),
    "layer1.0.downsample.1.weight": (256,),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1, 1),
    "layer3.5.bn3.running_var": (1024,),
    "layer4.0.conv2.weight": (512, 512, 3, 3, 3),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1, 1),
    "layer4.2.conv3.weight": (2048, 512, 1, 1, 1),
    "fc.weight": (400, 2048),
}
RESNEXT101_KEYS = {
    "conv1.weight": (64, 3, 7, 7, 7),
    "bn1.bias": (64,),
    "layer1.0.conv1.weight": (128, 64, 1, 1, 1),
    "layer1.0.conv2.weight": (128, 4, 3, 3, 3),  # groups=32
    "layer1.0.conv3.weight": (256, 128, 1, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1, 1),
    "layer1.0.downsample.1.running_mean": (256,),
    "layer2.0.conv2.weight": (256, 8, 3, 3, 3),
    "layer2.0.downsample.0.weight": (512, 256, 1, 1, 1),
    "layer3.22.conv3.weight": (1024, 512, 1, 1, 1),
    "layer4.0.conv1.weight": (1024, 1024, 1, 1, 1),
    "layer4.2.conv2.weight": (1024, 32, 3, 3, 3),
    "layer4.2.bn3.weight": (2048,),
    "fc.weight": (400, 2048),
    "fc.bias": (400,),
}


@pytest.mark.parametrize(
    ("arch", "depth", "expected", "n_keys", "n_params"),
    [
        ("resnet", 18, RESNET18_KEYS, 104, 33_235_280),
        ("resnet", 50, RESNET50_KEYS, 320, 47_018_576),
        ("resnext", 101, RESNEXT101_KEYS, 626, 48_340_816),  # ASNet paper: 48.34 M
    ],
)
def test_hara_key_layout(arch: str, depth: int, expected: dict, n_keys: int, n_params: int) -> None:
    model = _meta_model(arch, depth)
    shapes = _shapes(model)
    for key, shape in expected.items():
        assert shapes[key] == shape, key
    assert len(shapes) == n_keys
    assert _n_params(model) == n_params
    # Every key follows Hara's naming: stem, four stages, fc.
    assert {k.split(".")[0] for k in shapes} == {"conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"}


def test_resnet18_shortcut_a_has_no_downsample_keys() -> None:
    # resnet-18-kinetics.pth was trained with shortcut A: no downsample params in the file.
    assert not any("downsample" in k for k in _meta_model("resnet", 18).state_dict())
    keys_b = [k for k in _meta_model("resnet", 18, shortcut="B").state_dict() if "downsample" in k]
    assert len(keys_b) == 3 * 6  # layers 2-4, conv weight + 5 BN entries


def test_resnext101_param_count_101_classes() -> None:
    assert _n_params(_meta_model("resnext", 101, num_classes=101)) == 47_728_165


def test_densenet121_key_layout_and_dotted_keys_load() -> None:
    shapes = _shapes(_meta_model("densenet", 121))
    assert shapes["features.conv0.weight"] == (64, 3, 7, 7, 7)
    assert shapes["features.denseblock1.denselayer1.conv1.weight"] == (128, 64, 1, 1, 1)
    assert shapes["features.denseblock1.denselayer1.conv2.weight"] == (32, 128, 3, 3, 3)
    assert shapes["features.transition3.conv.weight"] == (512, 1024, 1, 1, 1)
    assert shapes["features.norm5.weight"] == (1024,)
    assert shapes["classifier.weight"] == (400, 1024)
    # Hara's file names layers "norm.1"/"conv.1"; the pre-hook must accept that spelling.
    small = DenseNet3D(BackboneSpec(arch="densenet", depth=121, width=8), 3)
    dotted = {}
    for k, v in small.state_dict().items():
        for n in ("norm1", "conv1", "norm2", "conv2"):
            k = k.replace(f".{n}.", f".{n[:-1]}.{n[-1]}.") if "denselayer" in k else k
        dotted[k] = v.clone().fill_(0.5) if v.is_floating_point() else v
    assert any(".norm.1." in k for k in dotted)
    fresh = DenseNet3D(BackboneSpec(arch="densenet", depth=121, width=8), 3)
    fresh.load_state_dict(dotted)  # strict
    assert torch.all(fresh.state_dict()["features.denseblock2.denselayer3.conv2.weight"] == 0.5)


# ---------------------------------------------------------------- round trip / precision


@pytest.mark.parametrize("arch,depth", [("resnet", 18), ("resnext", 50)])
def test_state_dict_round_trip(arch: str, depth: int) -> None:
    torch.manual_seed(0)
    spec = BackboneSpec(arch=arch, depth=depth, width=16)
    model = build_backbone(spec, 10)
    model(torch.randn(2, 3, 8, 32, 32))  # one train-mode pass so BN running stats are non-trivial
    model.eval()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = build_backbone(spec, 10)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    fresh.eval()
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_bf16_autocast_channels_last(shortcut: str) -> None:
    torch.manual_seed(0)
    model = ResNet3D(BackboneSpec(arch="resnet", depth=18, width=16, shortcut=shortcut), 10).eval()
    x = torch.randn(2, 3, 8, 48, 48)
    with torch.no_grad():
        ref = model.features(x)
        model_cl = model.to(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model_cl.features(x.to(memory_format=torch.channels_last_3d))
    assert out.shape == ref.shape and torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm()
    assert rel < 0.05, float(rel)
    # And a backward pass in bf16, through torch's native kernels: oneDNN's bf16 convolution
    # backward in torch 2.13 returns NaN weight gradients now and then on AVX512-BF16 CPUs
    # (8 of 96 seeded ResNet-18 steps here, either memory format; 0 of 96 with oneDNN off).
    model_cl.train()
    with torch.backends.mkldnn.flags(enabled=False), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model_cl(x.to(memory_format=torch.channels_last_3d)).float().logsumexp(1).mean()
        loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model_cl.parameters())


# ---------------------------------------------------------------- one head interface, every architecture


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(DEPTHS))
def test_every_architecture_builds_forwards_replaces_its_head_and_loads(arch: str, tmp_path) -> None:
    """Every backbone: build, forward, reset_classifier through `head_name` (no caller names fc or
    classifier), the ASNet wrapper drops the head, and a file saved from it loads back."""
    from asnet.config import load_config, with_overrides
    from asnet.models import build_model
    from asnet.models.pretrained import load_pretrained

    depth, width = min(DEPTHS[arch]), 16 if arch == "resnext" else 8  # ResNeXt needs width >= 16
    spec = BackboneSpec(arch=arch, depth=depth, width=width, shortcut=None if arch == "densenet" else "B")
    torch.manual_seed(0)
    net = build_backbone(spec, 7).eval()
    x = torch.randn(2, 3, 16, 32, 32)  # DenseNet halves time and space four times: 16 frames, 32 px
    head = getattr(net, net.head_name)
    assert isinstance(head, torch.nn.Linear) and (head.in_features, head.out_features) == (net.feature_dim, 7)
    with torch.no_grad():
        assert net(x).shape == (2, 7)
        feats = net.features(x)
        net.reset_classifier(5)
        assert net(x).shape == (2, 5)
        net.reset_classifier(0)  # features only: no head parameters left
        assert torch.equal(net(x), feats)
    assert not any(k.startswith(f"{net.head_name}.") for k in net.state_dict())

    # Saved with a Kinetics-sized head (Hara's 2020 layout), loaded into ASNet for 3 classes.
    torch.manual_seed(1)
    src = build_backbone(spec, 400).eval()
    path = tmp_path / "saved.pth"
    torch.save({"epoch": 1, "arch": arch, "state_dict": src.state_dict()}, path)
    cfg = with_overrides(load_config(overrides=["preset=tiny"]), {
        "model.arch": arch, "model.depth": depth, "model.width": width, "model.pretrained": str(path),
        "model.pretrained_release": "hara2020", "input.clip_len": 16})
    model = build_model(cfg.model, num_classes=3, streams=2).eval()
    assert not any(k.startswith(f"backbone.{model.backbone.head_name}.") for k in model.state_dict())
    report = load_pretrained(model, path, cfg)
    assert report.missing == [] and report.unexpected == []
    with torch.no_grad():
        assert torch.allclose(model.features(x), src.features(x), atol=1e-5)
        assert model(x, x).shape == (2, 3)
