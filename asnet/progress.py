"""Progress lines a person follows while a job runs.

A long job (a training run, an evaluation, the anchor check, an extraction chunk) logs a
few concise lines marked `extra=CONSOLE`: one per epoch, one per tenth of the videos
evaluated, the decoder processes a chunk starts. Under Snakemake the job's log file gets
every record (with the tqdm bars), and workflow/scripts/stage.py also sends the marked ones
to the job's own stderr, which Snakemake prints on its console, prefixed with the job. From
the `asnet` command they are ordinary log lines on stderr.
"""

from __future__ import annotations

import logging
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
