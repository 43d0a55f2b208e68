"""Loading backbone weights from a checkpoint (Hara et al.'s Kinetics files or our own runs)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asnet.config import Config
from asnet.models.asnet import ASNet

log = logging.getLogger(__name__)

# Kinetics-400 checkpoints published with Hara et al. (CVPR 2018, kenshohara/3D-ResNets-PyTorch)
# that our architectures load: (arch, depth) -> the clip lengths they were trained on.
HARA_KINETICS = {
    ("resnet", 18): (16,), ("resnet", 34): (16,), ("resnet", 50): (16,), ("resnet", 101): (16,),
    ("resnet", 152): (16,), ("resnet", 200): (16,), ("resnext", 101): (16, 64),
    ("densenet", 121): (16,), ("densenet", 201): (16,),
}


def hara_checkpoint_name(arch: str, depth: int, clip_len: int) -> str:
    """Published file name of the Kinetics checkpoint for a backbone, e.g.
    ``resnext-101-kinetics.pth`` or, for 64-frame clips, ``resnext-101-64f-kinetics.pth``."""
    if (arch, depth) not in HARA_KINETICS:
        known = ", ".join(f"{a}-{d}" for a, d in HARA_KINETICS)
        raise ValueError(
            f"model: no published Kinetics checkpoint for {arch}-{depth} (published: {known}); "
            "set model.pretrained_dir: null to train from scratch"
        )
    long_clip = clip_len >= 64 and 64 in HARA_KINETICS[(arch, depth)]
    return f"{arch}-{depth}{'-64f' if long_clip else ''}-kinetics.pth"


def pretrained_path(cfg: Config) -> Path | None:
    """The checkpoint a run starts from: `model.pretrained` if set, else the published file for
    the configured backbone in `model.pretrained_dir`, else None (from scratch)."""
    m = cfg.model
    if m.pretrained:
        return Path(m.pretrained)
    if m.pretrained_dir:
        return Path(m.pretrained_dir) / hara_checkpoint_name(m.arch, m.depth, cfg.input.clip_len)
    return None


def _backbone_state(obj: dict) -> dict[str, torch.Tensor]:
    """The backbone's tensors from any supported layout, keyed as in ResNet3D."""
    if "state_dict" in obj:  # Hara et al.: {"arch", "state_dict" (DataParallel: "module." keys), ...}
        obj = obj["state_dict"]
    elif "model" in obj and isinstance(obj["model"], dict):  # our model.pt / state/last.pt
        obj = obj["model"]
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if key.startswith("head."):
            continue  # our classifier: replaced for the target classes
        out[key.removeprefix("backbone.")] = value
    return out


def load_pretrained(model: ASNet, path: str | Path) -> dict[str, list[str]]:
    """Load backbone weights into `model`, replacing the classifier for the target classes.

    Accepts Hara et al.'s checkpoints (`module.`-prefixed state_dict) and our own
    `model.pt`. Loaded with weights_only=True. Returns and logs the missing and unexpected
    keys; a key present in both with a different shape is an error naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"model.pretrained: {path} does not exist; download Hara et al.'s Kinetics checkpoints "
            "(README, Pretrained weights) or set model.pretrained / model.pretrained_dir to null"
        )
    state = _backbone_state(torch.load(path, map_location="cpu", weights_only=True))
    own = model.backbone.state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    bad = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and v.shape != own[k].shape]
    if bad:
        raise ValueError(f"{path}: shapes do not match the configured backbone: " + "; ".join(bad[:5]))
    result = model.backbone.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    report = {"missing": missing, "unexpected": list(result.unexpected_keys)}
    log.info("loaded %d backbone tensors from %s; missing %d %s, unexpected %d %s", len(state), path,
             len(missing), missing[:5], len(report["unexpected"]), report["unexpected"][:5])
    return report
