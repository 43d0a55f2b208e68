"""A full or failing disk during extraction (docs/reliability.md, "Full disk and damaged files"):
the run stops with one line naming the file, the free space and the fix (exit 2; under
Snakemake the extract_chunk job's log ends with it); nothing is recorded for the video being
written; a rerun after freeing space decodes exactly the missing videos and ends with the
store an uninterrupted extraction writes, byte for byte. The disk fills at the fault point
`store.write` (asnet.faults: the OSError of a full disk) and, where this machine lets the test
mount a tmpfs, for real."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from test_faults import (
    DATASET,
    REPO,
    SNAKEMAKE,
    TARGET_INDEX,
    TINY,
    _cli,
    _corrupt,
    _decoded,
    _prepared,
    _store,
)

from asnet import paths

CHUNK0 = paths.frames_chunk_dir(DATASET, 0)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """sha256 of every file of an uninterrupted extraction's store (test_faults' 4 bad videos)."""
    work = _prepared(tmp_path_factory.mktemp("reference"))
    _cli(work, "extract", "--dataset", DATASET)
    return _store(work)


def _error_line(proc: subprocess.CompletedProcess, command: str = "extract") -> str:
    """The one `asnet <command>: error:` line of a failed run (exit 2), no traceback."""
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith(f"asnet {command}: error:")]
    assert len(lines) == 1 and proc.stderr.rstrip("\n").endswith(lines[0]), proc.stderr[-3000:]
    return lines[0]


def _failed_video(line: str) -> str:
    path = line.split("cannot write ", 1)[1].split(":", 1)[0]
    assert path.startswith(f"data/{DATASET}/frames/") and path.endswith(".npy"), line
    return Path(path).name.removesuffix(".npy").removesuffix(".boxes")


def _recorded(work: Path, chunk: int = 0) -> set[str]:
    """Videos with a done marker or a row in chunk `chunk`'s index."""
    done = {p.stem for p in (work / paths.frames_done_dir(DATASET)).glob("*.json")}
    index = work / paths.frames_chunk_dir(DATASET, chunk) / "index.csv"
    rows = set(pd.read_csv(index)["video"]) if index.exists() else set()
    return done | rows


def _no_temp_files(work: Path) -> None:
    left = [p.name for p in (work / "data" / DATASET).rglob("*") if ".tmp" in p.name]
    assert not left, left


@pytest.mark.parametrize("action, reason", [("enospc", "the disk is full"),
                                            ("eio", "the disk reports an I/O error")])
def test_full_disk_stops_extraction_and_a_rerun_decodes_exactly_the_missing_videos(
    reference: dict[str, str], tmp_path: Path, action: str, reason: str
) -> None:
    """The 5th store write of chunk 0 fails (its 3rd video written: 1 excluded before it, 2 in
    place): exit 2, one line naming that file, its free space and the fix; no marker or index
    row for it, no temp file; the rerun decodes the 6 missing videos of chunk 0 and all of
    chunk 1 (never reached) and the store equals the uninterrupted run's."""
    work = _prepared(tmp_path)
    failed = _cli(work, "extract", "--dataset", DATASET, env={"ASNET_FAULT": f"store.write@5:{action}"}, check=False)
    line = _error_line(failed)
    assert f"{reason} (" in line and " free there); free space" in line and "run the same command again" in line
    victim = _failed_video(line)
    recorded = _recorded(work)
    assert victim not in recorded and len(recorded) == 3, (victim, recorded)  # 1 excluded + 2 stored
    assert not (work / paths.frames_dir(DATASET) / f"{victim}.npy").exists()
    assert victim not in (work / CHUNK0 / "bad_videos.csv").read_text()
    _no_temp_files(work)
    if action == "eio":
        return
    rerun = _cli(work, "extract", "--dataset", DATASET)
    assert _decoded(rerun.stdout) == {0: (6, 3), 1: (9, 0)}, rerun.stdout
    assert _store(work) == reference


def test_video_excluded_by_an_earlier_release_for_a_failed_write_is_decoded_again(
    reference: dict[str, str], tmp_path: Path
) -> None:
    """Releases that took a full disk for a decode error recorded the video as excluded
    ("decode error: N requested and M written") with its marker: a rerun decodes it again."""
    work = _prepared(tmp_path)
    _cli(work, "extract", "--dataset", DATASET)
    index_path = work / CHUNK0 / "index.csv"
    index = pd.read_csv(index_path, keep_default_na=False)
    victim = index.loc[index["status"] == "ok", "video"].iloc[0]
    row = {**index.set_index("video").loc[victim].to_dict(), "video": victim, "frames": 0, "height": 0, "width": 0,
           "status": "excluded", "reason": "decode error: 998400 requested and 208768 written"}
    index.loc[index["video"] == victim, list(row)] = list(row.values())
    index.to_csv(index_path, index=False)
    (work / paths.frames_done_dir(DATASET) / f"{victim}.json").write_text(json.dumps(row))
    for f in (work / paths.frames_dir(DATASET)).glob(f"{victim}.*"):
        f.unlink()
    rerun = _cli(work, "extract", "--dataset", DATASET)
    assert _decoded(rerun.stdout) == {0: (1, 8), 1: (0, 9)}, rerun.stdout
    assert _store(work) == reference


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def test_a_really_full_disk(reference: dict[str, str], tmp_path: Path) -> None:
    """The frame store on a 1 MiB tmpfs (the tiny store needs ~2.5 MiB): the extraction stops
    with the one line; after growing the tmpfs the rerun decodes exactly the videos without a
    marker and ends with the uninterrupted run's store."""
    work = _prepared(tmp_path)
    frames = work / paths.frames_dir(DATASET)
    if not _mount_tmpfs(frames, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    try:
        failed = _cli(work, "extract", "--dataset", DATASET, check=False)
        line = _error_line(failed)
        assert "the disk is full" in line, line
        victim = _failed_video(line)
        done = {p.stem for p in (work / paths.frames_done_dir(DATASET)).glob("*.json")}
        assert victim not in done and done, done
        _no_temp_files(work)
        subprocess.run(["mount", "-o", "remount,size=16m", str(frames)], check=True)
        rerun = _cli(work, "extract", "--dataset", DATASET)
        decoded = _decoded(rerun.stdout)
        assert sum(n for n, _ in decoded.values()) == 18 - len(done), (decoded, done)
        assert sum(d for _, d in decoded.values()) == len(done), (decoded, done)
        assert _store(work) == reference
    finally:
        subprocess.run(["umount", str(frames)], check=False)


@pytest.mark.slow
def test_snakemake_extract_chunk_job_ends_its_log_with_the_full_disk_line(
    reference: dict[str, str], tmp_path: Path
) -> None:
    """Under Snakemake the failing extract_chunk job's log ends with the one line; a plain
    rerun (after freeing space) completes with the uninterrupted run's store."""
    work = tmp_path
    base = SNAKEMAKE + ["--directory", str(work), "--cores", "1"]
    subprocess.run(base + [str(paths.manifest(DATASET, 1)), "--config", *TINY], cwd=REPO, check=True,
                   capture_output=True, timeout=300)
    _corrupt(work)
    failed = subprocess.run(base + [TARGET_INDEX, "--config", *TINY], cwd=REPO, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "ASNET_FAULT": "store.write@3:enospc"})
    assert failed.returncode != 0 and "Error in rule extract_chunk" in failed.stdout + failed.stderr
    logs = [work / "results/logs" / DATASET / f"extract_chunk{k}.log" for k in (0, 1)]
    last = [p.read_text().rstrip("\n").splitlines()[-1] for p in logs if p.exists()]
    ends = [line for line in last if line.startswith("asnet extract-chunk: error: cannot write ")]
    assert len(ends) == 1 and "the disk is full" in ends[0], last
    rerun = subprocess.run(base + [TARGET_INDEX, "--config", *TINY], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert _store(work) == reference
