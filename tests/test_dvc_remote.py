"""Frames, checkpoints, evaluations and Table 6 shared through a DVC remote, for real, on the
tiny preset: `dvc repro` + `dvc push` in one repository, a fresh `git clone` + `dvc pull`
elsewhere, and Snakemake in the clone then has nothing to train.

Why the clone needs one extra step before `snakemake -n` is quiet: Snakemake reruns a job
whose input is newer than its output, and `dvc pull` writes files with fresh mtimes in an
order nobody controls (a fresh clone has no .snakemake metadata either, so nothing else can
vouch for the files). Dropping ``mtime`` from ``rerun-triggers`` does not help: Snakemake
9.27 never consults that trigger and plans the same jobs. The remedy is the documented step

    dvc status -q && snakemake --touch --cores 1 results/table6.tex

``dvc status -q`` fails unless the pulled outputs are what this commit's code, config and
params produce (DVC hashes content, so it is the provenance check Snakemake cannot make in a
fresh clone), and ``--touch`` then re-stamps the outputs in DAG order. The test forces the
worst pull order (every file newer than everything downstream of it) so the step is
exercised on the hard case, then checks that ordinary changes still rerun what they must.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from worktree import clone_worktree

from asnet import dvc_yaml

REPO = Path(__file__).resolve().parents[1]
# The uncommitted work in the developer's tree is what is under test (as in
# tests/test_workflow.py), plus the profile a user's `snakemake` picks up and .dvcignore.
WORKTREE = ("dvc.yaml", "Snakefile", "workflow", "config", "asnet", "profiles", ".dvcignore")
PRESET = ["--config", "preset=tiny"]
# Everything the four stages of dvc.yaml write on the tiny preset, upstream first: the
# groups the mtime scramble below orders against the DAG.
OUT_GROUPS = (
    ("data/synthetic_tiny", "data/synthetic_tiny_source"),
    ("results/pretrain/synthetic_tiny_source",),
    ("results/checkpoints/synthetic_tiny",),
    ("results/eval/synthetic_tiny",),
    ("results/table6.tex", "results/table6.csv", "results/table6_metrics.csv"),
)
OUTS = tuple(rel for group in OUT_GROUPS for rel in group)


def _run(cmd: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    """Run one command; with ``ok`` it must succeed (its output is shown when it does not)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False)
    if ok:
        assert proc.returncode == 0, f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _dvc(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "dvc", *args], cwd, ok)


def _git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _run(["git", "-c", "user.name=asnet-test", "-c", "user.email=asnet-test@example.invalid", *args], cwd)


def _snakemake(*args: str, cwd: Path) -> str:
    """Snakemake as a user runs it: from the repository root, so profiles/default applies."""
    proc = _run([sys.executable, "-m", "snakemake", *args], cwd)
    return proc.stdout + proc.stderr


def _planned(cwd: Path, *targets: str) -> Counter[str]:
    """Jobs per rule of a dry run (empty when Snakemake has nothing to do)."""
    out = _snakemake("-n", *targets, *PRESET, cwd=cwd)
    jobs = Counter(re.findall(r"^(?:local)?rule (\w+):$", out, flags=re.MULTILINE))
    assert jobs or "Nothing to be done" in out, out[-3000:]
    return jobs


def _files(root: Path, rels: tuple[str, ...]) -> list[Path]:
    paths = [root / rel for rel in rels]
    return sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def _tree(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in _files(root, OUTS)}


def _scramble_mtimes(clone: Path, after_ns: int) -> None:
    """The worst order `dvc pull` could write in: every group newer than all groups downstream.

    All stamps stay above ``after_ns`` (the newest git-tracked file) so that only the
    input-newer-than-output rule, not the code trigger, is what the clone has to survive.
    """
    for i, group in enumerate(OUT_GROUPS):
        stamp = after_ns + (len(OUT_GROUPS) - i) * 10_000_000  # 10 ms apart, upstream newest
        for f in _files(clone, group):
            os.utime(f, ns=(stamp, stamp))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is needed to clone the repository")
def test_pull_from_a_dvc_remote_leaves_nothing_to_train(tmp_path: Path) -> None:
    repo, clone, remote = tmp_path / "repo", tmp_path / "clone", tmp_path / "remote"

    # --- the machine that trains: clone, run the pipeline, commit dvc.lock, push
    clone_worktree(repo, WORKTREE)
    # tiny's stages differ from the committed default's (no backbone pretrainings): write its own,
    # as a user switching presets does (`asnet dvc-yaml --preset tiny`)
    dvc_yaml.write("tiny", root=repo)
    # A user's editable install leaves bytecode in asnet/ (a `dvc.yaml` dep); it must not
    # reach dvc.lock, or the clone below, which has none, would see changed deps.
    _run([sys.executable, "-m", "compileall", "-q", "asnet"], repo)
    _dvc("repro", cwd=repo)
    _dvc("remote", "add", "-d", "storage", str(remote), cwd=repo)
    # dvc.lock is what maps every stage output to its content hash on the remote: without it
    # in git, `dvc pull` in a clone finds "no file hash info" and restores nothing.
    _git("add", "-A", cwd=repo)
    _git("commit", "-q", "-m", "tiny preset results", cwd=repo)
    tracked = set(_git("ls-files", cwd=repo).stdout.split())
    assert {"dvc.lock", ".dvc/config"} <= tracked
    assert not any(t.startswith(("data/synthetic_tiny/", "data/synthetic_tiny_source/", "results/")) for t in tracked)
    _dvc("push", cwd=repo)

    # --- another machine: a fresh clone and a pull restore every output byte for byte
    _git("clone", "-q", str(repo), str(clone), cwd=tmp_path)
    assert not (clone / "results").exists() and not (clone / ".snakemake").exists()
    after_ns = max(f.stat().st_mtime_ns for f in clone.rglob("*") if f.is_file() and ".git" not in f.parts)
    _dvc("pull", cwd=clone)
    pulled = _tree(clone)
    assert pulled == _tree(repo)
    assert any(rel.endswith("model.pt") for rel in pulled) and any(rel.endswith(".npy") for rel in pulled)
    assert "data/synthetic_tiny/frames/index.csv" in pulled

    # The pulled outputs are exactly what this commit's code, config and params produce.
    assert _dvc("status", "-q", cwd=clone, ok=False).returncode == 0

    # Unlucky mtimes alone would retrain: the very problem the touch step exists for.
    _scramble_mtimes(clone, after_ns)
    assert _planned(clone, "results/table6.tex")["train"] == 2

    time.sleep(max(0.0, (after_ns + 100_000_000) / 1e9 - time.time()))  # touch later than any stamp
    _snakemake("--touch", "--cores", "1", "results/table6.tex", *PRESET, cwd=clone)
    assert _planned(clone, "results/table6.tex") == Counter()
    assert _planned(clone, "checkpoints") == Counter()
    assert _tree(clone) == pulled  # touching changed timestamps only

    # --- the normal flow still reruns what it must.
    # New frames (content, not just a timestamp: Snakemake >= 9.18 compares checksums) retrain
    # both variants and redo their evaluations and the table, but not the extraction.
    index = clone / "data/synthetic_tiny/frames/index.csv"
    saved = index.stat()
    index.write_bytes(pulled["data/synthetic_tiny/frames/index.csv"] + b"\n")
    assert _planned(clone, "results/table6.tex") == Counter(train=2, evaluate=2, table6=1)
    index.write_bytes(pulled["data/synthetic_tiny/frames/index.csv"])
    os.utime(index, ns=(saved.st_atime_ns, saved.st_mtime_ns))
    # A deleted checkpoint is retrained (the `checkpoints` target is what dvc.yaml's train stage runs).
    model = clone / "results/checkpoints/synthetic_tiny/split1/single/model.pt"
    model.unlink()
    planned = _planned(clone, "checkpoints")
    assert planned["train"] == 1 and set(planned) <= {"train", "checkpoints"}
    model.write_bytes(pulled[str(model.relative_to(clone))])
    # A config change is caught by DVC, which also guards the touch step above.
    with (clone / "config/config.yaml").open("a") as f:
        f.write("train: {epochs: 3}\n")
    assert _dvc("status", "-q", cwd=clone, ok=False).returncode != 0
    assert "train:" in _dvc("status", cwd=clone).stdout
