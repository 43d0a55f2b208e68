"""The "Raw data under DVC" recipe (docs/real-data.md), run for real: dvc add, push to a local-directory
remote, git clone elsewhere, dvc pull, and the raw files come back byte for byte.

The temporary repository ignores data/ the way docs/real-data.md asks (everything but the
``data/raw/*.dvc`` pointers): a blanket ``/data/`` makes ``dvc add data/raw/...`` fail with
"bad DVC file name ... is git-ignored", and ``/data/*`` makes ``dvc push`` find nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from archive_fixtures import tiny_avi_bytes


def _run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _dvc(*args: str, cwd: Path) -> str:
    return _run([sys.executable, "-m", "dvc", *args], cwd)


def _git(*args: str, cwd: Path) -> str:
    return _run(["git", "-c", "user.name=asnet-test", "-c", "user.email=asnet-test@example.invalid", *args], cwd)


# `?*` rather than `*`: DVC asks its gitignore matcher about `data/` and `data/raw/` with a
# trailing slash, which `/data/*` matches (empty `*`), and then never looks inside for .dvc files
GITIGNORE = "/data/?*\n!/data/raw/\n/data/raw/?*\n!/data/raw/*.dvc\n/results/\n"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_raw_data_round_trip_through_a_dvc_remote(tmp_path: Path) -> None:
    repo, clone, remote = tmp_path / "repo", tmp_path / "clone", tmp_path / "remote"
    repo.mkdir()
    _git("init", "-q", cwd=repo)
    _dvc("init", "-q", cwd=repo)
    (repo / ".gitignore").write_text(GITIGNORE)
    raw = repo / "data" / "raw"
    files = {
        "UCF-101/Archery/v_Archery_g01_c01.avi": tiny_avi_bytes(0),
        "UCF-101/YoYo/v_YoYo_g01_c01.avi": tiny_avi_bytes(1),
        "ucfTrainTestlist/classInd.txt": b"1 Archery\r\n2 YoYo\r\n",
    }
    for rel, data in files.items():
        (raw / rel).parent.mkdir(parents=True, exist_ok=True)
        (raw / rel).write_bytes(data)

    _dvc("add", "-q", "data/raw/UCF-101", "data/raw/ucfTrainTestlist", cwd=repo)
    _dvc("remote", "add", "-d", "local", str(remote), cwd=repo)
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "raw data under dvc", cwd=repo)
    # git tracks only the pointers; the videos themselves must not be in git
    tracked = _git("ls-files", cwd=repo).split()
    assert {"data/raw/UCF-101.dvc", "data/raw/ucfTrainTestlist.dvc", ".dvc/config"} <= set(tracked)
    assert not any(t.startswith("data/raw/UCF-101/") for t in tracked)
    _dvc("push", "-q", cwd=repo)

    _git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "data/raw/UCF-101").exists()
    _dvc("pull", "-q", cwd=clone)

    # the data folders only: the .dvc pointers beside them come from git
    restored = {rel: data for rel, data in _tree(clone / "data" / "raw").items() if "/" in rel}
    assert restored == {rel: files[rel] for rel in sorted(files)}
