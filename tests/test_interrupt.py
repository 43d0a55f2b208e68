"""Signals and full disks in training: a real SIGINT / SIGTERM sent to `asnet train` (by the
fault actions `sigint` / `sigterm` of asnet.faults at an exact step, or by this test with
os.kill) saves the state at the next step boundary and exits with one line and 128 + the
signal's number; the same command then resumes mid-epoch and ends bit-identical to an
uninterrupted run (model.pt by tensors, history, dvclive/ byte for byte). A full disk while
a checkpoint is written is one line, and leaves the previous state and no temp file."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asnet import paths
from asnet.config import load_config
from asnet.train import checkpoint
from asnet.train.loop import train_run

DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "asnet"
# The tiny preset trains 2 steps per epoch: step_done passes 1, 2 are epoch 0's, 3, 4 epoch 1's.
TRAIN = ["preset=tiny", "train.epochs=3"]
ARGS = ["train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT, "--no-progress"]


def _cmd() -> list[str]:
    return [sys.executable, "-m", "asnet.cli", *ARGS] + [a for o in TRAIN for a in ("--set", o)]


def _env(fault: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "ASNET_FAULT"}
    return {**env, "ASNET_FAULT": fault} if fault else env


def _train(work: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(_cmd(), cwd=work, capture_output=True, text=True, timeout=300, env=_env(fault))


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _assert_same_run(run: Path, ref: Path) -> None:
    got, want = checkpoint.load(run / "model.pt"), checkpoint.load(ref / "model.pt")
    for part in ("model", "agent"):
        assert got[part].keys() == want[part].keys()
        assert all(torch.equal(got[part][k], want[part][k]) for k in want[part]), part
    assert got["history"] == want["history"]
    assert _files(run / "dvclive") == _files(ref / "dvclive")
    assert not list(run.rglob("*.tmp")) and not (run / "state" / ".lock").exists()


def _last_line(proc: subprocess.CompletedProcess | str) -> str:
    text = proc if isinstance(proc, str) else proc.stderr
    assert "Traceback" not in text, text[-3000:]
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def reference(tiny_workdir: Path) -> Path:
    """The uninterrupted CLI run, moved aside."""
    run = tiny_workdir / paths.run_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(run, ignore_errors=True)
    done = _train(tiny_workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = tiny_workdir / "interrupt_reference"
    shutil.rmtree(ref, ignore_errors=True)
    shutil.move(run, ref)
    return ref


@pytest.fixture()
def run(tiny_workdir: Path) -> Path:
    run = tiny_workdir / paths.run_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(run, ignore_errors=True)
    return run


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "code", "where", "epoch"), [
    ("train.step_done@1:sigint", 130, "at epoch 0 (of 0-2) step 1 of 2", -1),
    ("train.step_done@3:sigterm", 143, "at epoch 1 (of 0-2) step 1 of 2", 0),
    # After an epoch's last step the epoch ends (validation, save), then the run stops.
    ("train.step_done@2:sigint", 130, "after epoch 0 (of 0-2)", 0),
])
def test_signal_at_a_step_saves_and_resumes_bit_identical(
    tiny_workdir: Path, reference: Path, run: Path, fault: str, code: int, where: str, epoch: int
) -> None:
    stopped = _train(tiny_workdir, fault)
    assert stopped.returncode == code, stopped.stderr[-3000:]
    name = fault.rsplit(":", 1)[1].upper()
    assert _last_line(stopped) == (
        f"asnet train: interrupted ({name}) {where}; state saved in {paths.run_dir(DATASET, SPLIT, VARIANT)}"
        "/state/last.pt; run the same command to resume")
    state = checkpoint.load(run / "state" / "last.pt")
    assert state["epoch"] == epoch and ("partial" in state) == where.startswith("at ")
    assert not (run / "model.pt").exists() and not (run / "state" / ".lock").exists()
    resumed = _train(tiny_workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stderr
    _assert_same_run(run, reference)


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        assert proc.poll() is None, path.read_text()[-3000:]
        time.sleep(0.005)
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.slow
def test_ctrl_c_from_outside_saves_and_resumes_bit_identical(
    tiny_workdir: Path, reference: Path, run: Path, tmp_path: Path
) -> None:
    """SIGINT sent by this test (a Ctrl-C) once epoch 0 is logged: wherever it lands in
    epoch 1 or 2, the resumed run equals the uninterrupted one."""
    err = tmp_path / "stderr.txt"
    with err.open("w") as fh:
        proc = subprocess.Popen(_cmd(), cwd=tiny_workdir, stdout=subprocess.DEVNULL, stderr=fh, env=_env())
        _wait_for(err, "epoch 0: ", proc)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, err.read_text()[-3000:]
    assert "interrupted (SIGINT)" in _last_line(err.read_text())
    resumed = _train(tiny_workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(run, reference)


@pytest.mark.slow
def test_second_signal_stops_at_once_without_saving(
    tiny_workdir: Path, reference: Path, run: Path, tmp_path: Path
) -> None:
    """Two SIGTERMs while the first step's boundary is held up (a fault point hangs there):
    the second stops the process at once; what was saved (nothing yet) stays the resume point."""
    err = tmp_path / "stderr.txt"
    with err.open("w") as fh:
        proc = subprocess.Popen(_cmd(), cwd=tiny_workdir, stdout=subprocess.DEVNULL, stderr=fh,
                                env=_env("train.step_done@1:hang"))
        _wait_for(err, "hanging", proc)
        os.kill(proc.pid, signal.SIGTERM)
        _wait_for(err, "SIGTERM: stopping at the end of this step", proc)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, err.read_text()[-3000:]
    assert _last_line(err.read_text()) == (
        "asnet train: stopped at once by a second SIGTERM; the last saved state is kept: run the same command "
        "to resume from it")
    assert not (run / "state" / "last.pt").exists() and not (run / "state" / ".lock").exists()
    resumed = _train(tiny_workdir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(run, reference)


@pytest.mark.slow
def test_full_disk_while_saving_keeps_the_previous_state(tiny_workdir: Path, run: Path) -> None:
    """ENOSPC in the second state save (epoch 1's): one line naming the file, exit 2, epoch 0's
    state intact, no temp file; the same command then goes on from epoch 1."""
    full = _train(tiny_workdir, "checkpoint.write@2:enospc")
    assert full.returncode == 2, full.stderr[-3000:]
    state = run / "state" / "last.pt"
    assert _last_line(full).startswith(f"asnet train: error: cannot write {state.relative_to(tiny_workdir)}: "
                                       "the disk is full")
    assert checkpoint.load(state)["epoch"] == 0
    assert not list(run.rglob("*.tmp")) and not (run / "state" / ".lock").exists()
    assert not (run / "model.pt").exists()
    again = _train(tiny_workdir)
    assert again.returncode == 0 and "resuming" in again.stderr and "from epoch 1" in again.stderr


def test_temp_files_of_a_killed_save_are_removed_at_start(in_tiny_workdir: Path) -> None:
    """Only save_atomic's names (`<name>.XXXXXXXX.tmp`) in the run folder and state/ go."""
    out = in_tiny_workdir / "tmp_cleanup"
    shutil.rmtree(out, ignore_errors=True)
    (out / "state").mkdir(parents=True)
    left = [out / "state" / "last.pt.k3x_9a0q.tmp", out / "model.pt.abcdefgh.tmp"]
    kept = [out / "notes.tmp", out / "state" / "last.pt.tmp", out / "eval" / "x.pt.abcdefgh.tmp"]
    for f in left + kept:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"half a checkpoint")
    cfg = load_config(overrides=["preset=tiny", "train.epochs=1"])
    train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), out, "single", progress=False)
    assert not any(f.exists() for f in left) and all(f.exists() for f in kept)
    assert (out / "model.pt").exists() and not (out / "state" / ".lock").exists()


# Run by torchrun instead of `-m asnet.cli`: the same CLI, with the fault (a real SIGTERM at
# an exact step) in rank 1 only.
RANK1_FAULT = """
import os, sys
fault = sys.argv.pop(1)
if os.environ.get("RANK") == "1":
    os.environ["ASNET_FAULT"] = fault
from asnet import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_torchrun_ranks_stop_together_and_resume_bit_identical(tiny_workdir: Path, run: Path, tmp_path: Path) -> None:
    """SIGTERM to rank 1 alone in epoch 1: both ranks stop after the same step (the flag is
    all-reduced), rank 0 saves every rank's part of the epoch (sums, generators, BatchNorm
    statistics), and the torchrun resume equals an uninterrupted 2-process run."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    args = ARGS + [a for o in TRAIN for a in ("--set", o)]
    full = subprocess.run(torchrun + ["-m", "asnet.cli", *args], cwd=tiny_workdir, capture_output=True, text=True,
                          timeout=300, env=_env())
    assert full.returncode == 0, full.stderr[-3000:]
    ref = tmp_path / "ddp_reference"
    shutil.move(run, ref)
    script = tmp_path / "rank1_fault.py"
    script.write_text(RANK1_FAULT)
    stopped = subprocess.run(torchrun + [str(script), "train.step_done@3:sigterm", *args], cwd=tiny_workdir,
                             capture_output=True, text=True, timeout=300, env=_env())
    assert stopped.returncode != 0
    said = [ln for ln in stopped.stderr.splitlines() if ln.startswith("asnet train: interrupted")]
    assert len(said) == 2 and all("at epoch 1 (of 0-2) step 1 of 2" in ln for ln in said), stopped.stderr[-3000:]
    assert checkpoint.load(run / "state" / "last.pt")["partial"]["sums"]["items"].shape == (2,)
    resumed = subprocess.run(torchrun + ["-m", "asnet.cli", *args], cwd=tiny_workdir, capture_output=True, text=True,
                             timeout=300, env=_env())
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(run, ref)
