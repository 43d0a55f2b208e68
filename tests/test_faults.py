"""Fault injection (issue 12, reruns and kills): kill -9 at named points of extraction and
training (asnet.faults) and at observed moments of evaluation, under the CLI and under
Snakemake, then rerun and compare every output with an uninterrupted run's (files byte for
byte, checkpoints by tensors). The tiny preset's 18 synthetic videos are extracted with 4 of
them made bad (empty, random bytes, two cut in half), 2 in each of its 2 chunks. docs/reliability.md
lists what is covered; keep it in step."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asnet import paths, stages
from asnet.config import load_config

REPO = Path(__file__).resolve().parents[1]
DATASET = "synthetic_tiny"
# The target set's frame index: the `frames` rule would also extract the pretraining source set,
# whose chunks would then hit the injected fault first.
TARGET_INDEX = f"data/{DATASET}/frames/index.csv"
TINY = ["preset=tiny"]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


@contextmanager
def _in(work: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(work)
    try:
        yield
    finally:
        os.chdir(old)


def _corrupt(work: Path) -> list[str]:
    """Make 4 of the videos bad, 2 in each of the tiny preset's 2 chunks; returns their ids."""
    manifest = pd.read_csv(work / paths.manifest(DATASET, 1)).sort_values("video").reset_index(drop=True)
    root = work / paths.raw_dir(DATASET) / "videos"
    bad = manifest.iloc[:4]
    (root / bad.iloc[0]["path"]).write_bytes(b"")
    (root / bad.iloc[1]["path"]).write_bytes(np.random.default_rng(0).bytes(3000))
    for i in (2, 3):
        data = (root / bad.iloc[i]["path"]).read_bytes()
        (root / bad.iloc[i]["path"]).write_bytes(data[: len(data) // 2])
    return bad["video"].tolist()


def _prepared(work: Path) -> Path:
    cfg = load_config(overrides=TINY)
    with _in(work):
        stages.prepare(cfg, DATASET, progress=False)
    _corrupt(work)
    return work


def _store(work: Path) -> dict[str, str]:
    """sha256 of every file of the frame store and of the merged bad_videos.csv."""
    data = work / "data" / DATASET
    files = sorted((data / "frames").rglob("*")) + [data / "bad_videos.csv"]
    return {str(f.relative_to(data)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.is_file()}


def _cli(work: Path, *args: str, env: dict[str, str] | None = None, check: bool = True,
         overrides: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "asnet.cli", *args, "--no-progress"]
    cmd += [a for o in TINY + list(overrides) for a in ("--set", o)]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _decoded(output: str, dataset: str = DATASET) -> dict[int, tuple[int, int]]:
    """{chunk: (decoded now, already done)} from extract_videos' summary lines of `dataset`
    (the `frames` target also extracts the preset's pretraining source set)."""
    found = re.findall(rf"\[frames\] data/{dataset}/frames_chunks/chunk(\d+)\S*: .*\((\d+) decoded now, (\d+) already done\)",
                       output)
    return {int(c): (int(n), int(d)) for c, n, d in found}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An uninterrupted extraction (CLI) and the hashes of its frame store."""
    work = _prepared(tmp_path_factory.mktemp("reference"))
    out = _cli(work, "extract", "--dataset", DATASET)
    assert _decoded(out.stdout) == {0: (9, 0), 1: (9, 0)}, out.stdout
    return work, _store(work)


# --------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------


def test_reference_extraction_has_bad_videos(reference: tuple[Path, dict[str, str]]) -> None:
    work, _ = reference
    index = pd.read_csv(work / paths.frames_index(DATASET), keep_default_na=False)
    counts = index["status"].value_counts().to_dict()
    assert counts == {"ok": 14, "repaired": 2, "excluded": 2}, counts  # the truncated AVIs keep 4 and 1 frames
    listed = set(index.loc[index["status"] != "excluded", "video"])
    stored = {p.name.removesuffix(".npy") for p in (work / paths.frames_dir(DATASET)).glob("*.npy")
              if not p.name.endswith(".boxes.npy")}
    assert stored == listed


def test_each_chunk_reports_its_own_bad_videos(reference: tuple[Path, dict[str, str]]) -> None:
    """Item 3: one bad_videos.csv per chunk (its own rows), merged into data/<dataset>/bad_videos.csv."""
    work, _ = reference
    merged = pd.read_csv(work / "data" / DATASET / "bad_videos.csv", keep_default_na=False)
    parts = []
    for chunk in (0, 1):
        cdir = work / paths.frames_chunk_dir(DATASET, chunk)
        index = pd.read_csv(cdir / "index.csv", keep_default_na=False)
        bad = pd.read_csv(cdir / "bad_videos.csv", keep_default_na=False)
        assert len(bad) >= 2, f"chunk {chunk} has 2 bad videos"
        assert set(bad["video"]) == set(index.loc[index["status"] != "ok", "video"])
        parts.append(bad)
    assert sorted(pd.concat(parts)["video"]) == sorted(merged["video"])
    assert not (work / "data" / DATASET / "frames_chunks" / "bad_videos.csv").exists()


def test_rerun_of_a_finished_extraction_decodes_nothing(
    reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Item 1: a second `asnet extract` decodes nothing (with a timeout no video could meet,
    as in the issue), changes no byte of the frame store, and removes arrays the index does
    not list; nor does a third with another chunking."""
    work = _prepared(tmp_path)
    _cli(work, "extract", "--dataset", DATASET)
    assert _store(work) == reference[1]
    frames = work / paths.frames_dir(DATASET)
    (frames / "gone.npy").write_bytes(b"an array of a video the index does not list")
    (frames / "gone.boxes.npy").write_bytes(b"its boxes")
    data = work / "data" / DATASET
    stamps = {f: f.stat().st_mtime_ns for f in data.rglob("*") if f.is_file() and not f.name.startswith("gone.")}
    again = _cli(work, "extract", "--dataset", DATASET, overrides=("frames.timeout_s=0.01",))
    assert _decoded(again.stdout) == {0: (0, 9), 1: (0, 9)}, again.stdout
    assert _store(work) == reference[1]
    # Not even a timestamp changes: Snakemake sees no newer input downstream.
    assert {f: f.stat().st_mtime_ns for f in stamps} == stamps
    rechunked = _cli(work, "extract", "--dataset", DATASET, overrides=("frames.chunks=3",))
    assert _decoded(rechunked.stdout) == {0: (0, 6), 1: (0, 6), 2: (0, 6)}, rechunked.stdout
    assert _store(work) == reference[1]


def test_cli_extraction_killed_mid_chunk_keeps_finished_videos(
    reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Item 2 (CLI): kill -9 after the 3rd video of chunk 0; the rerun decodes only the rest."""
    work = _prepared(tmp_path)
    killed = _cli(work, "extract", "--dataset", DATASET, env={"ASNET_FAULT": "extract.video_done@3:kill"}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    rerun = _cli(work, "extract", "--dataset", DATASET)
    assert _decoded(rerun.stdout) == {0: (6, 3), 1: (9, 0)}, rerun.stdout
    assert _store(work) == reference[1]


def _wait_for(path: Path | list[Path], text: str, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """The first of `path` (one or several files) in which `text` appears, while `proc` runs."""
    candidates = path if isinstance(path, list) else [path]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in candidates:
            if p.exists() and text in p.read_text(errors="replace"):
                return p
        assert proc.poll() is None, f"snakemake ended before {text!r} appeared in {candidates}"
        time.sleep(0.2)
    raise AssertionError(f"{text!r} never appeared in {candidates}")


@pytest.mark.slow
def test_snakemake_extraction_killed_mid_chunk_keeps_finished_videos(
    reference: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Item 2 (Snakemake): SIGKILL to Snakemake's whole process group while the first chunk
    Snakemake runs (it may pick either) is between its 3rd and 4th video; `--rerun-incomplete`
    then keeps the 3 finished videos."""
    work = tmp_path
    base = SNAKEMAKE + ["--directory", str(work), "--cores", "1"]
    subprocess.run(base + [str(paths.manifest(DATASET, 1)), "--config", *TINY], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    _corrupt(work)
    env = {**os.environ, "ASNET_FAULT": "extract.video_done@3:hang"}
    proc = subprocess.Popen(base + [TARGET_INDEX, "--config", *TINY], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        logs = [work / "results/logs" / DATASET / f"extract_chunk{k}.log" for k in (0, 1)]
        hung = logs.index(_wait_for(logs, "[fault] extract.video_done", proc))
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # A Snakemake killed with -9 leaves its lock: `--unlock` is the documented first step.
    subprocess.run(base + [TARGET_INDEX, "--unlock", "--config", *TINY], cwd=REPO, check=True, capture_output=True,
                   timeout=300)
    rerun = subprocess.run(base + [TARGET_INDEX, "--rerun-incomplete", "--config", *TINY], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    # 9 videos per chunk: the hung chunk keeps its 3, the other (one core: not started) decodes all.
    assert _decoded(rerun.stdout + rerun.stderr) == {hung: (6, 3), 1 - hung: (9, 0)}, rerun.stdout + rerun.stderr
    assert _store(work) == reference[1]


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

TRAIN = ["preset=tiny", "train.epochs=3"]
SPLIT, VARIANT = 1, "single"


def _files(root: Path) -> dict[str, bytes]:
    return {str(f.relative_to(root)): f.read_bytes() for f in sorted(root.rglob("*")) if f.is_file()}


def _assert_same_run(run: Path, ref: Path) -> None:
    """model.pt by tensors and history, dvclive/ byte for byte (it writes no timestamps)."""
    import torch

    from asnet.train import checkpoint

    got, want = checkpoint.load(run / "model.pt"), checkpoint.load(ref / "model.pt")
    assert got["model"].keys() == want["model"].keys()
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])
    assert got["history"] == want["history"]
    assert _files(run / "dvclive") == _files(ref / "dvclive")


@pytest.fixture(scope="module")
def train_reference(tiny_workdir: Path) -> Path:
    """An uninterrupted 3-epoch run of the tiny preset."""
    from asnet.train.loop import train_run

    ref = tiny_workdir / "faults_reference" / VARIANT
    with _in(tiny_workdir):
        cfg = load_config(overrides=TRAIN)
        train_run(cfg, paths.manifest(DATASET, SPLIT), paths.frames_dir(DATASET), ref, VARIANT, progress=False)
    return tiny_workdir / ref


@pytest.mark.slow
@pytest.mark.parametrize("point", ["train.state_saved@1", "train.epoch_logged@1", "train.state_saved@2",
                                   "train.epoch_logged@2"])
def test_training_killed_at_an_epoch_boundary_resumes_to_the_same_logs(
    tiny_workdir: Path, train_reference: Path, point: str
) -> None:
    """Item 4: kill -9 between (or after) an epoch's state save and its dvclive log; the
    resumed run's model and dvclive files equal the uninterrupted run's."""
    run = tiny_workdir / paths.run_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(run, ignore_errors=True)
    args = ["train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT]
    killed = _cli_train(tiny_workdir, args, {"ASNET_FAULT": f"{point}:kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (run / "state" / "last.pt").exists() and not (run / "model.pt").exists()
    resumed = _cli_train(tiny_workdir, args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_run(run, train_reference)


def _cli_train(work: Path, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "asnet.cli", *args, "--no-progress"] + [a for o in TRAIN for a in ("--set", o)]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})


# --------------------------------------------------------------------------------------
# Evaluation, and training + evaluation under Snakemake
# --------------------------------------------------------------------------------------

RUN = ["train", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT]
EVAL = ["evaluate", "--dataset", DATASET, "--split", str(SPLIT), "--variant", VARIANT]


@pytest.fixture(scope="module")
def run_reference(reference: tuple[Path, dict[str, str]]) -> dict[str, object]:
    """The tiny preset's single-stream run trained and evaluated uninterrupted (CLI) on the
    reference frames: its run folder and evaluation files."""
    work = reference[0]
    _cli(work, *RUN)
    _cli(work, *EVAL)
    return {"run": work / paths.run_dir(DATASET, SPLIT, VARIANT),
            "eval": _files(work / paths.eval_dir(DATASET, SPLIT, VARIANT))}


def _kill_when(proc: subprocess.Popen, path: Path, timeout: float = 300) -> bool:
    """SIGKILL `proc`'s process group as soon as `path` exists; False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.005)
    assert proc.poll() is not None, f"{path} never appeared"
    return False


@pytest.mark.slow
@pytest.mark.parametrize("when", ["eval folder created", "predictions.csv written"])
def test_cli_evaluation_killed_then_rerun_writes_the_same_files(
    reference: tuple[Path, dict[str, str]], run_reference: dict[str, object], when: str
) -> None:
    work = reference[0]
    out = work / paths.eval_dir(DATASET, SPLIT, VARIANT)
    shutil.rmtree(out)
    cmd = [sys.executable, "-m", "asnet.cli", *EVAL, "--no-progress"] + [a for o in TINY for a in ("--set", o)]
    proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    _kill_when(proc, out if when == "eval folder created" else out / "predictions.csv")
    _cli(work, *EVAL)
    assert _files(out) == run_reference["eval"]


@pytest.mark.slow
def test_snakemake_training_and_evaluation_killed_then_rerun_equal_an_uninterrupted_run(
    reference: tuple[Path, dict[str, str]], run_reference: dict[str, object], tmp_path: Path
) -> None:
    """kill -9 of the training job right after its first epoch's state is saved (Snakemake
    reports the failed job), then SIGKILL to Snakemake's process group while it evaluates;
    each rerun ends with the uninterrupted run's model, dvclive logs and evaluation files."""
    work = tmp_path
    base = SNAKEMAKE + ["--directory", str(work), "--cores", "1"]
    subprocess.run(base + [str(paths.manifest(DATASET, 1)), "--config", *TINY], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    _corrupt(work)
    target = [str(paths.eval_dir(DATASET, SPLIT, VARIANT) / "metrics.json"), "--config", *TINY]
    killed = subprocess.run(base + target, cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "ASNET_FAULT": "train.state_saved@1:kill"})
    assert killed.returncode != 0 and "Error in rule train" in killed.stdout + killed.stderr
    run = work / paths.run_dir(DATASET, SPLIT, VARIANT)
    assert (run / "state" / "last.pt").exists() and not (run / "model.pt").exists()

    proc = subprocess.Popen(base + target, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert _kill_when(proc, work / "results/logs" / DATASET / f"split{SPLIT}" / VARIANT / "evaluate.log")
    subprocess.run(base + ["--unlock", *target], cwd=REPO, check=True, capture_output=True, timeout=300)
    rerun = subprocess.run(base + ["--rerun-incomplete", *target], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming" in (work / "results/logs" / DATASET / f"split{SPLIT}" / VARIANT / "train.log").read_text()
    assert _store(work) == reference[1]
    _assert_same_run(run, run_reference["run"])
    assert _files(work / paths.eval_dir(DATASET, SPLIT, VARIANT)) == run_reference["eval"]


# --------------------------------------------------------------------------------------
# Bad input of this machinery
# --------------------------------------------------------------------------------------


def test_frame_store_of_other_settings_names_both_folders_to_delete(
    reference: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from asnet.config import ConfigError

    monkeypatch.chdir(reference[0])
    other = load_config(overrides=TINY + ["frames.short_side=32"])
    with pytest.raises(ConfigError, match=r"frames: .*short_side.*delete it and data/synthetic_tiny/frames_chunks"):
        stages.extract_chunk(other, DATASET, 0, progress=False)


def test_malformed_fault_spec_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from asnet.faults import fault_point

    monkeypatch.setenv("ASNET_FAULT", "extract.video_done@2:explode")
    with pytest.raises(ValueError, match=r"ASNET_FAULT=.*expected <point>\[@<n>\]:<action>, action one of kill"):
        fault_point("extract.video_done")
