"""A full or failing disk as one error: `DiskFullError` names the path, the free space and the fix.

Writes that can meet a full disk (frame files, checkpoints, reports) run under `writing(path)`,
which turns ENOSPC, EDQUOT and EIO into `DiskFullError`; `asnet` prints it as one line (exit 2)
and a Snakemake job ends its log with that line. Nothing counts such a failure as a bad video.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# A write error of the disk, not of the data being written.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


class DiskFullError(OSError):
    """Writing under `path` failed because the disk is full, over quota, read-only or failing."""

    def __init__(self, path: Path | str, cause: OSError, under: bool = False) -> None:
        self.path = Path(path)
        self.cause = cause
        super().__init__(cause.errno, disk_message(self.path, cause, under))

    def __str__(self) -> str:
        return self.strerror or ""


def free_bytes(path: Path | str) -> int | None:
    """Free bytes on the file system holding `path` (its nearest existing parent); None if unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def disk_message(path: Path, cause: OSError, under: bool = False) -> str:
    """The one-line message of a disk failure while writing `path` (a file under the folder
    `path` when `under`: the write did not say which file)."""
    what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the file system is read-only", errno.EIO: "the disk reports an I/O error"}
    reason = what.get(cause.errno or 0, os.strerror(cause.errno or 0) or str(cause))
    where = f"a file under {path}" if under else str(path)
    return (f"cannot write {where}: {reason} ({_size(free_bytes(path))} free there); free space (or move "
            "data/ and results/ to a larger disk) and run the same command again: finished work is kept, "
            "nothing written in part is trusted")


def is_disk_error(exc: BaseException) -> bool:
    """An OSError of the disk (full, quota, read-only, I/O), not of the file's contents."""
    return isinstance(exc, OSError) and not isinstance(exc, DiskFullError) and exc.errno in DISK_ERRNOS


def as_disk_full(exc: OSError, path: Path | str | None = None) -> DiskFullError:
    """`exc` (a disk error, `is_disk_error`) as DiskFullError of `path`, else of the file the
    OSError names, else of the current folder (a write that did not say where)."""
    if path or exc.filename:
        return DiskFullError(path or exc.filename, exc)
    return DiskFullError(Path.cwd(), exc, under=True)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Write `text` to `path` through a temp file beside it and a rename: a reader (a parallel
    job, a planner) sees the old file or the new one, never half of one; a kill or a full disk
    leaves the old file (and a full disk raises DiskFullError)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with writing(path):
            tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Run a write of `path`; a disk failure becomes `DiskFullError(path)`.

    torch.save and numpy wrap the OSError of a full disk in their own RuntimeError on some
    paths; the chained cause is looked at too."""
    try:
        yield
    except DiskFullError:
        raise
    except BaseException as exc:
        cause: BaseException | None = exc
        while cause is not None:
            if is_disk_error(cause):
                raise DiskFullError(path, cause) from exc  # type: ignore[arg-type]
            if isinstance(cause, RuntimeError) and "No space left on device" in str(cause):
                raise DiskFullError(path, OSError(errno.ENOSPC, "No space left on device")) from exc
            cause = cause.__cause__ or cause.__context__
        raise
