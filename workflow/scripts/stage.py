"""The one Snakemake script: the stage of asnet.stage_table.STAGES whose row lists this
rule, run with the job's wildcards, first output and threads (what the `asnet` command of
that stage runs). Snakemake's merged config (config.yaml, --config, --configfile) is
resolved and validated here unchanged; logging and stderr go to the rule's log file, and
the progress lines (asnet.progress.CONSOLE: one per epoch, per tenth of an evaluation) also
to the job's own stderr, which Snakemake prints on its console.

An expected error (bad config, a missing or unreadable input: what `asnet` reports as one
line) ends the log with the line the CLI prints, its traceback above it for debugging, and
fails the job; any other exception is a bug and propagates as Snakemake shows it."""

import atexit
import logging
import re
import sys
import traceback

from asnet.cli import EXPECTED_ERRORS, error_line
from asnet.config import from_dict, resolve
from asnet.disk import as_disk_full, is_disk_error
from asnet.progress import console_handler, job_label
from asnet.stage_table import run_rule, stage_of_rule
from asnet.train.stop import TrainingInterrupted


class BarLines:
    """A log file as stderr, where a tqdm bar leaves one line (its last state) instead of a
    carriage-return redraw per update: tqdm writes "\r<state>" per refresh and, on close,
    "\n" (leave=True) or blanks (leave=False). Other text passes through."""

    def __init__(self, file):
        self.file = file
        self.line = ""  # what was written since the last \r or \n
        self.bar = None  # the bar's last drawn state

    def write(self, text):
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

    def _emit(self, line):
        self.file.write(line.rstrip() + "\n")
        self.bar = None

    def flush(self):
        self.file.flush()

    def close(self):
        if self.line.strip() or self.bar:
            self._emit(self.line if self.line.strip() else self.bar)
            self.line = ""
        self.file.flush()

    def fileno(self):  # a subprocess given this stream writes to the file itself
        self.flush()
        return self.file.fileno()

    def isatty(self):
        return False


job = snakemake  # noqa: F821 (injected by Snakemake)
log_file = job.log[0] if job.log else None
handlers = [logging.FileHandler(log_file)] if log_file else [logging.StreamHandler()]
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers)
if log_file:
    # The console keeps the progress lines; everything else goes to the log, each tqdm bar as
    # one line (its last state), without the redraws.
    console = console_handler(sys.stderr, job_label(job.rule, dict(job.wildcards.items())))
    logging.getLogger().addHandler(console)
    sys.stderr = BarLines(open(log_file, "a", buffering=1))  # noqa: SIM115 (lives for the job)
    atexit.register(sys.stderr.close)
try:
    cfg = from_dict(resolve(dict(job.config)))
    run_rule(job.rule, cfg, dict(job.wildcards.items()), list(job.output), log_file, dict(job.params.items()),
             threads=job.threads)
except (*EXPECTED_ERRORS, OSError) as exc:
    if isinstance(exc, OSError) and not isinstance(exc, EXPECTED_ERRORS):
        if not is_disk_error(exc):
            raise
        exc = as_disk_full(exc)  # a full disk met outside asnet.disk.writing: the same one line
    traceback.print_exc(file=sys.stderr)
    line = error_line(stage_of_rule(job.rule).command, exc)
    if "\n" in line:  # a message with a list (missing videos, ...): in full, then its one line last
        print(line, file=sys.stderr)
        line = f"{line.splitlines()[0]} (in full above)"
    print(line, file=sys.stderr, flush=True)
    sys.exit(1)
except TrainingInterrupted as exc:  # SIGTERM/SIGINT: the run saved its state and says where
    print(f"asnet {stage_of_rule(job.rule).command}: {exc}", file=sys.stderr, flush=True)
    sys.exit(exc.exit_code)
