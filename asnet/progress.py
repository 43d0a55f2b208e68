"""Progress lines a person follows while a job runs.

A long job (a training run, an evaluation, the anchor check, an extraction chunk) logs a
few concise lines marked `extra=CONSOLE`: one per epoch, one per tenth of the videos
evaluated, the decoder processes a chunk starts. Under Snakemake the job's log file gets
every record (each tqdm bar as one line, its last state: `BarLines`), and
workflow/scripts/stage.py also sends the marked ones
to the job's own stderr, which Snakemake prints on its console, prefixed with the job. From
the `asnet` command they are ordinary log lines on stderr.
"""

from __future__ import annotations

import logging
import re
from typing import IO

# The `extra` of a log record that also belongs on the console of a Snakemake run.
CONSOLE = {"console": True}
LINES_PER_PASS = 10  # progress lines of one pass over a list of videos (evaluation, anchor check)


def report_every(total: int, lines: int = LINES_PER_PASS) -> int:
    """Items between two progress lines of a pass over `total` items (at least 1)."""
    return max(1, -(-total // max(1, lines)))


def due(done: int, total: int, lines: int = LINES_PER_PASS) -> bool:
    """Whether a progress line is due after `done` of `total` items: every report_every
    items, and after the last."""
    return done == total or done % report_every(total, lines) == 0


class _Marked(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return bool(getattr(record, "console", False))


def console_handler(stream: IO[str], label: str) -> logging.Handler:
    """A handler writing the records marked CONSOLE to `stream` as `[label] message`
    (the job a line comes from, when several run side by side)."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_Marked())
    handler.setFormatter(logging.Formatter(f"[{label}] %(message)s"))
    return handler


def job_label(rule: str, wildcards: dict[str, str]) -> str:
    """`rule key=value ...`: a Snakemake job as its console lines name it."""
    return " ".join([rule, *(f"{k}={v}" for k, v in wildcards.items())])


class BarLines:
    """A log file as stderr, where a tqdm bar leaves one line (its last state) instead of a
    carriage-return redraw per update: tqdm writes "\r<state>" per refresh and, on close,
    "\n" (leave=True) or blanks (leave=False). Other text passes through."""

    def __init__(self, file: IO[str]) -> None:
        self.file = file
        self.line = ""  # what was written since the last \r or \n
        self.bar: str | None = None  # the bar's last drawn state

    def write(self, text: str) -> int:
        for piece in re.split(r"(\r|\n)", text):
            if piece == "\r":
                if self.line.strip():
                    self.bar = self.line
                elif self.line and self.bar:  # cleared at close: keep its last state
                    self._emit(self.bar)
                self.line = ""
            elif piece == "\n":
                self._emit(self.line if self.line.strip() else self.bar or self.line)
                self.line = ""
            else:
                self.line += piece
        return len(text)

    def _emit(self, line: str) -> None:
        self.file.write(line.rstrip() + "\n")
        self.bar = None

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if self.line.strip() or self.bar:
            self._emit(self.line if self.line.strip() else self.bar)
            self.line = ""
        self.file.flush()

    def fileno(self) -> int:  # a subprocess given this stream writes to the file itself
        self.flush()
        return self.file.fileno()

    def isatty(self) -> bool:
        return False
