"""Unpacking the official archives with the real `unar` tool, on tiny archives in the real layouts.

The .rar files are real RAR 4.x archives with stored (uncompressed) entries, written by
`archive_fixtures.write_rar4` because the non-free `rar` tool is not available to create
them; HMDB-51's is a RAR of per-class RARs like `hmdb51_org.rar`. The UCF-101 split list
archive is a zip (as officially), created with `zipfile`; unar detects each format by content.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from archive_fixtures import hmdb51_archives, require_unar, ucf101_archives, write_rar4

from asnet.data.archives import (
    MARKER,
    ArchiveError,
    CountMismatchError,
    ToolNotFoundError,
    check_counts,
    count_videos,
    unpack_hmdb51,
    unpack_ucf101,
)

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "YoYo"]
HMDB_CLASSES = ["brush_hair", "cartwheel", "wave"]


@pytest.fixture(autouse=True)
def _unar() -> None:
    require_unar()


@pytest.fixture()
def ucf(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    return ucf101_archives(tmp_path / "downloads", UCF_CLASSES, per_class=3)


@pytest.fixture()
def hmdb(tmp_path: Path) -> tuple[Path, Path, dict[str, bytes]]:
    return hmdb51_archives(tmp_path / "downloads", HMDB_CLASSES, per_class=4)


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*"))}


def test_unpack_ucf101(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, videos = ucf
    out = tmp_path / "raw"
    got = unpack_ucf101(rar, zpath, out, expected=(9, 3), strict=True)
    assert got["root"] == out / "UCF-101" and got["splits_dir"] == out / "ucfTrainTestlist"
    assert (got["n_videos"], got["n_classes"], got["problems"]) == (9, 3, [])
    assert got["unpacked"] == ["UCF-101", "ucfTrainTestlist"] and got["skipped"] == []
    for rel, data in videos.items():
        assert (out / "UCF-101" / rel).read_bytes() == data
    assert (out / "ucfTrainTestlist" / "classInd.txt").read_text().startswith("1 ApplyEyeMakeup")
    marker = json.loads((out / "UCF-101" / MARKER).read_text())
    assert marker["source"] == "UCF101.rar" and marker["size"] == rar.stat().st_size
    # nothing half-done is left next to the results
    assert sorted(p.name for p in out.iterdir()) == ["UCF-101", "ucfTrainTestlist"]


def test_rerun_skips_finished_units(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, _ = ucf
    out = tmp_path / "raw"
    unpack_ucf101(rar, zpath, out, expected=(9, 3))
    before = _mtimes(out)
    # a tool that does not exist proves the second call never runs it
    got = unpack_ucf101(rar, zpath, out, tool=tmp_path / "no-such-unar", expected=(9, 3))
    assert got["unpacked"] == [] and got["skipped"] == ["UCF-101", "ucfTrainTestlist"]
    assert _mtimes(out) == before


def test_killed_run_leftover_is_redone(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, videos = ucf
    out = tmp_path / "raw"
    partial = out / ".partial-UCF-101" / "UCF-101" / "Archery"
    partial.mkdir(parents=True)
    (partial / "v_Archery_g01_c01.avi").write_bytes(b"truncated")
    got = unpack_ucf101(rar, zpath, out, expected=(9, 3))
    assert got["unpacked"] == ["UCF-101", "ucfTrainTestlist"]
    assert not (out / ".partial-UCF-101").exists()
    rel = "Archery/v_Archery_g01_c01.avi"
    assert (out / "UCF-101" / rel).read_bytes() == videos[rel]


def test_changed_archive_is_refused(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, _ = ucf
    out = tmp_path / "raw"
    unpack_ucf101(rar, zpath, out, expected=None)
    write_rar4(rar, {"UCF-101/Archery/v_new.avi": b"other"})
    with pytest.raises(ArchiveError, match=r"UCF-101 was unpacked from UCF101\.rar .* delete"):
        unpack_ucf101(rar, zpath, out, expected=None)


def test_unpack_hmdb51_nested(hmdb: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, splits, videos = hmdb
    out = tmp_path / "raw"
    got = unpack_hmdb51(rar, splits, out, expected=(12, 3), strict=True)
    assert got["root"] == out / "hmdb51"
    assert got["splits_dir"] == out / "testTrainMulti_7030_splits"
    assert (got["n_videos"], got["n_classes"]) == (12, 3)
    assert got["unpacked"] == ["testTrainMulti_7030_splits", "hmdb51_org", *HMDB_CLASSES]
    for rel, data in videos.items():
        assert (out / "hmdb51" / rel).read_bytes() == data
    assert len(list((out / "testTrainMulti_7030_splits").glob("*_test_split*.txt"))) == 9
    assert (out / "hmdb51" / MARKER).is_file()
    # the per-class archives are removed once all are unpacked
    assert sorted(p.name for p in out.iterdir()) == ["hmdb51", "testTrainMulti_7030_splits"]
    before = _mtimes(out)
    again = unpack_hmdb51(rar, splits, out, tool=tmp_path / "no-such-unar", expected=(12, 3))
    assert again["unpacked"] == [] and again["skipped"] == ["testTrainMulti_7030_splits", "hmdb51"]
    assert _mtimes(out) == before


def test_hmdb51_resumes_class_by_class(hmdb: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, splits, videos = hmdb
    out = tmp_path / "raw"
    unpack_hmdb51(rar, splits, out, expected=(12, 3), keep_class_archives=True)
    # the state of a run killed while unpacking class "cartwheel": no overall marker, that class
    # half-written in its temporary folder, the others finished
    (out / "hmdb51" / MARKER).unlink()
    shutil.move(out / "hmdb51" / "cartwheel", out / "hmdb51" / ".partial-cartwheel")
    done = {c: _mtimes(out / "hmdb51" / c) for c in ("brush_hair", "wave")}
    got = unpack_hmdb51(rar, splits, out, expected=(12, 3), strict=True)
    assert got["unpacked"] == ["cartwheel"]
    assert got["skipped"] == ["testTrainMulti_7030_splits", "hmdb51_org", "brush_hair", "wave"]
    assert {c: _mtimes(out / "hmdb51" / c) for c in ("brush_hair", "wave")} == done
    assert not (out / "hmdb51" / ".partial-cartwheel").exists()
    assert not (out / "hmdb51_org").exists()
    for rel, data in videos.items():
        assert (out / "hmdb51" / rel).read_bytes() == data


def test_count_check_names_what_is_off(
    ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rar, zpath, _ = ucf
    out = tmp_path / "raw"
    with caplog.at_level(logging.WARNING, logger="asnet.data.archives"):
        got = unpack_ucf101(rar, zpath, out)  # default: the real 13,320 videos / 101 classes
    assert got["problems"] == ["9 videos, expected 13,320", "3 class folders with videos, expected 101"]
    assert f"UCF-101 at {out / 'UCF-101'}: 9 videos, expected 13,320" in caplog.text
    with pytest.raises(CountMismatchError, match=r"8 videos, expected 9\. .*delete"):
        (out / "UCF-101" / "Archery" / "v_Archery_g01_c01.avi").unlink()
        check_counts(out / "UCF-101", (9, 3), "UCF-101", strict=True)


def test_count_videos_counts_only_class_folder_avis(tmp_path: Path) -> None:
    for rel in ("A/x.avi", "A/y.AVI", "A/notes.txt", "B/z.avi", ".partial-C/w.avi", "loose.avi"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "Empty").mkdir()
    assert count_videos(tmp_path) == (3, 2)
    with pytest.raises(CountMismatchError, match="0 videos, expected 1.*is it the folder of class folders"):
        check_counts(tmp_path / "Empty", (1, 1), "X", strict=True)


def test_missing_tool_says_how_to_install(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, _ = ucf
    with pytest.raises(ToolNotFoundError, match=r"no-such-unar.*apt-get install unar"):
        unpack_ucf101(rar, zpath, tmp_path / "raw", tool=tmp_path / "no-such-unar")


def test_corrupt_archive_is_a_clear_error(ucf: tuple[Path, Path, dict[str, bytes]], tmp_path: Path) -> None:
    rar, zpath, _ = ucf
    data = bytearray(rar.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside some video's data: its CRC no longer matches
    rar.write_bytes(bytes(data))
    out = tmp_path / "raw"
    with pytest.raises(ArchiveError, match=r"UCF101\.rar: unar failed .*re-download"):
        unpack_ucf101(rar, zpath, out)
    assert not (out / "UCF-101").exists()


def test_unexpected_layout_and_missing_archive(tmp_path: Path) -> None:
    rar = write_rar4(tmp_path / "UCF101.rar", {"videos/Archery/v_a.avi": b"x"})
    with pytest.raises(ArchiveError, match=r"expected a top-level folder UCF-101/ inside, found videos"):
        unpack_ucf101(rar, tmp_path / "missing.zip", tmp_path / "raw")
    with pytest.raises(ArchiveError, match=r"archive not found: .*missing\.rar"):
        unpack_ucf101(tmp_path / "missing.rar", tmp_path / "missing.zip", tmp_path / "raw")
