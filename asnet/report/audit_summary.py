"""The top of results/audit.md: an ML Reproducibility Challenge style summary (scope, what
reproduces here, what the paper's own numbers can support, what needs real data, runs and
compute) and the section quoting the paper audit. Everything is read from the claims just
judged, the paper audit, the manifests and the run folders; nothing is typed in."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from asnet import paths
from asnet.config import Config
from asnet.report.audit import Claim
from asnet.report.paper_audit import PaperAudit, claim_verdicts, summary_lines
from asnet.report.runtime import read_benchmarks
from asnet.seeds import run_seeds

REAL_DATA_COMMAND = "snakemake --cores 8 results/all --config preset=paper"


def _test_videos(cfg: Config) -> str:
    """'synthetic: 192 train / 1536 test videos per split' from the manifests (configured splits)."""
    out = []
    for d in cfg.datasets:
        sizes = []
        for s in cfg.splits:
            m = paths.manifest(d.name, s)
            if m.exists():
                df = pd.read_csv(m)
                sizes.append((int((df["subset"] == "train").sum()), int((df["subset"] == "test").sum())))
        if sizes:
            tr = sorted({a for a, _ in sizes})
            te = sorted({b for _, b in sizes})
            out.append(f"{d.name}: {'/'.join(map(str, tr))} training and {'/'.join(map(str, te))} test videos per split")
    return "; ".join(out) or "no manifests"


def compute_used(results: Path = Path("results")) -> tuple[int, int, float, float]:
    """(training runs, pretraining runs, CPU hours, job hours) from the run folders and the
    Snakemake benchmark files present when the audit runs."""
    runs = len(list((results / "checkpoints").rglob("model.pt"))) if (results / "checkpoints").exists() else 0
    pre = len(list((results / "pretrain").rglob("model.pt"))) if (results / "pretrain").exists() else 0
    bench = read_benchmarks(results / "benchmarks") if (results / "benchmarks").exists() else None
    cpu = float(bench["cpu_time"].fillna(0).sum()) if bench is not None else 0.0
    wall = float(bench["s"].fillna(0).sum()) if bench is not None else 0.0
    return runs, pre, cpu / 3600, wall / 3600


def _ids(claims: list[Claim], verdict: str) -> str:
    hit = [f"{c.id} ({c.claim})" for c in claims if c.verdict == verdict]
    return "; ".join(hit) if hit else "none"


def mlrc_summary(cfg: Config, claims: list[Claim], paper: PaperAudit, results: Path = Path("results")) -> list[str]:
    """The audit's opening summary, in the ML Reproducibility Challenge report's order."""
    synthetic = all(d.kind == "synthetic" for d in cfg.datasets)
    where = "the embedded synthetic benchmark" if synthetic else ", ".join(d.name for d in cfg.datasets)
    seeds = run_seeds(cfg)
    undecided = [c for c in claims if c.verdict == "cannot judge" and c.need]
    runs, pre, cpu_h, job_h = compute_used(results)
    pv = claim_verdicts(paper)
    weak = [f"{cid} ({text})" for cid, (text, v) in pv.items() if v == "not supportable"]
    lines = [
        "## Summary",
        "",
        f"- **Scope.** The paper's {len(claims)} claims (Tables 1-6, Figure 5, Sec. 4.4), judged on {where}: "
        f"splits {list(cfg.splits)}, {len(seeds)} seed{'s' if len(seeds) > 1 else ''} per run ({', '.join(map(str, seeds))}), "
        f"{_test_videos(cfg)}; comparisons pooled over splits and seeds, paired by video.",
        f"- **Reproduces here:** {_ids(claims, 'reproduces')}.",
        f"- **Does not reproduce here:** {_ids(claims, 'does not reproduce')}.",
        f"- **Cannot be judged here:** {_ids(claims, 'cannot judge')}"
        + ("; what a decision would need: " + "; ".join(f"claim {c.id} {c.need}" for c in undecided) if undecided else "")
        + ".",
        f"- **What the paper's own numbers can support** (results/paper_audit.md, no data): claims whose own test sets "
        f"cannot decide them even if every discordant video went the paper's way: {'; '.join(weak) if weak else 'none'}.",
    ]
    if synthetic:
        lines.append(f"- **Needs real data:** the paper's UCF-101/HMDB-51 numbers (claim 1) and the size of each gain: "
                     f"`{REAL_DATA_COMMAND}` with the datasets in place (docs/real-data.md).")
    lines.append(f"- **Runs and compute:** {runs} training run{'s' * (runs != 1)} and {pre} pretraining "
                 f"run{'s' * (pre != 1)}; "
                 f"{cpu_h:.1f} CPU hours in {job_h:.1f} job hours (Snakemake benchmark files present at the "
                 "time of the audit; jobs that ran side by side count each).")
    return lines


def paper_section(paper: PaperAudit) -> str:
    """results/audit.md's section on the paper's own numbers (the full report: paper_audit.md)."""
    return "\n".join(["## The paper's own numbers (no data)", "",
                      "From results/paper_audit.md (`asnet paper-audit`), computed from workflow/paper/*.csv:", "",
                      *summary_lines(paper)])
