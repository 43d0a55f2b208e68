"""Stopping a training run cleanly on SIGINT (Ctrl-C) or SIGTERM (SLURM before its kill).

One mechanism for both signals: the handler only records the request; the training loop
looks at it at each step boundary (and after each epoch's save), saves the mid-epoch state
there and raises `TrainingInterrupted`, which `asnet` prints as one line and exits with
128 + the signal's number (130, 143). A second signal before that boundary stops at once,
without saving (the last saved state stays the resume point); one arriving while the state
is written waits for the write to end. Under torchrun the ranks agree (`requested` is an
all-reduce, called by every rank at every boundary), so all stop at the same step.

This module imports torch only under torchrun: `asnet`'s command line imports it at start.

Forked DataLoader workers inherit the handler but ignore the signal: the main process
decides, and shuts them down as it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(BaseException):
    """The run stopped on a signal; `str()` is the one line for the user.

    A BaseException (like KeyboardInterrupt), so that no `except Exception` on the way out
    mistakes it for an error to handle."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by signal `signum`."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """SIGINT, SIGTERM, ..."""
    return signal.Signals(signum).name


class StopRequest:
    """The pending stop request of this process (installed with `handling`)."""

    def __init__(self, dist_group: object | None = None) -> None:
        """`dist_group`: under torchrun, a process group of every rank that reduces CPU
        tensors (see `for_job`), so the per-step flag never waits on
        a GPU; None for a single process."""
        self.signum: int | None = None
        self._pid = os.getpid()
        self._saving = False
        self._group = dist_group

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:
            return
        if self.signum is None:
            self.signum = signum
            os.write(2, f"\n{signal_name(signum)}: stopping at the end of this step (the state is saved; "
                        "a second signal stops at once, without saving)\n".encode())
        elif not self._saving:
            raise TrainingInterrupted(signum, f"stopped at once by a second {signal_name(signum)}; the last saved "
                                              "state is kept: run the same command to resume from it")

    @contextlib.contextmanager
    def handling(self) -> Iterator[StopRequest]:
        """SIGINT and SIGTERM set this request while the block runs (main thread only;
        elsewhere signals keep their handlers); the previous handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """A block that a second signal must not cut (the state's write)."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    @classmethod
    def for_job(cls, distributed: bool, backend: str | None) -> StopRequest:
        """The request of this process; under torchrun (`distributed`, with the job's
        `backend`) every rank must call it, as it may create a gloo group of all ranks."""
        if not distributed:
            return cls()
        import torch.distributed as dist

        return cls(dist.group.WORLD if backend == "gloo" else dist.new_group(backend="gloo"))

    def requested(self) -> bool:
        """Whether to stop at this boundary: on any rank that got a signal, every rank agrees.
        Under torchrun every rank must call it at every boundary (it is a collective)."""
        if self._group is None:
            return self.signum is not None
        import torch
        import torch.distributed as dist

        flag = torch.tensor([self.signum or 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        if self.signum is None and flag.item():
            self.signum = int(flag.item())  # stopped for another rank's signal: report it
        return bool(flag.item())
