"""Loading backbone weights from a checkpoint: Hara et al.'s published files (both releases,
asnet.hara) or our own `model.pt`. A file that does not fit the configured backbone is an error."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from asnet import hara
from asnet.config import Config, ConfigError, from_dict
from asnet.models.asnet import ASNet
from asnet.models.resnet3d import BackboneSpec, DenseNet3D, ResNet3D, build_backbone, rename_dotted_dense_keys
from asnet.train.checkpoint import load_error_detail

log = logging.getLogger(__name__)


class PretrainedMismatch(ValueError):
    """A checkpoint whose tensors do not fit the configured backbone (or its release)."""


@dataclass
class LoadReport:
    """What a pretrained load did: recorded in model.pt, metrics.json and the train log."""

    path: str
    sha256: str
    release: str  # hara2018 | hara2020 | asnet
    tensors_loaded: int
    normalisation: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pretrained_path(cfg: Config) -> Path | None:
    """The checkpoint a run starts from: `model.pretrained` if set, else the published file for
    the configured backbone in `model.pretrained_dir`, else None (from scratch)."""
    return hara.pretrained_file(asdict(cfg.model), cfg.input.clip_len)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_checkpoint(path: Path) -> dict[str, Any]:
    """torch.load with weights_only=True; a file that is not a checkpoint is a named error."""
    if not path.exists():
        raise FileNotFoundError(
            f"model.pretrained: {path} does not exist; download Hara et al.'s checkpoints "
            "(docs/real-data.md, Pretrained weights) or set model.pretrained / model.pretrained_dir to null"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # KeyError, EOFError, UnpicklingError, RuntimeError, ... on bad files
        # torch's own message suggests weights_only=False, which would run whatever code the
        # file holds: load_error_detail never passes it on.
        raise PretrainedMismatch(
            f"{path}: not a PyTorch checkpoint of tensors ({load_error_detail(exc)}); check that the download is "
            "complete and that it is the published .pth file"
        ) from None
    if not isinstance(obj, dict):
        raise PretrainedMismatch(f"{path}: expected a dict checkpoint, found {type(obj).__name__}")
    return obj


def _strip(state: dict[str, Any], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            for p in prefixes:
                key = key.removeprefix(p)
            out[key] = value
    return out


def split_checkpoint(obj: dict[str, Any], path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """("hara"|"asnet", the backbone-or-whole-model tensors keyed as in our backbones)."""
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        # Hara: {"epoch", "arch", "state_dict", "optimizer"[, "scheduler"]}; 2018 keys carry
        # nn.DataParallel's "module." prefix, 2020 keys do not.
        state = _strip(obj["state_dict"], ("module.",))
        rename_dotted_dense_keys(state)
        return "hara", state
    if "model" in obj and isinstance(obj["model"], dict) and "config" in obj:
        state = {k.removeprefix("backbone."): v for k, v in _strip(obj["model"], ("module.",)).items()
                 if k.startswith("backbone.")}
        return "asnet", state
    raise PretrainedMismatch(
        f"{path}: neither Hara et al.'s layout ({{'state_dict': ...}}) nor our model.pt "
        f"({{'model', 'config', ...}}); top-level keys: {sorted(obj)[:8]}"
    )


def _names(keys: list[str], limit: int = 12) -> str:
    return ", ".join(keys[:limit]) + (f" ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_pretrained(model: ASNet, path: str | Path, cfg: Config) -> LoadReport:
    """Load backbone weights into `model` (its classifier is replaced for the target classes).

    The file's layout and release (asnet.hara) must match the configured backbone: a tensor of
    another shape is always an error; a missing or unexpected backbone tensor is an error naming
    the keys unless `model.pretrained_strict: false` (then a warning). Our own model.pt must have
    been trained with the same input normalisation.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    kind, state = split_checkpoint(obj, path)
    norm = cfg.normalisation()
    backbone = model.backbone
    head = backbone.head_name
    if kind == "hara":
        published = hara.identify(path.name)
        release = cfg.model.pretrained_release if cfg.model.pretrained_release != "auto" else (
            published.release if published else None)
        if release is None:
            raise PretrainedMismatch(
                f"{path}: not one of Hara et al.'s published names, so its release (layout and input "
                "normalisation) is unknown; rename it to its published name or set "
                "model.pretrained_release: hara2018 | hara2020"
            )
        classifier = state.get(f"{head}.weight")
        if published is not None and classifier is not None and classifier.shape[0] != published.num_classes:
            raise PretrainedMismatch(
                f"{path}: its classifier has {classifier.shape[0]} classes, but the published {path.name} has "
                f"{published.num_classes}: the file is not what its name says"
            )
    else:
        release = "asnet"
        saved = from_dict(obj["config"]).normalisation()
        if (saved.value_scale, saved.mean, saved.std) != (norm.value_scale, norm.mean, norm.std):
            raise PretrainedMismatch(
                f"{path} was trained on inputs normalised as {saved.to_dict()}, this run uses {norm.to_dict()}; "
                "set input.mean/input.std (and input.normalization) to the checkpoint's"
            )
    state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    own = {k: v for k, v in backbone.state_dict().items() if not k.startswith(f"{head}.")}
    bad = [f"{k}: {tuple(v.shape)} in the file vs {tuple(own[k].shape)} here" for k, v in state.items()
           if k in own and v.shape != own[k].shape]
    if bad:
        raise PretrainedMismatch(f"{path}: tensors of another shape than the configured backbone "
                                 f"({cfg.model.arch}-{cfg.model.depth}, width {cfg.model.width}): " + "; ".join(bad[:5]))
    result = backbone.load_state_dict(state, strict=False)
    # Hara's 2018 files predate BatchNorm's num_batches_tracked counter: not a missing weight.
    missing = [k for k in result.missing_keys if not k.startswith(f"{head}.") and not k.endswith("num_batches_tracked")]
    unexpected = list(result.unexpected_keys)
    report = LoadReport(str(path), sha256(path), release, sum(1 for k in state if k in own), norm.to_dict(),
                        missing, unexpected)
    if missing or unexpected:
        what = (f"{path} does not fit the configured backbone {cfg.model.arch}-{cfg.model.depth} "
                f"(shortcut {cfg.shortcut() or 'default'}): {len(missing)} tensors missing from the file "
                f"[{_names(missing)}], {len(unexpected)} unexpected [{_names(unexpected)}]")
        hint = ("check model.arch/model.depth/model.shortcut against the file (docs/real-data.md, Pretrained weights)"
                if state else "the file holds no backbone tensor")
        if cfg.model.pretrained_strict:
            raise PretrainedMismatch(f"{what}; {hint}, or set model.pretrained_strict: false to load it anyway")
        log.warning("%s; loading anyway (model.pretrained_strict: false)", what)
    log.info("pretrained %s: %d backbone tensors loaded (%s release, sha256 %s, normalisation %s)",
             path, report.tensors_loaded, release, report.sha256[:16], norm.name)
    return report


def load_published_classifier(path: str | Path) -> tuple[ResNet3D | DenseNet3D, hara.PublishedCheckpoint, str]:
    """One of Hara et al.'s published files as a whole classifier (their own classifier included),
    strictly loaded: (model in eval mode, what the file is, its sha256). For the anchor check."""
    path = Path(path)
    published = hara.identify(path.name)
    if published is None:
        raise ConfigError(f"{path}: not one of Hara et al.'s published file names (asnet/hara.py lists them)")
    kind, state = split_checkpoint(read_checkpoint(path), path)
    if kind != "hara":
        raise PretrainedMismatch(f"{path}: expected Hara et al.'s layout, found our model.pt")
    spec = BackboneSpec(arch=published.arch, depth=published.depth, width=64, cardinality=32,
                        shortcut=published.shortcut)
    net = build_backbone(spec, published.num_classes)
    own = net.state_dict()
    bad = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    result = net.load_state_dict({k: v for k, v in state.items() if k not in bad}, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if bad or missing or result.unexpected_keys:
        raise PretrainedMismatch(
            f"{path} does not fit {published.arch}-{published.depth} with {published.num_classes} classes: "
            f"shapes differ [{_names(bad)}], missing [{_names(missing)}], unexpected [{_names(list(result.unexpected_keys))}]"
        )
    return net.eval(), published, sha256(path)
