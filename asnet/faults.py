"""Named fault points on the real code path, for the fault-injection tests (tests/test_faults.py).

`ASNET_FAULT="<point>@<n>:<action>"` makes the n-th pass (counted per process, from 1) of
`fault_point("<point>")` either `kill` the process with SIGKILL (a kill -9 at exactly that
point), `hang` it (sleep until the test kills the process group, e.g. under Snakemake), or
raise the OSError of a full disk there (`enospc`, errno ENOSPC; `eio`, errno EIO): what the
write at that point raises when the disk fills up, or send the process a real SIGINT
(`sigint`, a Ctrl-C) or SIGTERM (`sigterm`, what SLURM sends before its kill) at exactly that
point. Passes at and after n raise (a full disk stays full); the other actions act once.
Unset, a fault point costs one dictionary lookup; nothing else reads the variable.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

ENV = "ASNET_FAULT"
ACTIONS = ("kill", "hang", "enospc", "eio", "sigint", "sigterm")
_SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}
_ERRNO = {"enospc": errno.ENOSPC, "eio": errno.EIO}
_passes: dict[str, int] = {}


def _parse(spec: str) -> tuple[str, int, str]:
    where, _, action = spec.partition(":")
    point, _, nth = where.partition("@")
    if action not in ACTIONS or not point:
        raise ValueError(f"{ENV}={spec!r}: expected <point>[@<n>]:<action>, action one of {', '.join(ACTIONS)}")
    return point, int(nth or 1), action


def fault_point(name: str) -> None:
    """Kill, hang, signal or fail a write here if `ASNET_FAULT` names this point and this is its n-th pass."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    point, nth, action = _parse(spec)
    if point != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if action in _ERRNO:
        if _passes[name] >= nth:
            raise OSError(_ERRNO[action], os.strerror(_ERRNO[action]), f"[fault {name}]")
        return
    if _passes[name] != nth:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[action])  # its handler runs before the next line of this process
        return
    # The tests wait for this line (in the rule's log under Snakemake) before killing.
    print(f"[fault] {name} pass {nth}: hanging (pid {os.getpid()})", file=sys.stderr, flush=True)
    while True:  # hang: the test observes the state on disk, then kills the process group
        time.sleep(3600)
