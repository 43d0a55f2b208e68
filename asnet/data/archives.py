"""Unpacking the official UCF-101 and HMDB-51 archives, resumably, with a count check.

The official downloads are RAR archives (plus one zip):

* ``UCF101.rar`` holds ``UCF-101/<Class>/v_*.avi``; ``UCF101TrainTestSplits-RecognitionTask.zip``
  holds ``ucfTrainTestlist/``.
* ``hmdb51_org.rar`` holds 51 archives ``<class>.rar``, each with ``<class>/<video>.avi``;
  ``test_train_splits.rar`` holds ``testTrainMulti_7030_splits/<class>_test_split<k>.txt``.

Tool: ``unar`` (The Unarchiver's command-line tool; ``apt-get install unar``, ``brew install
unar``). It is in Debian main, reads RAR4 and RAR5 as well as zip, 7z and tar, and detects the
format from the content, so one tool covers every official file. The alternatives fall short
here: Debian's ``7zip`` ships without its RAR codec (``7zz i`` lists no Rar; RAR support is the
non-free ``7zip-rar``), ``unrar``/``rar`` are non-free (not in the archive areas this machine
uses), libarchive's ``bsdtar`` has only partial RAR support, and PyPI ``rarfile`` only wraps
one of these tools for decompression.

Resumability: each archive (and, for HMDB-51, each inner class archive) is one unit. A unit is
unpacked into ``<out_dir>/.partial-<name>/`` and renamed into place only when complete, with a
marker ``.unpacked.json`` (source name, size, mtime) inside; so a folder in place is a finished
unit, a rerun skips it, and a leftover ``.partial-*`` folder (a killed run) is discarded and
redone.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MARKER = ".unpacked.json"
DEFAULT_TOOL = "unar"
INSTALL_HINT = "install it with `apt-get install unar` (Debian/Ubuntu) or `brew install unar` (macOS)"

UCF101_EXPECTED: tuple[int, int] = (13_320, 101)
HMDB51_EXPECTED: tuple[int, int] = (6_766, 51)

# Folder names the official archives unpack to, by dataset kind: (videos, split lists).
UNPACKED_NAMES: dict[str, tuple[str, str]] = {
    "ucf101": ("UCF-101", "ucfTrainTestlist"),
    "hmdb51": ("hmdb51", "testTrainMulti_7030_splits"),
}
_HMDB_INNER = "hmdb51_org"  # folder of the 51 class archives, deleted once all are unpacked


class ArchiveError(ValueError):
    """An archive is missing, unreadable, laid out unexpectedly, or conflicts with earlier output.

    A ValueError (bad input, like SplitFormatError) so the CLI reports it as a one-line error.
    """


class ToolNotFoundError(ArchiveError):
    """The unpacking tool is not installed."""


class CountMismatchError(ValueError):
    """An unpacked dataset does not have the expected number of videos or classes."""


def find_tool(tool: str | Path = DEFAULT_TOOL) -> Path:
    """Absolute path of the unpacking tool (a name on PATH or a path); clear error if absent."""
    found = shutil.which(str(tool))
    if found is None:
        raise ToolNotFoundError(
            f"archive tool {str(tool)!r} not found (it unpacks the official RAR/zip archives); {INSTALL_HINT}"
        )
    return Path(found)


def unpacked_dirs(kind: str, out_dir: Path) -> tuple[Path, Path]:
    """Where :func:`unpack_ucf101` / :func:`unpack_hmdb51` put (videos root, split lists) under out_dir."""
    if kind not in UNPACKED_NAMES:
        raise ValueError(f"no official archives for dataset kind {kind!r}; expected one of {sorted(UNPACKED_NAMES)}")
    videos, splits = UNPACKED_NAMES[kind]
    return Path(out_dir) / videos, Path(out_dir) / splits


def _stamp(archive: Path) -> dict[str, Any]:
    st = archive.stat()
    return {"source": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _check_marker(target: Path, archive: Path) -> None:
    """Accept an existing ``target`` as finished output of ``archive``, or say why not."""
    marker = target / MARKER
    if not archive.is_file():
        return  # archive deleted after unpacking: the finished folder stands on its own
    if not marker.is_file():
        log.warning(
            "%s exists but has no %s (not unpacked by asnet); using it as is. Delete it to unpack %s again.",
            target, MARKER, archive,
        )
        return
    old = json.loads(marker.read_text())
    new = _stamp(archive)
    if old.get("size") != new["size"]:
        raise ArchiveError(
            f"{target} was unpacked from {old.get('source')} of {old.get('size')} bytes, but {archive} has "
            f"{new['size']} bytes; delete {target} to unpack the new archive, or point the config at the old one"
        )
    if old.get("mtime_ns") != new["mtime_ns"]:
        # same size, new mtime: most likely a copy of the same file (cp without -p); re-unpacking
        # gigabytes for that would be a waste, so only say so
        log.warning("%s: modification time differs from when %s was unpacked; keeping %s", archive, target, target)


def _run_tool(exe: Path, archive: Path, dest: Path) -> None:
    # -D: no extra containing folder (we pick the expected folder ourselves); -nr: never unpack
    # archives found inside (HMDB's class archives are unpacked one by one, resumably)
    cmd = [str(exe), "-quiet", "-force-overwrite", "-no-directory", "-no-recursion",
           "-output-directory", str(dest), str(archive)]
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    if proc.returncode != 0:
        detail = " ".join((proc.stdout + proc.stderr).split())[-400:]
        raise ArchiveError(
            f"{archive}: {exe.name} failed (exit {proc.returncode}): {detail}. The archive may be incomplete "
            "or corrupt: compare its size with the official download, re-download it and rerun "
            "(finished parts are kept)"
        )


def _locate(tmp: Path, name: str, archive: Path, flat_ok: bool) -> Path:
    """The unpacked folder to move into place: ``tmp/name``, or ``tmp`` itself for a flat archive."""
    if (tmp / name).is_dir():
        return tmp / name
    entries = sorted(p.name for p in tmp.iterdir())
    if flat_ok and entries and all((tmp / e).is_file() for e in entries):
        return tmp
    shown = ", ".join(entries[:10]) or "nothing"
    raise ArchiveError(
        f"{archive}: expected a top-level folder {name}/ inside, found {shown}; "
        "is this the official archive?"
    )


def unpack_archive(
    archive: Path, out_dir: Path, name: str, tool: str | Path = DEFAULT_TOOL, flat_ok: bool = False
) -> tuple[Path, bool]:
    """Unpack the folder ``name`` of ``archive`` to ``out_dir/name``, as one resumable unit.

    With ``flat_ok``, an archive holding only files (no folder) becomes ``out_dir/name``.
    Returns (``out_dir/name``, whether it was unpacked by this call). A finished unit is
    skipped without running the tool.
    """
    archive, out_dir = Path(archive), Path(out_dir)
    target, tmp = out_dir / name, out_dir / f".partial-{name}"
    if target.exists():
        _check_marker(target, archive)
        if tmp.exists():
            shutil.rmtree(tmp)  # a run killed after the rename, before its clean-up
        return target, False
    if not archive.is_file():
        raise ArchiveError(f"archive not found: {archive}; check the `archive`/`splits_archive` path in the config")
    exe = find_tool(tool)
    out_dir.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        # left by a killed run; the tool cannot resume inside an archive, so start this unit over
        shutil.rmtree(tmp)
    tmp.mkdir()
    log.info("unpacking %s to %s", archive, target)
    _run_tool(exe, archive, tmp)
    src = _locate(tmp, name, archive, flat_ok)
    (src / MARKER).write_text(json.dumps(_stamp(archive), sort_keys=True) + "\n")
    src.rename(target)  # same filesystem: atomic, so `target` exists only when complete
    if src != tmp:
        shutil.rmtree(tmp)
    return target, True


def count_videos(root: Path) -> tuple[int, int]:
    """(number of ``.avi`` files in ``root/<class>/``, number of class folders holding any)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a directory")
    n_videos = n_classes = 0
    for folder in root.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue  # .partial-* and other hidden folders are not classes
        n = sum(1 for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".avi")
        n_videos += n
        n_classes += n > 0
    return n_videos, n_classes


def check_counts(
    root: Path, expected: tuple[int, int], name: str, strict: bool = False
) -> list[str]:
    """Compare :func:`count_videos` of ``root`` with ``expected`` (videos, classes).

    Returns the problems found (empty when all is well); logs them as a warning, or with
    ``strict`` raises :class:`CountMismatchError` naming them.
    """
    n_videos, n_classes = count_videos(root)
    want_videos, want_classes = expected
    problems = []
    if n_videos != want_videos:
        problems.append(f"{n_videos:,} videos, expected {want_videos:,}")
    if n_classes != want_classes:
        problems.append(f"{n_classes:,} class folders with videos, expected {want_classes:,}")
    if not problems:
        return problems
    message = (
        f"{name} at {root}: " + "; ".join(problems) + ". The archive may be truncated (compare its size "
        f"with the official download) or {root} may hold other files; to unpack again, delete {root}"
    )
    if n_videos == 0:
        message += f"; no <class>/<video>.avi found directly under {root}: is it the folder of class folders?"
    if strict:
        raise CountMismatchError(message)
    log.warning("%s", message)
    return problems


def _summary(root: Path, splits: Path, unpacked: list[str], skipped: list[str],
             expected: tuple[int, int] | None, name: str, strict: bool) -> dict[str, Any]:
    n_videos, n_classes = count_videos(root)
    problems = check_counts(root, expected, name, strict) if expected is not None else []
    return {"root": root, "splits_dir": splits, "n_videos": n_videos, "n_classes": n_classes,
            "unpacked": unpacked, "skipped": skipped, "problems": problems}


def unpack_ucf101(
    rar: Path, splits_zip: Path, out_dir: Path, *, tool: str | Path = DEFAULT_TOOL,
    expected: tuple[int, int] | None = UCF101_EXPECTED, strict: bool = False,
) -> dict[str, Any]:
    """Unpack ``UCF101.rar`` and the split zip to ``out_dir/UCF-101`` and ``out_dir/ucfTrainTestlist``.

    Returns ``root``, ``splits_dir``, ``n_videos``, ``n_classes``, ``unpacked`` / ``skipped``
    (units done by this call / found finished) and ``problems`` of the count check against
    ``expected`` (videos, classes); ``None`` skips the check.
    """
    videos_name, splits_name = UNPACKED_NAMES["ucf101"]
    unpacked: list[str] = []
    skipped: list[str] = []
    for archive, name in ((Path(rar), videos_name), (Path(splits_zip), splits_name)):
        _, did = unpack_archive(archive, Path(out_dir), name, tool)
        (unpacked if did else skipped).append(name)
    root, splits = unpacked_dirs("ucf101", out_dir)
    return _summary(root, splits, unpacked, skipped, expected, "UCF-101", strict)


def unpack_hmdb51(
    rar: Path, splits_rar: Path, out_dir: Path, *, tool: str | Path = DEFAULT_TOOL,
    expected: tuple[int, int] | None = HMDB51_EXPECTED, strict: bool = False,
    keep_class_archives: bool = False,
) -> dict[str, Any]:
    """Unpack ``hmdb51_org.rar`` (an archive of per-class archives) and ``test_train_splits.rar``.

    Videos end up in ``out_dir/hmdb51/<class>/<video>.avi``, lists in
    ``out_dir/testTrainMulti_7030_splits/``. The outer archive is unpacked to
    ``out_dir/hmdb51_org/`` first, then every ``<class>.rar`` is its own resumable unit; when all
    are done a marker on ``out_dir/hmdb51`` makes reruns skip everything, and the class archives
    are deleted unless ``keep_class_archives``. Returns the same keys as :func:`unpack_ucf101`.
    """
    rar, out_dir = Path(rar), Path(out_dir)
    root, splits = unpacked_dirs("hmdb51", out_dir)
    unpacked: list[str] = []
    skipped: list[str] = []
    _, did = unpack_archive(Path(splits_rar), out_dir, splits.name, tool)
    (unpacked if did else skipped).append(splits.name)
    if (root / MARKER).is_file():
        _check_marker(root, rar)
        skipped.append(root.name)
        return _summary(root, splits, unpacked, skipped, expected, "HMDB-51", strict)
    if not rar.is_file():
        raise ArchiveError(f"archive not found: {rar}; check the `archive` path in the config")
    inner, did = unpack_archive(rar, out_dir, _HMDB_INNER, tool, flat_ok=True)
    (unpacked if did else skipped).append(_HMDB_INNER)
    class_archives = sorted(p for p in inner.iterdir() if p.is_file() and p.suffix.lower() == ".rar")
    if not class_archives:
        raise ArchiveError(
            f"{rar}: expected per-class archives <class>.rar inside (unpacked to {inner}), found none; "
            f"is this hmdb51_org.rar? Delete {inner} after fixing"
        )
    for class_rar in class_archives:
        # each inner archive holds <class>/<video>.avi; a flat one (just the videos) is accepted too
        _, did = unpack_archive(class_rar, root, class_rar.stem, tool, flat_ok=True)
        (unpacked if did else skipped).append(class_rar.stem)
    (root / MARKER).write_text(json.dumps({**_stamp(rar), "classes": len(class_archives)}, sort_keys=True) + "\n")
    if not keep_class_archives:
        shutil.rmtree(inner)  # ~2 GB of duplicates; the marker on `root` now stands for them
    return _summary(root, splits, unpacked, skipped, expected, "HMDB-51", strict)
