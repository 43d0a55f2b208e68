"""A resume point written by one number of processes resumes under another (CPU, gloo):
2 ranks -> 1 process and 1 process -> 2 ranks, with the warning that the run will not
replay an uninterrupted one. On a CUDA machine the RNG state of the current device alone
is saved, and a state of several devices restores on a machine that sees fewer. And
`asnet train` with train.nproc_per_node 2 launches the torchrun job itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torchrun_job import run_job, torchrun_env

from asnet import paths
from asnet.config import load_config
from asnet.train import checkpoint
from asnet.train.loop import _rng_state, _set_rng_state

DATASET, SPLIT, VARIANT = "synthetic_tiny", 1, "asnet"
TIMEOUT_S = 120
ARGS = ["-m", "asnet.cli", "train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT,
        "--no-progress", "--set", "preset=tiny"]


def _train(work: Path, nproc: int, epochs: int) -> str:
    """`asnet train` for `epochs` in `nproc` processes (torchrun when > 1); its stderr."""
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
    cmd = [*launcher, *ARGS, "--set", f"train.epochs={epochs}"]
    proc = run_job(cmd, work, TIMEOUT_S, f"{nproc}-process training")
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_resume_with_another_number_of_processes(tiny_workdir: Path, tmp_path: Path, first: int, then: int) -> None:
    (tmp_path / "data").symlink_to(tiny_workdir / "data", target_is_directory=True)
    run = tmp_path / paths.run_dir(DATASET, SPLIT, VARIANT)
    _train(tmp_path, first, epochs=1)
    saved = checkpoint.load(run / "state" / "last.pt")
    assert int(saved.get("world_size", 1)) == first and saved["epoch"] == 0
    err = _train(tmp_path, then, epochs=2)
    assert f"was written by {first} process(es), resuming with {then}" in err
    assert "resuming" in err and "from epoch 1" in err
    final = checkpoint.load(run / "model.pt")
    assert [h["epoch"] for h in final["history"]] == [0, 1]
    assert final["history"][0] == saved["history"][0]
    assert all(torch.isfinite(t).all() for t in final["model"].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_rng_state_is_the_current_devices() -> None:
    """The saved state holds one generator (this device's); a state of more devices than
    this machine has (a resume on fewer GPUs) restores this device's row."""
    torch.cuda.manual_seed(7)
    state = _rng_state()
    assert state["cuda"].dim() == 1
    want = torch.rand(3, device="cuda")
    torch.cuda.manual_seed(8)
    _set_rng_state(state)
    assert torch.equal(torch.rand(3, device="cuda"), want)
    n = torch.cuda.device_count()
    rows = torch.stack([torch.cuda.get_rng_state()] * (n + 3))  # more devices than visible here
    torch.cuda.manual_seed(9)
    rows[torch.cuda.current_device()] = state["cuda"]
    _set_rng_state({"torch": state["torch"], "cuda": rows})
    assert torch.equal(torch.rand(3, device="cuda"), want)



@pytest.mark.slow
def test_command_line_nproc_per_node_launches_torchrun(tiny_workdir: Path, tmp_path: Path) -> None:
    """`asnet train --set train.nproc_per_node=2` without torchrun runs the train rule's
    torchrun job: 2 gloo ranks, the resolved configuration in the rule's log folder."""
    (tmp_path / "data").symlink_to(tiny_workdir / "data", target_is_directory=True)
    cmd = [sys.executable, *ARGS, "--set", "train.epochs=1", "--set", "train.nproc_per_node=2"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=torchrun_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "torch.distributed.run --standalone --nproc_per_node 2" in proc.stderr
    assert "2 processes x batch 2 (gloo)" in proc.stderr
    run = tmp_path / paths.run_dir(DATASET, SPLIT, VARIANT)
    assert checkpoint.load(run / "state" / "last.pt")["world_size"] == 2
    assert len(checkpoint.load(run / "model.pt")["history"]) == 1
    written = tmp_path / "results/logs" / DATASET / f"split{SPLIT}" / VARIANT / "train_config.yaml"
    assert load_config(written) == load_config(overrides=["preset=tiny", "train.epochs=1", "train.nproc_per_node=2"])
