"""A full disk is one error naming the path, the free space and the fix (asnet.disk), raised
by real writes to /dev/full (ENOSPC from the kernel) and by the fault actions of asnet.faults."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asnet import faults
from asnet.disk import DiskFullError, as_disk_full, is_disk_error, writing

FULL = Path("/dev/full")
needs_dev_full = pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")


@needs_dev_full
def test_a_write_to_a_full_disk_names_the_file_the_free_space_and_the_fix(tmp_path: Path) -> None:
    target = tmp_path / "frames" / "v_1.npy"
    with pytest.raises(DiskFullError) as err, writing(target), FULL.open("w") as fh:
        fh.write("x" * 10)
        fh.flush()
    msg = str(err.value)
    assert msg.startswith(f"cannot write {target}: the disk is full (")
    assert " free there)" in msg and "free space" in msg and "run the same command again" in msg
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)


def test_other_errors_pass_through_unchanged(tmp_path: Path) -> None:
    with pytest.raises(PermissionError), writing(tmp_path / "x"):
        raise PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(ValueError, match="not a disk"), writing(tmp_path / "x"):
        raise ValueError("not a disk")
    assert not is_disk_error(FileNotFoundError(errno.ENOENT, "x"))


def test_a_chained_disk_error_is_found_and_torch_text_too(tmp_path: Path) -> None:
    with pytest.raises(DiskFullError, match="quota is exceeded"), writing(tmp_path / "x"):
        try:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        except OSError as exc:
            raise RuntimeError("wrapper") from exc
    with pytest.raises(DiskFullError, match="the disk is full"), writing(tmp_path / "state.pt"):
        raise RuntimeError("[enforce fail at inline_container.cc:642] . PytorchStreamWriter failed writing "
                           "file data/0: file write failed: No space left on device")


def test_without_a_file_name_the_message_says_under_which_folder() -> None:
    msg = str(as_disk_full(OSError(errno.EIO, "Input/output error")))
    assert msg.startswith(f"cannot write a file under {Path.cwd()}: the disk reports an I/O error")


@pytest.mark.parametrize(("action", "code"), [("enospc", errno.ENOSPC), ("eio", errno.EIO)])
def test_fault_actions_raise_the_disk_error_from_the_nth_pass_on(monkeypatch: pytest.MonkeyPatch,
                                                               action: str, code: int) -> None:
    monkeypatch.setenv(faults.ENV, f"unit.point@2:{action}")
    monkeypatch.setattr(faults, "_passes", {})
    faults.fault_point("unit.point")  # pass 1: nothing
    for _ in range(2):  # a full disk stays full
        with pytest.raises(OSError) as err:
            faults.fault_point("unit.point")
        assert err.value.errno == code and is_disk_error(err.value)
    faults.fault_point("other.point")


def test_a_bad_fault_spec_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(faults.ENV, "unit.point:explode")
    with pytest.raises(ValueError, match="action one of kill, hang, enospc, eio"):
        faults.fault_point("unit.point")


@needs_dev_full
def test_asnet_prints_a_full_disk_as_one_line_with_exit_2(tmp_path: Path) -> None:
    """`asnet plan --out /dev/full`: pandas' write meets ENOSPC; the CLI prints one line."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    r = subprocess.run([sys.executable, "-m", "asnet.cli", "plan", "--out", str(FULL), "--set", "preset=tiny"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("asnet plan: error: cannot write") and "the disk is full" in lines[-1]
    assert "Traceback" not in r.stderr
