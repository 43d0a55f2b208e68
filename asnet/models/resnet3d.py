"""3D ResNet / ResNeXt / DenseNet backbones with Hara et al.'s checkpoint key layout.

ASNet (Sensors 2021) uses the 3D ResNeXt-101 of Hara, Kataoka & Satoh, "Can spatiotemporal
3D CNNs retrace the history of 2D CNNs and ImageNet?" (CVPR 2018), pretrained on Kinetics.
Those weights were released by github.com/kenshohara/3D-ResNets-PyTorch *before* its 2020
rewrite, as ``resnet-{18,34,50,101,152,200}-kinetics.pth``, ``resnext-101-kinetics.pth``,
``resnext-101-64f-kinetics.pth`` and ``densenet-121-kinetics.pth`` (``{"arch", "state_dict",
...}`` dicts saved from ``nn.DataParallel``, hence the ``module.`` prefix).

Which key layout is matched
---------------------------
The **old (CVPR 2018) release**. The modules here are named so that, at ``width=64``, the
``state_dict`` keys and shapes equal those of that release once ``module.`` is stripped:

* ResNet: ``conv1`` (64, 3, 7, 7, 7), ``bn1``, ``layer{1..4}.{i}.conv{1,2[,3]}/bn{1,2[,3]}``,
  ``layer{k}.0.downsample.0`` (1x1x1 conv) / ``.1`` (BN) for shortcut "B" only, ``fc``.
  Published Kinetics checkpoints use shortcut "A" for depth 18/34 and "B" for 50+ (README
  of the old repo: ``resnet-18-kinetics.pth: --model resnet --model_depth 18 --resnet_shortcut
  A`` ... ``resnet-50-kinetics.pth: ... --resnet_shortcut B``); shortcut "A" has no parameters,
  so those checkpoints contain no ``downsample`` keys. ``BackboneSpec`` defaults to these.
* ResNeXt (``models/resnext.py``, class ``ResNeXtBottleneck``): expansion 2, block ``planes``
  128/256/512/1024 (= 2w..16w), grouped 3x3x3 ``conv2`` with ``groups=cardinality`` and
  ``mid_planes = cardinality * (planes // 32)``, so ``layer1.0.conv1.weight`` is
  (128, 64, 1, 1, 1), ``layer1.0.conv2.weight`` is (128, 4, 3, 3, 3) and ``fc`` is
  (n_classes, 2048). ``resnext-101-kinetics.pth`` uses ``--resnet_shortcut B
  --resnext_cardinality 32``. The 64-frame variant has the same keys (the clip length only
  changed Hara's fixed ``AvgPool3d``, which has no parameters; we pool adaptively).
* DenseNet-121 (``models/densenet.py``): ``features.conv0/norm0/denseblock{b}.denselayer{l}.
  {norm1,conv1,norm2,conv2}/transition{b}.{norm,conv}/norm5`` and ``classifier``. Hara's layers
  were registered as ``norm.1`` / ``conv.1`` (legal in PyTorch 0.3, rejected now); a
  load-state-dict pre-hook renames those keys, so the old checkpoint loads unchanged.

The 2020 rewrite of that repository (``r3d18_K_200ep.pth`` etc.) keeps the same ResNet key
names (it always uses shortcut "B") but released no ResNeXt weights, so it cannot be the source
of ASNet's backbone.

How this was verified: the module/attribute names and shapes above were read off Hara's
``models/resnet.py``, ``models/resnext.py`` and ``models/densenet.py`` and the old README's
per-checkpoint options, then pinned in ``tests/test_resnet3d.py`` (spot-checked keys, shapes,
key counts and parameter totals built on the ``meta`` device). No checkpoint file was available
offline, so the tests are the written-down reference, not a load of the real file.

Deliberate differences from Hara's code (none change the state dict):

* Global pooling is adaptive, so any clip size works (8x48x48, 16x112x112, ...).
* Under ``torch.use_deterministic_algorithms(True)`` (``train.deterministic`` on CUDA) the
  average poolings are plain means (``GlobalAvgPool3d``, ``HalvingAvgPool3d``): CUDA has
  no deterministic backward for ``adaptive_avg_pool3d`` / ``avg_pool3d`` and torch raises.
* Shortcut "A" lets gradients flow through the zero-padded identity; Hara's implementation
  concatenated ``out.data`` and so cut the gradient of that path.
* DenseNet's ``norm5`` is ``BatchNorm3d`` (Hara used ``BatchNorm2d`` on a 5-D tensor, which
  modern PyTorch rejects; parameters and buffers are identical).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asnet.depths import DENSENET_BLOCKS, DEPTHS, RESNET_LAYERS

__all__ = [
    "BackboneSpec",
    "ResNet3D",
    "DenseNet3D",
    "GlobalAvgPool3d",
    "HalvingAvgPool3d",
    "global_avg_pool3d",
    "build_backbone",
    "rename_dotted_dense_keys",
    "RESNET_LAYERS",
    "DENSENET_BLOCKS",
]

def _default_shortcut(arch: str, depth: int) -> str:
    """Shortcut type of Hara's published Kinetics checkpoint for this arch/depth."""
    if arch == "resnet" and depth in (18, 34):
        return "A"
    return "B"


@dataclass(frozen=True)
class BackboneSpec:
    """Architecture of a 3D CNN backbone.

    Args:
        arch: ``"resnet"``, ``"resnext"`` or ``"densenet"``.
        depth: resnet 10/18/34/50/101/152/200, resnext 50/101/152, densenet 121/169/201/264.
        width: channels of ``conv1``; ResNet stages have planes (w, 2w, 4w, 8w), ResNeXt
            (2w, 4w, 8w, 16w) as in Hara's resnext.py. 64 reproduces the published models;
            smaller values give cheap CPU presets. For densenet it is ``num_init_features``
            and the growth rate is ``width // 2`` (64 -> 32, Hara's densenet121).
        cardinality: groups of the ResNeXt 3x3x3 conv (ignored otherwise).
        shortcut: ``"A"`` (parameter-free zero-padded identity) or ``"B"`` (1x1x1 conv + BN).
            ``None`` picks what Hara's Kinetics checkpoint of that arch/depth uses: ``"A"`` for
            resnet-18/34, ``"B"`` otherwise. Resolved in ``__post_init__``, so the stored
            value is always ``"A"`` or ``"B"`` (note: ``dataclasses.replace(spec, depth=50)``
            therefore keeps the old shortcut; pass ``shortcut=None`` to re-resolve it).
        conv1_t_size: temporal kernel of the stem conv (spatial is always 7x7).
        conv1_t_stride: temporal stride of the stem conv (spatial stride is always 2).
        no_max_pool: drop the stem max-pool (keeps 2x more resolution in T, H and W).
    """

    arch: str = "resnet"
    depth: int = 18
    width: int = 64
    cardinality: int = 32
    shortcut: str | None = None
    conv1_t_size: int = 7
    conv1_t_stride: int = 1
    no_max_pool: bool = False

    def __post_init__(self) -> None:
        if self.arch not in DEPTHS:
            raise ValueError(f"unknown arch {self.arch!r}; expected resnet, resnext or densenet")
        valid = DEPTHS[self.arch]
        if self.depth not in valid:
            raise ValueError(f"{self.arch} depth must be one of {valid}, got {self.depth}")
        if self.width <= 0:
            raise ValueError(f"width must be positive, got {self.width}")
        if self.arch == "resnext" and (2 * self.width) // 32 == 0:
            # Hara's mid_planes = cardinality * (planes // 32) would be 0 channels.
            raise ValueError(f"resnext needs width >= 16, got {self.width}")
        if self.conv1_t_size < 1 or self.conv1_t_stride < 1:
            raise ValueError("conv1_t_size and conv1_t_stride must be >= 1")
        if self.shortcut is None:
            # Frozen dataclass: bypass __setattr__ once to store the resolved default.
            object.__setattr__(self, "shortcut", _default_shortcut(self.arch, self.depth))
        elif self.shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")


def global_avg_pool3d(x: Tensor) -> Tensor:
    """(B, C, T, H, W) -> (B, C, 1, 1, 1): the mean over T, H and W.

    `F.adaptive_avg_pool3d(x, 1)` normally, bit for bit the kernel the models always used;
    under `torch.use_deterministic_algorithms(True)` a plain mean, because the CUDA backward
    of adaptive_avg_pool3d accumulates with atomics, has no deterministic variant, and so
    raises in that mode. Both give the same value up to the order of the float summation.
    """
    if torch.are_deterministic_algorithms_enabled():
        return x.mean((2, 3, 4), keepdim=True)
    return F.adaptive_avg_pool3d(x, 1)


class GlobalAvgPool3d(nn.AdaptiveAvgPool3d):
    """`nn.AdaptiveAvgPool3d(1)` that is deterministic when torch's deterministic mode is on.

    A subclass without parameters: models keep their module tree and state_dict keys.
    """

    def __init__(self) -> None:
        super().__init__(1)

    def forward(self, x: Tensor) -> Tensor:
        return global_avg_pool3d(x)


class HalvingAvgPool3d(nn.AvgPool3d):
    """`nn.AvgPool3d(kernel_size=2, stride=2)` that is deterministic in deterministic mode.

    The CUDA backward of avg_pool3d has no deterministic variant either; with kernel =
    stride the windows do not overlap, so the pool is a reshape and a mean over each 2x2x2
    block (a trailing odd row, column or frame is dropped, as avg_pool3d drops it).
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, t, h, w = x.shape
        t2, h2, w2 = t // 2, h // 2, w // 2
        if not torch.are_deterministic_algorithms_enabled() or 0 in (t2, h2, w2):
            return super().forward(x)  # a too-small input gets avg_pool3d's own error
        blocks = x[:, :, : 2 * t2, : 2 * h2, : 2 * w2].reshape(b, c, t2, 2, h2, 2, w2, 2)
        return blocks.mean((3, 5, 7))


def _conv3x3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_planes, out_planes, 1, stride=stride, bias=False)


class _ZeroPadShortcut(nn.Module):
    """Shortcut "A": subsample the identity and zero-pad the new channels (no parameters)."""

    def __init__(self, out_planes: int, stride: int) -> None:
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        s = self.stride
        # avg_pool3d(kernel=1, stride=s) in Hara's code is exactly strided slicing.
        out = x[:, :, ::s, ::s, ::s] if s > 1 else x
        extra = self.out_planes - out.shape[1]
        # F.pad's last pair pads dim 1 (channels): (W_l, W_r, H_l, H_r, T_l, T_r, C_l, C_r).
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, extra))  # (B, out_planes, T', H', W')


class BasicBlock(nn.Module):
    """Two 3x3x3 convs (ResNet-10/18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1) -> None:
        super().__init__()
        del cardinality  # uniform constructor signature across block types
        self.conv1 = _conv3x3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3x3x3(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3, 1x1x1 expand by 4 (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1) -> None:
        super().__init__()
        del cardinality
        self.conv1 = _conv1x1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3x3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = _conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNeXtBottleneck(Bottleneck):
    """Hara's ResNeXt block: grouped 3x3x3 conv, expansion 2, same attribute names as Bottleneck."""

    expansion = 2

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 32) -> None:
        nn.Module.__init__(self)  # skip Bottleneck.__init__: different widths
        mid = cardinality * (planes // 32)  # = planes for cardinality 32 (Hara's formula)
        self.conv1 = _conv1x1x1(inplanes, mid)
        self.bn1 = nn.BatchNorm3d(mid)
        self.conv2 = _conv3x3x3(mid, mid, stride, groups=cardinality)
        self.bn2 = nn.BatchNorm3d(mid)
        self.conv3 = _conv1x1x1(mid, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample


def _init_weights(model: nn.Module) -> None:
    """Hara's init: kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0; Linear left at default."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def zero_init_bottlenecks(model: nn.Module) -> None:
    """Each bottleneck block's last BN weight to 0 (Goyal et al. 2017): every residual branch
    starts as the identity, which lets a deep net trained from scratch start like a shallow one."""
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)


def _stem_conv(spec: BackboneSpec, out_planes: int) -> nn.Conv3d:
    t = spec.conv1_t_size
    return nn.Conv3d(3, out_planes, kernel_size=(t, 7, 7), stride=(spec.conv1_t_stride, 2, 2),
                     padding=(t // 2, 3, 3), bias=False)


class ResNet3D(nn.Module):
    """3D ResNet / ResNeXt (Hara et al.) with adaptive global pooling.

    ``state_dict`` keys/shapes at ``width=64`` match Hara's pre-2020 Kinetics checkpoints
    (after stripping ``module.``); see the module docstring.
    """

    def __init__(self, spec: BackboneSpec, num_classes: int = 400) -> None:
        super().__init__()
        if spec.arch not in ("resnet", "resnext"):
            raise ValueError(f"ResNet3D builds resnet/resnext, got {spec.arch!r}; use build_backbone")
        self.spec = spec
        w = spec.width
        block: type[BasicBlock | Bottleneck]
        if spec.arch == "resnext":
            block, planes = ResNeXtBottleneck, (2 * w, 4 * w, 8 * w, 16 * w)
        else:
            block = BasicBlock if spec.depth < 50 else Bottleneck
            planes = (w, 2 * w, 4 * w, 8 * w)
        layers = RESNET_LAYERS[spec.depth]

        self.inplanes = w
        self.conv1 = _stem_conv(spec, w)
        self.bn1 = nn.BatchNorm3d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if spec.no_max_pool else nn.MaxPool3d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0], stride=1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = GlobalAvgPool3d()
        self.feature_dim: int = planes[3] * block.expansion
        self.fc = nn.Linear(self.feature_dim, num_classes)
        _init_weights(self)

    def _make_layer(self, block: type[BasicBlock | Bottleneck], planes: int, blocks: int,
                    stride: int) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample: nn.Module | None = None
        if stride != 1 or self.inplanes != out_planes:
            if self.spec.shortcut == "A":
                downsample = _ZeroPadShortcut(out_planes, stride)
            else:
                # Keys layerN.0.downsample.0 (conv) / .1 (BN), as in Hara's nn.Sequential.
                downsample = nn.Sequential(_conv1x1x1(self.inplanes, out_planes, stride),
                                           nn.BatchNorm3d(out_planes))
        card = self.spec.cardinality
        mods = [block(self.inplanes, planes, stride, downsample, cardinality=card)]
        self.inplanes = out_planes
        mods += [block(self.inplanes, planes, cardinality=card) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def feature_map(self, x: Tensor) -> Tensor:
        """Last conv stage before pooling: (B, 3, T, H, W) -> (B, feature_dim, T', H', W')."""
        x = self.relu(self.bn1(self.conv1(x)))  # (B, w, T/ts, H/2, W/2)
        x = self.maxpool(x)  # (B, w, T/2ts, H/4, W/4)
        x = self.layer1(x)
        x = self.layer2(x)  # spatial and temporal /2
        x = self.layer3(x)  # /2
        return self.layer4(x)  # /2 -> (B, feature_dim, ~T/16, ~H/32, ~W/32)

    def features(self, x: Tensor) -> Tensor:
        """Clip embedding: (B, 3, T, H, W) -> (B, feature_dim) after global average pooling."""
        return self.avgpool(self.feature_map(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits: (B, 3, T, H, W) -> (B, num_classes)."""
        return self.fc(self.features(x))

    head_name = "fc"

    def reset_classifier(self, num_classes: int) -> None:
        """New `num_classes`-way classifier; 0 removes it (features only, no parameters)."""
        _reset_classifier(self, num_classes)


class _DenseLayer(nn.Sequential):
    """BN-ReLU-1x1x1 conv (4k) - BN-ReLU-3x3x3 conv (k), output concatenated to the input."""

    def __init__(self, in_features: int, growth_rate: int, bn_size: int) -> None:
        super().__init__(OrderedDict([
            ("norm1", nn.BatchNorm3d(in_features)),
            ("relu1", nn.ReLU(inplace=True)),
            ("conv1", _conv1x1x1(in_features, bn_size * growth_rate)),
            ("norm2", nn.BatchNorm3d(bn_size * growth_rate)),
            ("relu2", nn.ReLU(inplace=True)),
            ("conv2", _conv3x3x3(bn_size * growth_rate, growth_rate)),
        ]))
        # Hara's checkpoints name these "norm.1", "conv.1", ... (dots); accept them on load.
        self._register_load_state_dict_pre_hook(
            lambda state_dict, prefix, *args: rename_dotted_dense_keys(state_dict, prefix))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, super().forward(x)], dim=1)  # (B, C + k, T, H, W)


_DOTTED = re.compile(r"(denselayer\d+\.)(norm|relu|conv)\.(\d)\.")


def rename_dotted_dense_keys(state_dict: dict[str, Any], prefix: str = "") -> None:
    """In place: Hara's PyTorch-0.3 DenseNet names ``...denselayerN.norm.1.weight`` become the
    ``...denselayerN.norm1.weight`` that current PyTorch modules use (keys under `prefix`)."""
    for key in [k for k in state_dict if k.startswith(prefix) and _DOTTED.search(k)]:
        state_dict[_DOTTED.sub(r"\1\2\3.", key)] = state_dict.pop(key)


class DenseNet3D(nn.Module):
    """3D DenseNet-BC (Hara's densenet.py) with the same interface as :class:`ResNet3D`.

    Keys: ``features.*`` and ``classifier.*``. The trunk is registered under the name
    ``features`` (to match the checkpoint) but the *method* ``features`` wins attribute
    lookup, so the trunk is reached through :attr:`trunk`.
    """

    def __init__(self, spec: BackboneSpec, num_classes: int = 400, bn_size: int = 4) -> None:
        super().__init__()
        if spec.arch != "densenet":
            raise ValueError(f"DenseNet3D builds densenet, got {spec.arch!r}")
        self.spec = spec
        growth = max(spec.width // 2, 1)
        trunk = nn.Sequential(OrderedDict([
            ("conv0", _stem_conv(spec, spec.width)),
            ("norm0", nn.BatchNorm3d(spec.width)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.Identity() if spec.no_max_pool else nn.MaxPool3d(3, stride=2, padding=1)),
        ]))
        n = spec.width
        blocks = DENSENET_BLOCKS[spec.depth]
        for i, n_layers in enumerate(blocks, start=1):
            block = nn.Sequential(OrderedDict(
                (f"denselayer{j + 1}", _DenseLayer(n + j * growth, growth, bn_size)) for j in range(n_layers)
            ))
            trunk.add_module(f"denseblock{i}", block)
            n += n_layers * growth
            if i != len(blocks):
                trunk.add_module(f"transition{i}", nn.Sequential(OrderedDict([
                    ("norm", nn.BatchNorm3d(n)),
                    ("relu", nn.ReLU(inplace=True)),
                    ("conv", _conv1x1x1(n, n // 2)),
                    ("pool", HalvingAvgPool3d()),
                ])))
                n //= 2
        trunk.add_module("norm5", nn.BatchNorm3d(n))
        # add_module() refuses a name that is already a class attribute (our method), so
        # register directly; keys still come out as features.*.
        self._modules["features"] = trunk
        self.feature_dim: int = n
        self.classifier = nn.Linear(n, num_classes)
        _init_weights(self)

    @property
    def trunk(self) -> nn.Sequential:
        """The convolutional trunk (registered as ``features`` for checkpoint compatibility)."""
        return self._modules["features"]  # type: ignore[return-value]

    def feature_map(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) -> (B, feature_dim, T', H', W'), after the final BN + ReLU."""
        return F.relu(self.trunk(x))

    def features(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """Clip embedding: (B, 3, T, H, W) -> (B, feature_dim)."""
        return global_avg_pool3d(self.feature_map(x)).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits: (B, 3, T, H, W) -> (B, num_classes)."""
        return self.classifier(self.features(x))

    head_name = "classifier"

    def reset_classifier(self, num_classes: int) -> None:
        """New `num_classes`-way classifier; 0 removes it (features only, no parameters)."""
        _reset_classifier(self, num_classes)


def _reset_classifier(model: ResNet3D | DenseNet3D, num_classes: int) -> None:
    # One head interface (timm's reset_classifier): callers never hard-code fc vs classifier.
    head: nn.Module = nn.Linear(model.feature_dim, num_classes) if num_classes > 0 else nn.Identity()
    setattr(model, model.head_name, head)


def build_backbone(spec: BackboneSpec, num_classes: int) -> ResNet3D | DenseNet3D:
    """Build the backbone described by ``spec`` with a ``num_classes``-way linear head."""
    if spec.arch == "densenet":
        return DenseNet3D(spec, num_classes)
    return ResNet3D(spec, num_classes)
