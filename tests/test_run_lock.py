"""One training process per run folder (asnet.train.lock): a second `asnet train` of a run
being trained is refused with one line naming the holder; a lock left by a dead process is
taken over; one from another host is refused with how to remove it."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asnet import paths
from asnet.train.lock import RunLock, RunLockedError, lock_path

DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "single"
CMD = [sys.executable, "-m", "asnet.cli", "train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT,
       "--no-progress", "--set", "preset=tiny", "--set", "train.epochs=2"]


def _env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASNET_FAULT"}
    return {**env, "ASNET_FAULT": fault} if fault else env


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_second_train_is_refused_while_the_first_runs_then_takes_over_its_stale_lock(
    tiny_workdir: Path, tmp_path: Path
) -> None:
    run = tiny_workdir / paths.run_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(run, ignore_errors=True)
    err = tmp_path / "first.txt"
    with err.open("w") as fh:
        first = subprocess.Popen(CMD, cwd=tiny_workdir, stdout=subprocess.DEVNULL, stderr=fh,
                                 env=_env("train.epoch_logged@1:hang"))
    try:
        deadline = time.monotonic() + 120
        while "hanging" not in err.read_text():
            assert first.poll() is None and time.monotonic() < deadline, err.read_text()[-3000:]
            time.sleep(0.05)
        logged = (run / "dvclive" / "metrics.json").read_bytes()
        second = subprocess.run(CMD, cwd=tiny_workdir, capture_output=True, text=True, timeout=120, env=_env())
        assert second.returncode == 2, second.stderr[-3000:]
        line = second.stderr.strip().splitlines()[-1]
        lock = paths.run_dir(DATASET, SPLIT, VARIANT) / "state" / ".lock"
        assert line.startswith(f"asnet train: error: {lock}: this run is being trained by pid {first.pid} on host "
                               f"{socket.gethostname()} (since "), line
        assert f"kill {first.pid}" in line and "Traceback" not in second.stderr
        assert (run / "dvclive" / "metrics.json").read_bytes() == logged  # the refused run wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # kill -9 left the lock file of a process that no longer runs: the next run takes it over.
    assert json.loads((run / "state" / ".lock").read_text())["pid"] == first.pid
    third = subprocess.run(CMD, cwd=tiny_workdir, capture_output=True, text=True, timeout=300, env=_env())
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"taking over the lock of pid {first.pid} on host {socket.gethostname()}" in third.stderr
    assert (run / "model.pt").exists() and not (run / "state" / ".lock").exists()


def test_stale_lock_of_a_dead_pid_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    dead = _dead_pid()
    path.write_text(json.dumps({"pid": dead, "host": socket.gethostname(), "started": "2020-01-01T00:00:00"}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()
        assert f"taking over the lock of pid {dead}" in caplog.text
    assert not path.exists()


def test_lock_of_another_host_is_refused_with_how_to_remove_it(tmp_path: Path) -> None:
    path = lock_path(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 4242, "host": "node-elsewhere", "started": "2020-01-01T00:00:00"}))
    with pytest.raises(RunLockedError, match=r"pid 4242 on host node-elsewhere .*cannot check whether it still "
                                             rf"runs; if that job has ended, delete {path}"):
        RunLock(tmp_path).acquire()
    assert path.exists()  # left for its owner


def test_same_process_cannot_take_a_lock_twice(tmp_path: Path) -> None:
    """POSIX record locks do not exclude their own process: the pid does."""
    with RunLock(tmp_path), pytest.raises(RunLockedError, match=f"pid {os.getpid()}"):
        RunLock(tmp_path).acquire()


def test_lock_is_released_when_training_fails(in_tiny_workdir: Path) -> None:
    from asnet.config import load_config
    from asnet.train.loop import train_run

    out = in_tiny_workdir / "lock_fails"
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    with pytest.raises(FileNotFoundError):
        train_run(cfg, Path("no/such/manifest.csv"), paths.frames_dir(DATASET), out, VARIANT, progress=False)
    assert not lock_path(out).exists()
