"""Atomic checkpoints that load with `weights_only=True`."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch


def git_sha() -> str:
    """The repository's HEAD commit, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
            cwd=Path(__file__).resolve().parents[2],
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """torch.save to a temp file in the same directory, fsync, then os.replace.

    A kill at any moment leaves either the previous complete file or the new one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class CheckpointError(ValueError):
    """A file that should be a checkpoint does not load with weights_only=True."""


def load_error_detail(exc: BaseException) -> str:
    """What went wrong loading a checkpoint, in one line, without torch's advice to load unsafely.

    torch's UnpicklingError text recommends retrying with weights_only=False (arbitrary code
    execution for an untrusted file); only its WeightsUnpickler diagnosis is kept.
    """
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split(". Please use", 1)[0]
    elif "weights_only" in text:
        text = ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (tensors and plain containers only).

    A file that is not such a checkpoint (truncated, another format, pickled objects) raises
    CheckpointError naming it; a missing one FileNotFoundError.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch.load raises KeyError, EOFError, RuntimeError, ... on bad files
        raise CheckpointError(
            f"{path}: not a checkpoint that loads safely with weights_only=True ({load_error_detail(exc)}); "
            "delete it and run the stage that writes it again"
        ) from None
