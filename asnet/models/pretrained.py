"""Loading backbone weights from a checkpoint (Hara et al.'s Kinetics files or our own runs)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asnet.models.asnet import ASNet

log = logging.getLogger(__name__)


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
        raise FileNotFoundError(f"model.pretrained: {path} does not exist")
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
