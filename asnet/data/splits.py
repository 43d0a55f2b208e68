"""Parsing of official train/test split lists and building of per-split manifests.

UCF-101 (and our synthetic set, which shares its layout) ships ``classInd.txt`` plus
``trainlist0{1,2,3}.txt`` / ``testlist0{1,2,3}.txt``. Copies in the wild differ in small
ways (CRLF vs LF, final newline, a label column on test lists, the letter case of
``HandstandPushups``), so parsing is tolerant of those and strict about everything else:
any line it cannot make sense of is an error naming the file and line number.

HMDB-51 ships ``<class>_test_split<k>.txt`` files with lines ``<video>.avi <flag>``
(1 train, 2 test, 0 unused).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pandas as pd

from asnet import paths

log = logging.getLogger(__name__)

MANIFEST_COLUMNS: tuple[str, ...] = ("video", "path", "label", "class_name", "subset")
_MAX_LISTED = 20


class SplitFormatError(ValueError):
    """A split list or class index is malformed or inconsistent."""


class SplitFileNotFound(FileNotFoundError):
    """A split list (or the class index) the dataset's layout needs is not in the folder given."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _not_found(path: Path) -> SplitFileNotFound:
    """The error for a missing split file, pointing at a subfolder that holds it: a common
    mistake is naming the download's parent folder instead of ucfTrainTestlist/."""
    near = sorted(d for d in path.parent.iterdir() if (d / path.name).is_file()) if path.parent.is_dir() else []
    hint = f" ({path.name} is in {near[0]}: is that the split lists' folder?)" if near else ""
    return SplitFileNotFound(f"split file not found: {path}{hint}", path)


class MissingVideosError(ValueError):
    """Videos listed in a split are not present under the dataset root."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines as (1-based line number, stripped text), tolerant of CRLF/LF/BOM."""
    if not path.is_file():
        raise _not_found(path)
    text = path.read_text(encoding="utf-8-sig")
    # splitlines() handles \r\n, \n and a missing final newline alike
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _check_split(split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"split must be 1, 2 or 3, got {split!r}")


def read_class_index(path: Path) -> dict[int, str]:
    """Read ``classInd.txt`` (``<index 1..n> <ClassName>`` per line) into ``{index: name}``."""
    path = Path(path)
    classes: dict[int, str] = {}
    seen: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise SplitFormatError(f"{path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        idx, name = int(parts[0]), parts[1]
        if idx in classes:
            raise SplitFormatError(f"{path}:{lineno}: class index {idx} appears twice")
        # class folders are matched case-insensitively, so names must differ beyond case
        if name.lower() in seen:
            raise SplitFormatError(
                f"{path}:{lineno}: class {name!r} duplicates class index {seen[name.lower()]}"
            )
        classes[idx] = name
        seen[name.lower()] = idx
    if not classes:
        raise SplitFormatError(f"{path}: no classes found")
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise SplitFormatError(f"{path}: class indices must be 1..{len(classes)} without gaps")
    return classes


def _parse_ucf_list(
    path: Path, classes: dict[int, str], subset: str, by_lower: dict[str, int]
) -> list[dict[str, object]]:
    """Parse one UCF-style list; ``subset`` is 'train' or 'test'."""
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for lineno, line in _read_lines(path):
        parts = line.split()
        if len(parts) > 2:
            raise SplitFormatError(f"{path}:{lineno}: expected '<Class>/<video>.avi [label]', got {line!r}")
        rel = parts[0].replace("\\", "/")
        pieces = rel.split("/")
        if len(pieces) != 2 or not pieces[0] or not pieces[1].lower().endswith(".avi"):
            raise SplitFormatError(
                f"{path}:{lineno}: expected a path '<Class>/<video>.avi', got {parts[0]!r}"
            )
        folder, filename = pieces
        idx = by_lower.get(folder.lower())
        if idx is None:
            raise SplitFormatError(f"{path}:{lineno}: class folder {folder!r} is not in classInd.txt")
        if len(parts) == 2:
            # train lists carry the 1-based label; some copies of the test lists do too
            if not parts[1].isdigit():
                raise SplitFormatError(f"{path}:{lineno}: label {parts[1]!r} is not a positive integer")
            listed = int(parts[1])
            if listed != idx:
                listed_name = classes.get(listed, "<no such class>")
                raise SplitFormatError(
                    f"{path}:{lineno}: label {listed} ({listed_name}) disagrees with the class folder "
                    f"{folder!r} (index {idx} in classInd.txt)"
                )
        stem = filename[: -len(".avi")]
        if stem in seen:
            raise SplitFormatError(f"{path}:{lineno}: video {stem} is already listed on line {seen[stem]}")
        seen[stem] = lineno
        rows.append(
            {
                "video": stem,
                "path": rel,
                "label": idx - 1,
                "class_name": classes[idx],
                "subset": subset,
                "_where": f"{path}:{lineno}",
            }
        )
    return rows


def _finish(rows: list[dict[str, object]]) -> pd.DataFrame:
    """Reject videos in both subsets, then build the frame with the manifest columns."""
    first: dict[str, dict[str, object]] = {}
    for row in rows:
        other = first.get(str(row["video"]))
        if other is not None:
            raise SplitFormatError(
                f"video {row['video']} is listed twice: {other['_where']} ({other['subset']}) "
                f"and {row['_where']} ({row['subset']})"
            )
        first[str(row["video"])] = row
    df = pd.DataFrame(rows, columns=[*MANIFEST_COLUMNS, "_where"]).drop(columns="_where")
    df["label"] = df["label"].astype("int64")
    return df


def parse_ucf101_split(splits_dir: Path, split: int) -> pd.DataFrame:
    """Parse UCF-101 style lists for ``split`` (1..3) into a DataFrame.

    Columns: video (stem), path (``Class/v_..._gXX_cYY.avi`` as listed), label (0-based),
    class_name (as in classInd.txt), subset ('train' | 'test'); train rows come first.
    """
    _check_split(split)
    splits_dir = Path(splits_dir)
    classes = read_class_index(splits_dir / "classInd.txt")
    by_lower = {name.lower(): idx for idx, name in classes.items()}
    rows = _parse_ucf_list(splits_dir / f"trainlist0{split}.txt", classes, "train", by_lower)
    rows += _parse_ucf_list(splits_dir / f"testlist0{split}.txt", classes, "test", by_lower)
    return _finish(rows)


_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")


def parse_hmdb51_split(splits_dir: Path, split: int) -> pd.DataFrame:
    """Parse HMDB-51 ``<class>_test_split<k>.txt`` files for ``split`` (1..3).

    Labels are 0-based in alphabetical class order (the convention of the common
    HMDB-51 pipelines); flag 0 (unused) videos are dropped. Same columns as
    :func:`parse_ucf101_split`, with ``path`` = ``<class>/<video>.avi``.
    """
    _check_split(split)
    splits_dir = Path(splits_dir)
    files: dict[str, Path] = {}
    for p in splits_dir.iterdir():
        m = _HMDB_FILE.match(p.name)
        if m and int(m["k"]) == split:
            files[m["cls"]] = p
    if not files:
        near = sorted(d for d in splits_dir.iterdir() if d.is_dir() and any(d.glob(f"*_test_split{split}.txt")))
        hint = f" (they are in {near[0]}: is that the split lists' folder?)" if near else ""
        raise SplitFileNotFound(f"{splits_dir}: no '<class>_test_split{split}.txt' files found{hint}", splits_dir)
    rows: list[dict[str, object]] = []
    for label, cls in enumerate(sorted(files)):
        path = files[cls]
        seen: dict[str, int] = {}
        for lineno, line in _read_lines(path):
            # video names may contain odd characters, so only the last token is the flag
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2 or parts[1] not in ("0", "1", "2") or not parts[0].lower().endswith(".avi"):
                raise SplitFormatError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>', got {line!r}")
            filename, flag = parts
            stem = filename[: -len(".avi")]
            if stem in seen:
                raise SplitFormatError(
                    f"{path}:{lineno}: video {stem} is already listed on line {seen[stem]}"
                )
            seen[stem] = lineno
            if flag == "0":
                continue
            rows.append(
                {
                    "video": stem,
                    "path": f"{cls}/{filename}",
                    "label": label,
                    "class_name": cls,
                    "subset": "train" if flag == "1" else "test",
                    "_where": f"{path}:{lineno}",
                }
            )
    df = _finish(rows)
    # train first, like the UCF parser, keeping class order within each subset
    return df.sort_values("subset", kind="stable", key=lambda s: s != "train").reset_index(drop=True)


class _FolderIndex:
    """Case-insensitive lookup of class folders and files under a dataset root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders: dict[str, str] = {}
        for p in root.iterdir():
            if not p.is_dir():
                continue
            key = p.name.lower()
            if key in self.folders:
                raise ValueError(
                    f"{root}: folders {self.folders[key]!r} and {p.name!r} differ only in letter case; "
                    "remove one of them"
                )
            self.folders[key] = p.name
        self._files: dict[str, dict[str, str]] = {}

    def resolve(self, rel: str) -> str | None:
        """Path relative to root as it exists on disk, or None."""
        folder, filename = rel.split("/", 1)
        actual_folder = self.folders.get(folder.lower())
        if actual_folder is None:
            return None
        if actual_folder not in self._files:
            self._files[actual_folder] = {
                p.name.lower(): p.name for p in (self.root / actual_folder).iterdir() if p.is_file()
            }
        actual_file = self._files[actual_folder].get(filename.lower())
        return None if actual_file is None else f"{actual_folder}/{actual_file}"


def _missing_message(missing: list[str], total: int, root: Path, split: int, dropped: bool,
                     allow: str = "pass allow_missing=True") -> str:
    shown = "\n".join(f"  {m}" for m in missing[:_MAX_LISTED])
    more = f"\n  ... and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    if dropped:
        advice = "They are dropped from the manifest (missing videos are allowed)."
    else:
        advice = (
            "Check that the root is the folder that directly holds the class folders "
            "(<root>/<ClassName>/<video>.avi) and that the download/extraction is complete, "
            f"or {allow} to drop the missing videos."
        )
    return f"{len(missing)} of {total} videos listed in split {split} are missing under {root}:\n{shown}{more}\n{advice}"


def parse_split(dataset: str, splits_dir: Path, split: int) -> pd.DataFrame:
    """The official lists of one split, every listed video (present on disk or not).

    ``dataset`` is 'ucf101' (also for the synthetic set, alias 'synthetic') or 'hmdb51'."""
    key = dataset.lower()
    if key in ("ucf101", "synthetic"):
        return parse_ucf101_split(splits_dir, split)
    if key == "hmdb51":
        return parse_hmdb51_split(splits_dir, split)
    raise ValueError(f"unknown dataset {dataset!r}; expected 'ucf101', 'synthetic' or 'hmdb51'")


def build_manifest(
    dataset: str, root: Path | None, splits_dir: Path, split: int, allow_missing: bool = False,
    allow_missing_advice: str = "pass allow_missing=True",
) -> pd.DataFrame:
    """Parse a split and, if ``root`` is given, check every listed video exists under it.

    ``dataset`` is 'ucf101' (also for the synthetic set, alias 'synthetic') or 'hmdb51'.
    Class folders and file names are matched case-insensitively and ``path`` is rewritten
    to the spelling found on disk. Missing videos raise :class:`MissingVideosError`, or
    with ``allow_missing`` are logged and dropped; ``allow_missing_advice`` is how the error
    tells the caller to allow them (the config key, the CLI flag or this argument).
    """
    df = parse_split(dataset, splits_dir, split)
    if root is None:
        return df
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist or is not a directory")
    index = _FolderIndex(root)
    resolved = [index.resolve(p) for p in df["path"]]
    missing = [p for p, r in zip(df["path"], resolved, strict=True) if r is None]
    listed_folders = {p.split("/", 1)[0].lower() for p in df["path"]}
    extra = sorted(name for low, name in index.folders.items() if low not in listed_folders)
    if extra:
        # not fatal (e.g. a subset of classes), but worth knowing about
        log.warning(
            "%d folders under %s are not in split %d: %s", len(extra), root, split, ", ".join(extra[:10])
        )
    if missing:
        if not allow_missing:
            raise MissingVideosError(
                _missing_message(missing, len(df), root, split, dropped=False, allow=allow_missing_advice), missing)
        log.warning("%s", _missing_message(missing, len(df), root, split, dropped=True))
    df = df.assign(path=resolved)
    df = df[df["path"].notna()].reset_index(drop=True)
    return df


def write_manifest(df: pd.DataFrame, out: Path) -> None:
    """Write a manifest CSV with columns video,path,label,class_name,subset."""
    absent = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if absent:
        raise ValueError(f"manifest is missing columns {absent}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.loc[:, list(MANIFEST_COLUMNS)].to_csv(out, index=False, lineterminator="\n")


def split_coverage(official: pd.DataFrame, manifest: pd.DataFrame, allow_missing: bool, synthetic: bool = False,
                   ) -> dict[str, object]:
    """How much of the official split lists a manifest holds: per subset, videos listed
    (official), present and missing, and classes present against the official classes.

    The official counts come from the split lists themselves, so a manifest reduced by
    ``allow_missing`` cannot pass for the full test set downstream."""
    record: dict[str, object] = {"allow_missing": bool(allow_missing), "synthetic": bool(synthetic)}
    for subset in ("train", "test"):
        listed = int((official["subset"] == subset).sum())
        present = int((manifest["subset"] == subset).sum())
        record[subset] = {"listed": listed, "present": present, "missing": listed - present}
    official_classes = sorted(set(official["class_name"]))
    train_classes = set(manifest.loc[manifest["subset"] == "train", "class_name"])
    record["classes"] = {
        "official": len(official_classes),
        "present": int(manifest["class_name"].nunique()),
        "with_train_videos": len(train_classes),
        "without_train_videos": [c for c in official_classes if c not in train_classes],
    }
    return record


def coverage_phrase(evaluated: int, official: int, allow_missing: bool | None = None) -> str:
    """"N of M official test videos", with allow_missing named when it made the difference."""
    note = " (allow_missing)" if allow_missing and evaluated < official else ""
    return f"{evaluated} of {official} official test videos{note}"


def read_coverage(manifest: Path) -> dict[str, object] | None:
    """The coverage record beside ``manifest``, or None where prepare wrote none (a manifest
    made by hand or by `asnet manifest`)."""
    path = paths.coverage_of(manifest)
    return json.loads(path.read_text()) if path.exists() else None
