"""`asnet` command line: every Snakemake rule's work, reachable by hand.

    asnet prepare  --dataset synthetic           # generate (synthetic) + per-split manifests
    asnet manifest --dataset ucf101 --root DIR --splits DIR --split 1 --out m.csv
    asnet extract  --dataset synthetic           # decode videos into the frame store
    asnet extract-chunk --dataset synthetic --chunk 0 ; asnet merge-frames --dataset synthetic   # its two steps
    asnet verify-store --dataset synthetic      # check every frame file against its checksum
    asnet pretrain                               # the Kinetics stand-in: results/pretrain/<source>/model.pt
    asnet pretrain --backbone resnet18           # Table 2's: results/pretrain/backbones/<source>/resnet18/model.pt
    asnet train    --dataset synthetic --split 1 --variant asnet
    asnet evaluate --dataset synthetic --split 1 --variant asnet
    asnet table6                                 # results/table6.{tex,csv}
    asnet experiment-table --table table1        # results/table1.{tex,csv} (also table2, table3, table4)
    asnet table5                                 # results/table5.{tex,csv} (SVM on frozen features)
    asnet probes                                 # results/probes.{tex,csv} (synthetic learnability)
    asnet figure4                                # results/figure4.{pdf,png} (SPA reward/loss per epoch)
    asnet figure5                                # results/figure5.{pdf,png} (SPA boxes, Grad-CAM)
    asnet audit                                  # results/audit.{md,csv} (which claims reproduce)
    asnet paper-audit                            # results/paper_audit.{md,csv} (the paper's numbers, no data)
    asnet spa-cost                               # results/spa_cost.{tex,csv} (cheaper SPA vs the paper's)
    asnet anchor-check                           # results/anchor_check.{tex,csv} (Hara's models, our data path)
    asnet localisation                           # results/localisation.{tex,csv} (SPA's IoU vs its bounds)
    asnet report-page --name table6              # results/report/table6.html (a table as a report page)
    asnet predict VIDEO... --model results/checkpoints/synthetic/split1/asnet/model.pt --annotate out/   # your videos
    asnet run-report --run-dir results/checkpoints/synthetic/split1/asnet   # its curves.png, config.yaml
    asnet runtime                                # results/runtime.csv (benchmark files per stage)
    asnet config --set preset=paper              # the resolved configuration, every key (YAML)
    asnet check-pretrained                       # open and check the pretrained files (what planning does)

The subcommands are the rows of asnet.stage_table.STAGES (the Snakemake rules run the same
functions). Every command but `manifest` takes --config FILE and repeated --set KEY=VALUE overrides (YAML values).
Bad input (config, overrides, missing inputs, unreadable checkpoints or frame files) and a
full disk exit with status 2
and one error message, before any expensive work where it can be checked up front.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from pathlib import Path

from asnet.config import ConfigError, load_config
from asnet.data.store import StoreError
from asnet.disk import DiskFullError, as_disk_full, is_disk_error
from asnet.stage_table import REQUIRED, STAGES, Arg
from asnet.train.stop import TrainingInterrupted


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="config file (default: config/config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set preset=tiny --set train.epochs=3")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_arg(p: argparse.ArgumentParser, a: Arg) -> None:
    positional = a.flag is not None and not a.flag.startswith("-")
    kw: dict = {"help": a.help} if positional else {"dest": a.dest, "help": a.help}
    if a.nargs:
        kw["nargs"] = a.nargs
    if a.action:
        kw["action"] = a.action
    else:
        kw["type"] = a.type
        kw["metavar"] = a.name.upper()
        if a.choices:
            kw["choices"] = list(a.choices)
            kw["metavar"] = "{" + ",".join(map(str, a.choices)) + "}"
    if positional:
        kw["metavar"] = a.name.upper()
        p.add_argument(a.dest, **kw)
        return
    if a.default is REQUIRED:
        kw["required"] = True
    else:
        kw["default"] = a.default
    p.add_argument(a.flag or f"--{a.name}", **kw)


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per row of asnet.stage_table.STAGES."""
    parser = argparse.ArgumentParser(prog="asnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for stage in STAGES.values():
        p = sub.add_parser(stage.command, help=stage.help)
        for a in stage.args:
            _add_arg(p, a)
        if stage.uses_config:
            _common(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    stage = STAGES[args.command]
    try:
        kwargs = {a.dest: getattr(args, a.dest) for a in stage.args}
        if stage.progress:
            kwargs["progress"] = not args.no_progress
        if stage.uses_config:
            result = stage.run(load_config(args.config, args.overrides), **kwargs)
        else:
            result = stage.run(**kwargs)
        text = stage.show(result)
        if text:
            print(text)
        status = stage.status(result)
        if status:
            return status
    except EXPECTED_ERRORS as exc:
        print(error_line(args.command, exc), file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:  # Ctrl-C or SIGTERM: the state is saved, one line says where
        print(f"asnet {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        if not is_disk_error(exc):
            raise
        print(error_line(args.command, as_disk_full(exc)), file=sys.stderr)
        return 2
    return 0


# Bad input (config, overrides, missing inputs, unreadable checkpoints or frame files) and a
# full disk: one line for the user, no traceback. Anything else is a bug and keeps its traceback.
EXPECTED_ERRORS = (ConfigError, FileNotFoundError, ValueError, pickle.UnpicklingError, StoreError, DiskFullError)


def error_line(command: str, exc: BaseException) -> str:
    """The one-line message of an expected error, as `asnet COMMAND` prints it (a Snakemake job
    of that stage ends its log with the same line)."""
    if isinstance(exc, pickle.UnpicklingError):
        # Safety net for a checkpoint loaded outside asnet.train.checkpoint (which names the
        # file): torch's own text advises weights_only=False, which must never reach a user.
        from asnet.train.checkpoint import load_error_detail

        return (f"asnet {command}: error: a checkpoint does not load with weights_only=True "
                f"({load_error_detail(exc)}); check model.pretrained / model.pretrained_dir")
    return f"asnet {command}: error: {exc}"


if __name__ == "__main__":
    sys.exit(main())
