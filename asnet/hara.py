"""Hara et al.'s published checkpoints: which file is which, its layout and its input normalisation.

kenshohara/3D-ResNets-PyTorch published two releases whose files differ in more than their names:

* **hara2018** (CVPR 2018 branch; the weights ASNet's paper fine-tunes): ``resnet-18-kinetics.pth``,
  ``resnext-101-kinetics.pth``, ``resnext-101-64f-kinetics.pth``, ``densenet-121-kinetics.pth``, ...
  and the split-1 fine-tuned ``resnext-101[-64f]-kinetics-{ucf101,hmdb51}_split1.pth``. Saved from
  ``nn.DataParallel`` (``module.`` keys) as ``{"epoch", "arch", "state_dict", "optimizer"}``. Shortcut
  "A" for ResNet-18/34, "B" otherwise; 400 Kinetics classes. Trained on **[0, 255] inputs minus the
  ActivityNet mean, std 1** (that branch's ``opts.py``: ``norm_value=1``, ``mean_dataset=activitynet``,
  ``std_norm=False``; ``utils.get_mean``).
* **hara2020** (the rewrite): ``r3d{18,34,50,101,152,200}_{K,KM,...}_200ep.pth``. No ``module.``
  prefix, ``{"epoch", "arch", "state_dict", "optimizer", "scheduler"}``, shortcut "B" at every depth,
  700 (K), 1039 (KM), ... classes, and **[0, 1] inputs with the Kinetics mean/std** (its ``opts.py``:
  ``value_scale=1``, ``mean_dataset=kinetics``). No ResNeXt or DenseNet weights.

This module reads no file and imports no torch: the configuration is checked against it before
any job starts; ``asnet.models.pretrained`` checks the file's contents when it loads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RELEASES = ("hara2018", "hara2020")


@dataclass(frozen=True)
class Normalisation:
    """x = (pixel / 255 * value_scale - mean) / std, per RGB channel."""

    name: str
    value_scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value_scale": self.value_scale, "mean": list(self.mean), "std": list(self.std)}


# The release's own normalisation, as its training code applied it (module docstring).
ACTIVITYNET_2018 = Normalisation("hara2018_activitynet", 255.0, (114.7748, 107.7354, 99.4750), (1.0, 1.0, 1.0))
KINETICS_2020 = Normalisation("hara2020_kinetics", 1.0, (0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737))
RELEASE_NORMALISATION = {"hara2018": ACTIVITYNET_2018, "hara2020": KINETICS_2020}


@dataclass(frozen=True)
class PublishedCheckpoint:
    """One published file: what builds it and what it was trained on."""

    name: str
    release: str
    arch: str
    depth: int
    shortcut: str | None  # None for DenseNet (no shortcuts)
    num_classes: int
    clip_len: int
    dataset: str = "kinetics"  # "ucf101"/"hmdb51" for the fine-tuned split-1 files


def _hara2018_table() -> dict[str, PublishedCheckpoint]:
    out = {}
    # The old README's per-file options (--resnet_shortcut A for 18/34, B from 50 on).
    for depth in (18, 34, 50, 101, 152, 200):
        shortcut = "A" if depth < 50 else "B"
        out[f"resnet-{depth}-kinetics.pth"] = PublishedCheckpoint(
            f"resnet-{depth}-kinetics.pth", "hara2018", "resnet", depth, shortcut, 400, 16)
    out["resnet-34-kinetics-cpu.pth"] = PublishedCheckpoint("resnet-34-kinetics-cpu.pth", "hara2018", "resnet", 34, "A", 400, 16)
    for clip, tag in ((16, ""), (64, "-64f")):
        name = f"resnext-101{tag}-kinetics.pth"
        out[name] = PublishedCheckpoint(name, "hara2018", "resnext", 101, "B", 400, clip)
        for dataset, classes in (("ucf101", 101), ("hmdb51", 51)):
            name = f"resnext-101{tag}-kinetics-{dataset}_split1.pth"
            out[name] = PublishedCheckpoint(name, "hara2018", "resnext", 101, "B", classes, clip, dataset)
    for depth in (121, 201):
        name = f"densenet-{depth}-kinetics.pth"
        out[name] = PublishedCheckpoint(name, "hara2018", "densenet", depth, None, 400, 16)
    return out


HARA2018 = _hara2018_table()
# Published but built by architectures this project does not have.
UNSUPPORTED = {
    "preresnet-200-kinetics.pth": "pre-activation ResNet",
    "wideresnet-50-kinetics.pth": "wide ResNet",
}
# 2020 release: pretraining datasets -> classes (its README's --n_pretrain_classes).
HARA2020_CLASSES = {"K": 700, "KM": 1039, "KMS": 1139, "KS": 800, "M": 339, "MS": 439, "S": 100}
HARA2020_FILES = {18: ("K", "KM"), 34: ("K", "KM"), 50: tuple(HARA2020_CLASSES), 101: ("K", "KM"),
                  152: ("K", "KM"), 200: ("K", "KM")}
_R3D = re.compile(r"^r3d(\d+)_([A-Z]+)_200ep\.pth$")
_R2P1D = re.compile(r"^r2p1d\d+_[A-Z]+_200ep\.pth$")


def identify(name: str) -> PublishedCheckpoint | None:
    """The published checkpoint called `name` (a file name), None for any other name.

    Raises ValueError for published files of architectures this project cannot build.
    """
    if name in HARA2018:
        return HARA2018[name]
    if name in UNSUPPORTED or _R2P1D.match(name):
        what = UNSUPPORTED.get(name, "R(2+1)D")
        raise ValueError(f"{name} is Hara et al.'s {what}, which this project does not build; "
                         "use a resnet/resnext/densenet checkpoint")
    m = _R3D.match(name)
    if m:
        depth, data = int(m.group(1)), m.group(2)
        if data in HARA2020_FILES.get(depth, ()):
            return PublishedCheckpoint(name, "hara2020", "resnet", depth, "B", HARA2020_CLASSES[data], 16)
    return None


def published_name(arch: str, depth: int, clip_len: int, release: str = "hara2018") -> str:
    """The Kinetics file of a backbone in a release, e.g. ``resnext-101-64f-kinetics.pth`` for
    64-frame clips or ``r3d50_K_200ep.pth`` (hara2020)."""
    if release == "hara2020":
        if arch != "resnet" or depth not in HARA2020_FILES:
            raise ValueError(f"model: the 2020 release has no {arch}-{depth} weights (it has r3d "
                             f"{sorted(HARA2020_FILES)}); use model.pretrained_release: hara2018")
        return f"r3d{depth}_K_200ep.pth"
    kinetics = [c for c in HARA2018.values() if c.dataset == "kinetics" and (c.arch, c.depth) == (arch, depth)
                and not c.name.endswith("-cpu.pth")]
    if not kinetics:
        known = ", ".join(sorted({f"{c.arch}-{c.depth}" for c in HARA2018.values()}))
        raise ValueError(f"model: no published Kinetics checkpoint for {arch}-{depth} (published: {known}); "
                         "set model.pretrained_dir: null to train from scratch")
    long = [c for c in kinetics if c.clip_len == 64]
    return (long[0] if clip_len >= 64 and long else min(kinetics, key=lambda c: c.clip_len)).name


def pretrained_file(model: dict[str, Any], clip_len: int) -> Path | None:
    """The file a run starts from: `model.pretrained`, else the published file for the backbone in
    `model.pretrained_dir`, else None (from scratch). `model` is the config's model section."""
    if model.get("pretrained"):
        return Path(model["pretrained"])
    if model.get("pretrained_dir"):
        release = model.get("pretrained_release", "auto")
        name = published_name(model["arch"], model["depth"], clip_len, "hara2020" if release == "hara2020" else "hara2018")
        return Path(model["pretrained_dir"]) / name
    return None


def release_of(model: dict[str, Any]) -> str | None:
    """The release whose file the run starts from: hara2018, hara2020, or None (from scratch, our own
    model.pt, or a file whose name is not a published one with pretrained_release: auto)."""
    key = model.get("pretrained_release", "auto")
    if model.get("pretrained"):
        if key in RELEASES:
            return key
        published = identify(Path(model["pretrained"]).name)
        return published.release if published else None
    if model.get("pretrained_dir"):
        return "hara2020" if key == "hara2020" else "hara2018"  # pretrained_dir holds published names
    return None


def check_model(model: dict[str, Any], clip_len: int) -> list[str]:
    """Contradictions between the model section and the file it starts from (empty if none)."""
    try:
        path = pretrained_file(model, clip_len)
        published = identify(path.name) if path else None
    except ValueError as exc:
        return [str(exc)]
    if published is None:
        return []
    problems = []
    key = model.get("pretrained_release", "auto")
    where = f"model.pretrained {path}"
    if key != "auto" and key != published.release:
        problems.append(f"{where} is a {published.release} file but model.pretrained_release is {key}; "
                        f"set it to auto or {published.release}")
    if (model["arch"], model["depth"]) != (published.arch, published.depth):
        problems.append(f"{where} holds a {published.arch}-{published.depth} but the model is "
                        f"{model['arch']}-{model['depth']}; set model.arch/model.depth to match")
    if model.get("width", 64) != 64:
        problems.append(f"{where} holds width-64 weights but model.width is {model['width']}; set model.width: 64")
    shortcut = model.get("shortcut")
    if shortcut is not None and published.shortcut is not None and shortcut != published.shortcut:
        problems.append(f"{where} uses shortcut {published.shortcut} but model.shortcut is {shortcut}; "
                        "set model.shortcut: null (the file's)")
    return problems


def shortcut_of(model: dict[str, Any]) -> str | None:
    """The ResNet shortcut to build: `model.shortcut`, else the release's ("B" for hara2020), else
    None (the 2018 release's per-depth default, also used from scratch)."""
    if model.get("shortcut"):
        return model["shortcut"]
    return "B" if release_of(model) == "hara2020" else None


def normalisation_of(model: dict[str, Any], inp: dict[str, Any]) -> Normalisation:
    """The input normalisation of a run: the release's when it starts from a published file
    (`input.normalization: auto`), else `input.mean`/`input.std` on [0, 1] inputs."""
    if inp.get("normalization", "auto") == "auto":
        release = release_of(model)
        if release in RELEASE_NORMALISATION:
            return RELEASE_NORMALISATION[release]
    return Normalisation("input", 1.0, tuple(inp["mean"]), tuple(inp["std"]))  # type: ignore[arg-type]
