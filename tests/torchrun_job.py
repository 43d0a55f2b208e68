"""Run a torchrun (or plain) job of the tests in its own session, bounded by a timeout: a hung
job is a test failure that kills torchrun and all of its workers, never a stuck CI."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

# A job started from inside another torch.distributed process must not inherit its rendezvous.
_RENDEZVOUS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def torchrun_env() -> dict[str, str]:
    """This environment without a rendezvous, one OpenMP thread per process (2 cores here)."""
    env = {k: v for k, v in os.environ.items() if k not in _RENDEZVOUS}
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_job(cmd: list[str], cwd: Path, timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in `cwd`; past `timeout_s` kill its process group and fail the test as `what` hung."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=torchrun_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{what} hung (killed after {timeout_s} s): {' '.join(cmd)}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
