"""The record of the videos a training run left out because their store files were unreadable.

A run writes ``<run_dir>/skipped_videos.csv`` (rank 0, atomically, before each epoch's resume
point) with one row per skipped video and epoch: the video, where it was skipped (``train`` or
``validation``), the epoch, the reason (the ``StoreError`` line), its store file and that
file's identity when it was skipped (size and mtime_ns, -1 when the file was missing). A
clean run writes no file.

The identity is what makes a repair visible: a file whose identity differs from the one
recorded at its last skip was replaced since. The workflow's planning bumps that video's
version in the store's version record (``asnet.stages.refresh_store_versions``), which the
train rule's params digest, and the run itself discards a resume point trained without it
(``stale_videos``): a repaired store file retrains every run that skipped it, from scratch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from asnet.disk import write_text_atomic

RECORD_NAME = "skipped_videos.csv"
COLUMNS = ("video", "where", "epoch", "reason", "file", "size", "mtime_ns")


def record_path(run_dir: Path) -> Path:
    """``<run_dir>/skipped_videos.csv``."""
    return Path(run_dir) / RECORD_NAME


def file_identity(path: str | Path) -> tuple[int, int]:
    """(size, mtime_ns) of `path`, or (-1, -1) when it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return -1, -1
    return int(st.st_size), int(st.st_mtime_ns)


def read_record(run_dir: Path) -> pd.DataFrame:
    """The run's record (an empty frame with COLUMNS when it skipped nothing)."""
    path = record_path(run_dir)
    if not path.is_file():
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_csv(path, dtype={"video": str, "where": str, "reason": str, "file": str},
                       keep_default_na=False)


def last_skips(run_dir: Path) -> dict[str, tuple[str, int, int]]:
    """{video: (file, size, mtime_ns)} at each recorded video's last skip."""
    df = read_record(run_dir)
    out: dict[str, tuple[str, int, int]] = {}
    for row in df.sort_values("epoch", kind="stable").itertuples(index=False):
        out[str(row.video)] = (str(row.file), int(row.size), int(row.mtime_ns))
    return out


def stale_videos(run_dir: Path) -> list[str]:
    """The recorded videos whose store file changed since their last skip (repaired, replaced
    or deleted): a resume point of this run was trained without what the store now holds."""
    return sorted(v for v, (file, size, mtime) in last_skips(run_dir).items()
                  if file_identity(file) != (size, mtime))


@dataclass
class SkipRecord:
    """The rows of a run's record: those of the epochs its resume point holds, then one per
    video skipped in each epoch trained now."""

    path: Path
    rows: list[dict] = field(default_factory=list)

    @classmethod
    def resume(cls, run_dir: Path, start_epoch: int) -> SkipRecord:
        """The record of a run that trains from `start_epoch`: rows of later epochs (written
        before a kill, and replayed now) are dropped; a fresh run starts empty."""
        df = read_record(run_dir)
        keep = df[df["epoch"].astype(int) < start_epoch] if start_epoch > 0 and len(df) else df.iloc[0:0]
        return cls(record_path(run_dir), keep.to_dict("records"))

    def add(self, rows: list[dict]) -> None:
        """Append rows made by `skip_row`."""
        self.rows.extend(rows)

    def write(self) -> None:
        """Write the record atomically (delete it when there is nothing to record)."""
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        df = pd.DataFrame(self.rows, columns=list(COLUMNS)).sort_values(["epoch", "where", "video"], kind="stable")
        write_text_atomic(self.path, df.to_csv(index=False))


def skip_row(video: str, where: str, epoch: int, reason: str, file: str | Path) -> dict:
    """One record row; the file's identity is taken now (when the skip was seen)."""
    size, mtime = file_identity(file)
    return {"video": str(video), "where": where, "epoch": int(epoch), "reason": str(reason), "file": str(file),
            "size": size, "mtime_ns": mtime}
