"""Atomic checkpoints that load with `weights_only=True`."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from asnet.disk import writing
from asnet.faults import fault_point

log = logging.getLogger(__name__)

# save_atomic's temp names: mkstemp's "<name>." + 8 random characters + ".tmp".
TEMP_NAME = re.compile(r"^.+\.[a-z0-9_]{8}\.tmp$")


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

    A kill at any moment leaves either the previous complete file or the new one (a kill -9
    may leave the temp file: `remove_temp_files` clears it when the run starts again). A
    full or failing disk raises `asnet.disk.DiskFullError` naming `path`, and the temp file
    is removed.
    """
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(obj, fh)
                fh.flush()
                fault_point("checkpoint.write")  # the file is written but not yet in place
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


def remove_temp_files(*folders: Path) -> list[Path]:
    """Delete the temp files a killed `save_atomic` left directly in `folders` (its name
    pattern only); returns them. Call it only while no other process can be saving there
    (under the run's lock, asnet.train.lock)."""
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if TEMP_NAME.match(f.name) and f.is_file():
                f.unlink(missing_ok=True)
                removed.append(f)
    if removed:
        log.warning("removed %d temporary file(s) of an interrupted save: %s", len(removed),
                    ", ".join(str(f) for f in removed))
    return removed


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
