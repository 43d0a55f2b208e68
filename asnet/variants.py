"""The model variants the pipeline trains, as data.

`context` is the first stream's input: "conventional" (multi-scale corner crop + flip in
training, centre crop at test) or a fixed box policy for the learnability probes.
`saliency` is the second stream's input (None for single-stream models): "spa" or one of
the fixed boxes of asnet.train.inputs.fixed_saliency_boxes. `overrides` are config
changes the variant makes (Table 3's fusions, Table 4's actions and steps), applied on top
of the run's configuration and stored with its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asnet.config import Config


@dataclass(frozen=True)
class Variant:
    name: str
    streams: int
    context: str = "conventional"  # conventional | full | center | oracle
    saliency: str | None = None  # spa | center | random | corner | multiscale | full | tl | tr | bl | br
    overrides: tuple[tuple[str, Any], ...] = ()
    label: str = ""
    # The variant this one trains when its overrides leave the configuration unchanged (Table
    # 2's ResNeXt-101 row under the paper preset is the `single`/`asnet` run): never train twice.
    base: str | None = None
    # Table 2's backbone key (TABLE2_BACKBONES) of the row: its runs fine-tune that backbone's
    # own pretraining run on the source set (asnet.stages.pretrained_backbones).
    backbone: str | None = None


def _asnet(name: str, label: str, **overrides: Any) -> Variant:
    # base="asnet": a row equal to the configured ASNet (Table 4's 3 actions, T=10) reuses its run
    return Variant(name, 2, saliency="spa", label=label, overrides=tuple(overrides.items()), base="asnet")


_BASE = (
    Variant("single", 1, label="Single stream"),
    Variant("siamese_center", 2, saliency="center", label="Siamese, centre crop"),
    Variant("asnet", 2, saliency="spa", label="ASNet (SPA)"),
    # Learnability probes of the synthetic set (single stream, same box in training and test).
    Variant("probe_full", 1, context="full", label="Full frame"),
    Variant("probe_center", 1, context="center", label="Centre crop"),
    Variant("probe_oracle", 1, context="oracle", label="Oracle crop (ground truth)"),
)
# Table 1: what the saliency stream is fed instead of SPA's patch. Names are the rows of
# workflow/paper/paper_numbers.csv.
_TABLE1 = tuple(
    Variant(f"siamese_{name}", 2, saliency=kind, label=label)
    for name, kind, label in (
        ("random", "random", "Random crop"),
        ("corner", "corner", "Corner crop"),
        ("multiscale", "multiscale", "Multi-scale crop"),
        ("full_resize", "full", "Full-frame resize"),
        ("top_left", "tl", "Top-left corner"),
        ("top_right", "tr", "Top-right corner"),
        ("bottom_left", "bl", "Bottom-left corner"),
        ("bottom_right", "br", "Bottom-right corner"),
    )
)
# Table 3: fusion of the two streams (concatenation is `asnet`).
_TABLE3 = tuple(
    _asnet(f"asnet_fusion_{f}", f"ASNet, {f} fusion", **{"model.fusion": f})
    for f in ("individual", "sum", "conv", "multiply")
)
# Table 4: number of SPA actions x SPA training steps T.
_TABLE4 = tuple(
    _asnet(f"asnet_{a}actions_steps{t}", f"ASNet, {a} actions, T={t}", **{"spa.actions": a, "spa.train_steps": t})
    for a in (2, 3, 4)
    for t in (2, 5, 10, 15)
)

# Table 2: the backbone sweep, each backbone x {single, Siamese-centre, ASNet}. Widths come
# from the preset (64 = the published models). Hara's DenseNet halves time four times, so
# it needs clips of >= 16 frames: its row sets 16 (the paper's clip length anyway).
TABLE2_BACKBONES: dict[str, tuple[str, str, dict[str, Any]]] = {
    # key: (label, paper column, config overrides)
    "resnet18": ("ResNet-18", "top1_split1_resnet18_16f", {"model.arch": "resnet", "model.depth": 18}),
    "resnet50": ("ResNet-50", "top1_split1_resnet50_16f", {"model.arch": "resnet", "model.depth": 50}),
    "resnet101": ("ResNet-101", "top1_split1_resnet101_16f", {"model.arch": "resnet", "model.depth": 101}),
    "densenet121": ("DenseNet-121", "top1_split1_densenet121_16f",
                    {"model.arch": "densenet", "model.depth": 121, "input.clip_len": 16}),
    "resnext101": ("ResNeXt-101", "top1_split1_resnext101_16f", {"model.arch": "resnext", "model.depth": 101}),
    "resnext101_64f": ("ResNeXt-101 (64f)", "top1_split1_resnext101_64f",
                       {"model.arch": "resnext", "model.depth": 101, "input.clip_len": 64}),
}
_TABLE2 = tuple(
    Variant(f"{key}_{b.name}", b.streams, b.context, b.saliency, tuple(ov.items()), f"{label}, {b.label}", base=b.name,
            backbone=key)
    for key, (label, _, ov) in TABLE2_BACKBONES.items()
    for b in _BASE[:3]
)

# Not in the paper: ASNet with SPA's cheaper rollouts (half-size crops of every 2nd frame for
# its states and rewards; about 8x fewer FLOPs per rollout forward), for results/spa_cost.
SPA_COST_VARIANTS = ("single", "asnet", "asnet_fast_spa")
_SPA_COST = (_asnet("asnet_fast_spa", "ASNet, SPA on 1/2-size crops of every 2nd frame",
                    **{"spa.state_scale": 0.5, "spa.state_stride": 2}),)

# Not in the paper: SPA's localisation against its bounds (results/localisation, synthetic data
# only). The oracle-reward SPA learns from the change of IoU with the actor instead of the
# classifier's loss: the ceiling of the paper's policy and state. The box-aware SPA's state adds
# a coarse spatial map and the current box (spa.state=spatial): what the paper's state costs.
LOCALISATION_VARIANTS = ("asnet", "asnet_oracle_spa", "asnet_spatial_spa")
_LOCALISATION = (
    _asnet("asnet_oracle_spa", "ASNet, SPA with the oracle IoU reward", **{"spa.reward": "oracle_iou"}),
    _asnet("asnet_spatial_spa", "ASNet, box-aware SPA state (beyond the paper)", **{"spa.state": "spatial"}),
)

VARIANTS: dict[str, Variant] = {
    v.name: v for v in _BASE + _TABLE1 + _TABLE2 + _TABLE3 + _TABLE4 + _SPA_COST + _LOCALISATION
}
LABELS = {v.name: v.label for v in VARIANTS.values()}

# The paper's experiment tables: rows (variant names) and, for the paper's value of a row,
# (paper table, paper row, paper column).
EXPERIMENTS: dict[str, list[tuple[str, str, str]]] = {
    "table1": [("single", "single", "top1_split1"), ("siamese_center", "siamese_center", "top1_split1"),
               ("asnet", "asnet", "top1_split1")]
    + [(v.name, v.name, "top1_split1") for v in _TABLE1],
    "table2": [(f"{key}_{base}", base, col) for key, (_, col, _) in TABLE2_BACKBONES.items()
               for base in ("single", "siamese_center", "asnet")],
    "table3": [("single", "single", "top1_split1"), ("asnet", "asnet", "top1_split1")]
    + [(v.name, v.name, "top1_split1") for v in _TABLE3],
    "table4": [(v.name, v.name.split("_steps")[0], "top1_split1_steps" + v.name.split("_steps")[1]) for v in _TABLE4],
}


def get_variant(name: str) -> Variant:
    """Look a variant up by name, with an error listing the known ones."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; choose one of: {', '.join(VARIANTS)}") from None


def run_variant(cfg: Config, variant: str) -> str:
    """The run a variant's results come from: its `base` variant when the variant's config
    changes are no-ops under `cfg` (e.g. Table 2's ResNeXt-101 rows under the paper preset)."""
    from asnet.config import with_overrides

    v = get_variant(variant)
    if v.base and with_overrides(cfg, v.overrides) == cfg:
        return v.base
    return variant
