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
import sys
import traceback

from asnet.cli import EXPECTED_ERRORS, error_line
from asnet.config import from_dict, resolve
from asnet.disk import as_disk_full, is_disk_error
from asnet.progress import BarLines, console_handler, job_label
from asnet.stage_table import run_rule, stage_of_rule
from asnet.train.stop import TrainingInterrupted

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
