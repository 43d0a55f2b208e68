"""`asnet` command line: every Snakemake rule's work, reachable by hand.

    asnet prepare  --dataset synthetic           # generate (synthetic) + per-split manifests
    asnet manifest --dataset ucf101 --root DIR --splits DIR --split 1 --out m.csv
    asnet extract  --dataset synthetic           # decode videos into the frame store
    asnet pretrain                               # the Kinetics stand-in: results/pretrain/<source>/model.pt
    asnet train    --dataset synthetic --split 1 --variant asnet
    asnet evaluate --dataset synthetic --split 1 --variant asnet
    asnet table6                                 # results/table6.{tex,csv}
    asnet experiment-table --table table1        # results/table1.{tex,csv} (also table2, table3, table4)
    asnet table5                                 # results/table5.{tex,csv} (SVM on frozen features)
    asnet probes                                 # results/probes.{tex,csv} (synthetic learnability)
    asnet figure4                                # results/figure4.{pdf,png} (SPA reward/loss per epoch)
    asnet figure5                                # results/figure5.{pdf,png} (SPA boxes, Grad-CAM)
    asnet audit                                  # results/audit.{md,csv} (which claims reproduce)
    asnet spa-cost                               # results/spa_cost.{tex,csv} (cheaper SPA vs the paper's)
    asnet anchor-check                           # results/anchor_check.{tex,csv} (Hara's models, our data path)
    asnet localisation                           # results/localisation.{tex,csv} (SPA's IoU vs its bounds)
    asnet report-page table6                     # results/report/table6.html (a table as a report page)
    asnet run-report results/checkpoints/synthetic/split1/asnet   # its curves.png, config.yaml
    asnet runtime                                # results/runtime.csv (benchmark files per stage)

Every command takes --config FILE and repeated --set KEY=VALUE overrides (YAML values).
Bad input (config, overrides, missing inputs, unreadable checkpoints) exits with status 2
and one error message, before any expensive work where it can be checked up front.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import sys
from pathlib import Path

from asnet.config import ConfigError, load_config


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, default=None, help="config file (default: config/config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set preset=tiny --set train.epochs=3")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    for name in ("prepare", "extract"):
        p = sub.add_parser(name, help=f"{name} a configured dataset")
        p.add_argument("--dataset", required=True)
        _common(p)
    for name in ("train", "evaluate"):
        p = sub.add_parser(name, help=f"{name} one (dataset, split, variant) run")
        p.add_argument("--dataset", required=True)
        p.add_argument("--split", type=int, required=True)
        p.add_argument("--variant", required=True)
        _common(p)
    p = sub.add_parser("pretrain", help="the pretraining run on the source set (`pretrain:`): "
                       "results/pretrain/<source>/model.pt; prepare/extract the source with --dataset <source> first")
    _common(p)
    p = sub.add_parser("experiment-table", help="Table 1, 2, 3 or 4 of the paper: results/<table>.{tex,csv}")
    p.add_argument("--table", required=True, choices=["table1", "table2", "table3", "table4"])
    _common(p)
    for name, out, text in (
        ("table6", "table6.tex", "aggregate evaluated runs into results/table6.{tex,csv}"),
        ("table5", "table5.tex", "Table 5 (frozen features + linear SVM): results/table5.{tex,csv}"),
        ("probes", "probes.tex", "learnability table of the synthetic set: results/probes.{tex,csv}"),
        ("figure4", "figure4.pdf", "SPA reward and loss per epoch of the ASNet runs: results/figure4.{pdf,png}"),
        ("audit", "audit.md", "which of the paper's claims the runs reproduce: results/audit.{md,csv}"),
        ("spa-cost", "spa_cost.tex", "accuracy and FLOPs of the cheaper SPA beside the paper's: results/spa_cost.{tex,csv}"),
        ("localisation", "localisation.tex",
         "SPA's IoU with the actor against random / centre / best constant box and the oracle-reward SPA: "
         "results/localisation.{tex,csv}"),
        ("anchor-check", "anchor_check.tex",
         "Hara et al.'s published fine-tuned models through our data path: results/anchor_check.{tex,csv}"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--out", type=Path, default=Path("results") / out)
        _common(p)
    p = sub.add_parser("figure5", help="SPA boxes on test frames, Grad-CAM ASNet vs single: results/figure5.{pdf,png}")
    p.add_argument("--out", type=Path, default=Path("results/figure5.pdf"))
    p.add_argument("--videos", type=int, default=4, help="test videos (rows) to show")
    _common(p)

    from asnet.report.html import PAGES

    p = sub.add_parser("report-page", help="a table (or the audit) as an HTML page of the report: "
                       "results/report/<name>.html")
    p.add_argument("name", choices=list(PAGES))
    p.add_argument("--out", type=Path, default=None)
    _common(p)
    p = sub.add_parser("run-report", help="a run's training curves (dvclive logs) and resolved configuration "
                       "(model.pt): results/report/runs/<run>/{curves.png,config.yaml}")
    p.add_argument("run_dir", type=Path, help="results/checkpoints/<dataset>/split<k>/<variant> or results/pretrain/<source>")
    p.add_argument("--out-dir", type=Path, default=None)
    _common(p)
    p = sub.add_parser("runtime", help="Snakemake's benchmark files under results/benchmarks/ summed per stage: "
                       "results/runtime.csv")
    p.add_argument("--out", type=Path, default=Path("results/runtime.csv"))
    _common(p)

    p = sub.add_parser("manifest", help="build one split's manifest CSV from official split lists")
    p.add_argument("--dataset", required=True, choices=["ucf101", "hmdb51", "synthetic"])
    p.add_argument("--root", type=Path, default=None, help="folder of <Class>/<video> files (checked when given)")
    p.add_argument("--splits", type=Path, required=True, help="folder of the official split lists")
    p.add_argument("--split", type=int, required=True, choices=[1, 2, 3])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--allow-missing", action="store_true", help="report and drop listed videos that are missing")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from asnet import stages

    try:
        if args.command == "manifest":
            from asnet.data.splits import build_manifest, write_manifest

            df = build_manifest(args.dataset, args.root, args.splits, args.split, allow_missing=args.allow_missing)
            write_manifest(df, args.out)
            counts = df["subset"].value_counts().to_dict()
            print(f"{args.out}: {counts.get('train', 0)} train / {counts.get('test', 0)} test videos, "
                  f"{df['label'].nunique()} classes")
            return 0
        cfg = load_config(args.config, args.overrides)
        progress = not args.no_progress
        if args.command == "prepare":
            for p in stages.prepare(cfg, args.dataset, progress):
                print(p)
        elif args.command == "extract":
            stages.extract(cfg, args.dataset, progress)
        elif args.command == "pretrain":
            print(stages.pretrain(cfg, progress))
        elif args.command == "train":
            print(stages.train(cfg, args.dataset, args.split, args.variant, progress))
        elif args.command == "evaluate":
            print(stages.evaluate(cfg, args.dataset, args.split, args.variant, progress))
        elif args.command == "table6":
            print(stages.table6(cfg, args.out).to_string(index=False))
        elif args.command == "experiment-table":
            print(stages.experiment_table(cfg, args.table).to_string(index=False))
        elif args.command == "table5":
            print(stages.table5(cfg, args.out, progress).to_string(index=False))
        elif args.command == "probes":
            print(stages.probes(cfg, args.out).to_string(index=False))
        elif args.command == "spa-cost":
            print(stages.spa_cost(cfg, args.out).to_string(index=False))
        elif args.command == "localisation":
            print(stages.localisation(cfg, args.out).to_string(index=False))
        elif args.command == "anchor-check":
            print(stages.anchor_check(cfg, args.out, progress).drop(columns=["provenance"]).to_string(index=False))
        elif args.command == "audit":
            print(stages.audit(cfg, args.out).to_string(index=False))
        elif args.command == "figure4":
            print(stages.figure4(cfg, args.out))
        elif args.command == "figure5":
            print(stages.figure5(cfg, args.out, args.videos))
        elif args.command == "report-page":
            print(stages.report_page(args.name, args.out))
        elif args.command == "run-report":
            for path in stages.run_report(args.run_dir, args.out_dir).values():
                print(path)
        elif args.command == "runtime":
            print(stages.runtime(args.out).to_string(index=False))
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        print(f"asnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except pickle.UnpicklingError as exc:
        # Safety net for a checkpoint loaded outside asnet.train.checkpoint (which names the
        # file): torch's own text advises weights_only=False, which must never reach a user.
        from asnet.train.checkpoint import load_error_detail

        print(f"asnet {args.command}: error: a checkpoint does not load with weights_only=True "
              f"({load_error_detail(exc)}); check model.pretrained / model.pretrained_dir", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
