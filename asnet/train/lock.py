"""One training process per run folder: `<run_dir>/state/.lock`.

The file holds the holder's pid, host and start time (JSON) and carries a POSIX record lock
(`fcntl.lockf`) for as long as the holder lives: the kernel drops it when the process dies,
however it dies, and a forked DataLoader worker does not inherit it. So a lock file whose
record lock can be taken is stale (its process is gone) and is taken over with a warning; one
whose lock is held refuses the second process with one line naming the holder. A file written
on another host is refused too: this host cannot tell whether that job still runs (a shared
file system may not carry record locks between hosts), and the message says how to remove it.
On a file system without record locks the pid is checked instead (this host only).

The lock lives in `state/`, beside the resume state it guards: outside a rule's declared
outputs, and removed when the holder ends.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
# What lockf raises where the file system has no record locks (some NFS/Lustre mounts).
_NO_LOCKS = frozenset({errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL})


class RunLockedError(ValueError):
    """Another process trains this run (or may: a lock from another host)."""


def lock_path(run_dir: Path) -> Path:
    """The lock file of `run_dir`."""
    return Path(run_dir) / "state" / LOCK_NAME


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        info = json.loads(raw.decode() or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def _holder(info: dict) -> str:
    if not info:
        return "a process that is still starting"
    return f"pid {info.get('pid', '?')} on host {info.get('host', '?')} (since {info.get('started', '?')})"


class RunLock:
    """The lock of one run folder, held from `acquire` to `release` (a context manager)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = lock_path(run_dir)
        self._fd: int | None = None
        self._made: list[Path] = []

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise RunLockedError naming its holder and the fix."""
        # Folders made for the lock go with it when nothing else was written there: a run
        # refused before training leaves no trace.
        self._made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        host, me = socket.gethostname(), os.getpid()
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    fd = os.open(self.path, os.O_RDWR)
                except FileNotFoundError:  # its holder just released it
                    continue
            record_locks = True
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EAGAIN):
                    info = _read(fd)
                    os.close(fd)
                    raise RunLockedError(self._live_message(info)) from None
                if exc.errno not in _NO_LOCKS:
                    os.close(fd)
                    raise
                record_locks = False
            # The holder removes the file before it lets go of the lock: a lock taken on a
            # file no longer at `path` guards nothing; start again with the current one.
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                os.close(fd)
                continue
            break
        info = _read(fd)
        if info:
            stale = self._check_existing(info, host, me, record_locks)
            if stale is not None:
                os.close(fd)
                raise RunLockedError(stale)
            log.warning("%s: taking over the lock of %s, which no longer runs", self.path, _holder(info))
        mine = {"pid": me, "host": host,
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(mine) + "\n").encode())
        os.fsync(fd)
        self._fd = fd

    def _check_existing(self, info: dict, host: str, me: int, record_locks: bool) -> str | None:
        """The refusal for a lock file left by another process, or None when it is stale."""
        pid = int(info.get("pid", -1)) if str(info.get("pid", "")).lstrip("-").isdigit() else -1
        if info.get("host") != host:
            return (f"{self.path} is held by {_holder(info)}: this host ({host}) cannot check whether it still "
                    f"runs; if that job has ended, delete {self.path} and run the same command again")
        if pid == me or (not record_locks and _pid_alive(pid)):
            return self._live_message(info)
        return None

    def _live_message(self, info: dict) -> str:
        pid = info.get("pid")
        stop = f"stop it (kill {pid}; it saves its state and exits)" if pid else "stop it"
        return (f"{self.path}: this run is being trained by {_holder(info)}; wait for it to finish or {stop}, "
                "then run the same command again")

    def release(self) -> None:
        """Remove the lock file, then let go of its lock (no-op when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
        for folder in self._made:  # innermost first
            try:
                folder.rmdir()
            except OSError:  # not empty (the run wrote there), or already gone
                break
