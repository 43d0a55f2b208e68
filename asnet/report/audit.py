"""results/audit.md: which of the paper's claims our runs reproduce, which they do not, and
which they cannot judge.

Every verdict is computed from the runs' per-video predictions, never typed in:

- A comparative claim ("ASNet beats the single stream") is tested on the same test videos:
  exact McNemar on the discordant pairs pooled over the compared splits and seeds (paired by
  (seed, split, video)), a 95% paired bootstrap interval of the accuracy difference, Holm's
  correction when a claim makes several comparisons. Verdict: *reproduces* when every
  comparison goes the paper's way at p < 0.05; *does not reproduce* when one goes
  significantly the other way, or its whole interval lies below the margin (the paper's own
  gain on its dataset, `report.audit_margin` elsewhere); else *cannot judge*, with the
  minimum detectable difference at 80% power (asnet.report.power, at Holm's strictest level
  alpha / k) and the paired test videos a decision would need.
- An absolute number (UCF-101/HMDB-51 only) reproduces when the paper's value lies in our
  95% bootstrap interval. On the synthetic set the paper's numbers cannot be judged.
- Parameter counts are recomputed by building the models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from asnet import paths
from asnet.config import Config
from asnet.report import power
from asnet.report.stats import bootstrap_ci, mcnemar_p

ALPHA = 0.05
REAL = {"ucf101": "UCF-101", "hmdb51": "HMDB-51"}


@dataclass
class Comparison:
    """One paired comparison A vs B on the same test videos (accuracies in points)."""

    name: str
    acc_a: float
    acc_b: float
    diff_lo: float
    diff_hi: float
    b: int  # A right, B wrong
    c: int  # A wrong, B right
    n: int
    p: float
    p_adj: float = float("nan")
    paper_gain: float | None = None  # the paper's A - B on this dataset, when it has one
    margin: float = 1.0  # the gain whose exclusion refutes (paper_gain where there is one)
    outcome: str = ""  # for | against | no gain | undecided (set by judge)
    mde: float = float("nan")  # minimum detectable |difference| at 80% power, points
    needed: int | None = None  # paired videos an undecided comparison would need

    @property
    def diff(self) -> float:
        return self.acc_a - self.acc_b

    @property
    def rate(self) -> float:
        """Fraction of the paired videos on which the two differ (discordant)."""
        return (self.b + self.c) / self.n if self.n else 0.0


@dataclass
class Claim:
    id: str
    claim: str
    source: str
    paper: str
    ours: str = ""
    verdict: str = "cannot judge"
    details: list[str] = field(default_factory=list)
    mde: float | None = None  # the largest minimum detectable difference of its comparisons
    need: str = ""  # what an undecided claim would need


def paired(name: str, a: pd.DataFrame, b: pd.DataFrame, seed: int = 0, n_boot: int = 4000) -> Comparison:
    """Compare two runs' per-video `correct` (indexed alike, e.g. (split, video)) on their common
    videos. On 0/1 outcomes the sign test of paired_values is exactly McNemar's test."""
    if not len(a.index.intersection(b.index)):
        raise ValueError(f"{name}: the two runs share no test videos")
    return paired_values(name, a["correct"], b["correct"], seed, n_boot)


def paired_values(name: str, x: pd.Series, y: pd.Series, seed: int = 0, n_boot: int = 2000) -> Comparison:
    """Paired comparison of a per-video quantity in [0, 1] (correctness, IoU with the actor):
    95% bootstrap interval of the mean difference and a sign test (wins vs losses), x100."""
    common = x.index.intersection(y.index)
    a, b = x.loc[common].to_numpy(float), y.loc[common].to_numpy(float)
    d = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for i in range(0, n_boot, 500):  # chunks keep memory at 500 x n
        idx = rng.integers(0, len(d), size=(min(500, n_boot - i), len(d)))
        means[i:i + len(idx)] = d[idx].mean(1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    return Comparison(name, 100 * a.mean(), 100 * b.mean(), 100 * lo, 100 * hi, wins, losses, len(d),
                      mcnemar_p(wins, losses))


def holm(comparisons: list[Comparison]) -> None:
    """Holm-adjusted p-values (family = one claim's comparisons), in place."""
    order = sorted(range(len(comparisons)), key=lambda i: comparisons[i].p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(comparisons) - rank) * comparisons[i].p))
        comparisons[i].p_adj = running


def judge(comparisons: list[Comparison], margin: float | None = None) -> str:
    """Verdict of a claim that A beats B in every comparison (see module docstring); sets each
    comparison's outcome, minimum detectable effect and, when undecided, the videos it needs.
    `margin` (points) applies where a comparison has no paper gain."""
    holm(comparisons)
    alpha_k = ALPHA / max(1, len(comparisons))  # Holm's first, strictest step
    for c in comparisons:
        if margin is not None and c.paper_gain is None:
            c.margin = margin
        bar = c.paper_gain if c.paper_gain is not None else c.margin
        if c.p_adj < ALPHA and c.diff < 0:
            c.outcome = "against"
        elif c.paper_gain is not None and c.paper_gain > c.diff_hi:
            c.outcome = "no gain"  # the paper's gain on its own dataset lies above our interval
        elif c.p_adj < ALPHA and c.diff > 0:
            c.outcome = "for"
        elif c.diff_hi < bar:
            c.outcome = "no gain"
        else:
            c.outcome = "undecided"
        c.mde = power.mde(c.n, c.rate, alpha_k) if c.rate > 0 else float("inf")
        if c.outcome == "undecided":
            c.needed = needed_videos(c, bar, alpha_k)
    if any(c.outcome in ("against", "no gain") for c in comparisons):
        return "does not reproduce"
    if all(c.outcome == "for" for c in comparisons):
        return "reproduces"
    return "cannot judge"


def needed_videos(c: Comparison, bar: float, alpha: float) -> int:
    """Paired videos at this discordance that would decide an undecided comparison: to detect
    the observed difference (80% power) when it is at least the margin, else to bring the 95%
    interval's upper end below the margin (or, for a positive difference, to detect it, if fewer)."""
    rate = max(c.rate, abs(c.diff) / 100, 1 / max(c.n, 1))
    detect = power.videos_needed(c.diff, rate, alpha) if c.diff > 0 else math.inf
    if c.diff >= bar > 0:
        return detect
    # below the margin: whichever comes first, the gain shown significant or the margin excluded
    return min(detect, power.interval_videos(bar - c.diff, rate))


OUTCOME_TEXT = {"for": "goes the paper's way", "against": "significantly the other way",
                "no gain": "no gain of the margin", "undecided": "undecided"}


def describe(c: Comparison) -> str:
    gain = f"; paper's gain {c.paper_gain:+.1f}" if c.paper_gain is not None else ""
    out = (f"{c.name}: {c.acc_a:.1f} vs {c.acc_b:.1f} ({c.diff:+.1f} points, 95% CI {c.diff_lo:+.1f} to "
           f"{c.diff_hi:+.1f}; {c.b} vs {c.c} discordant of {c.n} paired videos, McNemar p = {c.p:.3g}, "
           f"Holm {c.p_adj:.3g}{gain})")
    if c.outcome:
        out += f" -> {OUTCOME_TEXT[c.outcome]}"
        if c.outcome == "no gain":
            out += f" ({c.margin if c.paper_gain is None else c.paper_gain:+.1f} above the interval)"
        out += f"; detectable at 80% power: {_points(c.mde)}"
        if c.needed is not None:
            out += f"; would need {_need(c.needed, c.n)}"
    return out


def _points(x: float) -> str:
    return "no difference (too few discordant videos)" if not np.isfinite(x) else f"{x:.1f} points"


def _need(needed: float, n: int) -> str:
    """'about N paired test videos (K x this test set: K seeds or K times the test videos)'."""
    if not np.isfinite(needed):
        return "more paired videos than any test set has"
    k = int(np.ceil(needed / n))
    return f"about {int(needed):,} paired test videos ({k}x these {n:,}: {k} seeds, or {k}x the test videos)"


def load_predictions(eval_dirs: list[Path]) -> pd.DataFrame:
    """Per-video correctness of one model over several splits, indexed by (split, video)."""
    frames = []
    for d in eval_dirs:
        f = Path(d) / "predictions.csv"
        if not f.exists():
            raise FileNotFoundError(f"{f}: missing; run the evaluate rule for this run first")
        df = pd.read_csv(f)
        df["split"] = Path(d).parent.name
        frames.append(df)
    return pd.concat(frames).set_index(["split", "video"])


def absolute_claim(claim: Claim, rows: list[tuple[str, str, pd.DataFrame, float | None]],
                   not_compared: dict[str, str] | None = None) -> None:
    """rows: (dataset, model label, predictions, paper value). Reproduces if every paper value
    on its own dataset lies in our 95% interval; a dataset in `not_compared` (too few of its
    official test videos, see report.min_coverage) is shown with that reason instead."""
    verdicts = []
    skipped = []
    for dataset, label, pred, paper in rows:
        acc = 100 * pred["correct"].mean()
        lo, hi = (100 * v for v in bootstrap_ci(pred["correct"].to_numpy()))
        if dataset in REAL and dataset in (not_compared or {}):
            skipped.append(dataset)
            claim.details.append(f"{REAL[dataset]} {label}: ours {acc:.1f} (95% CI {lo:.1f}-{hi:.1f}); "
                                 f"{not_compared[dataset]}")
        elif dataset in REAL and paper is not None and not np.isnan(paper):
            ok = lo <= paper <= hi
            verdicts.append(ok)
            claim.details.append(f"{REAL[dataset]} {label}: ours {acc:.1f} (95% CI {lo:.1f}-{hi:.1f}), paper {paper:.1f}"
                                 f" -> {'inside' if ok else 'outside'}")
        else:
            claim.details.append(f"{dataset} {label}: ours {acc:.1f} (95% CI {lo:.1f}-{hi:.1f}); the paper has no "
                                 "number for this dataset")
    claim.ours = "; ".join(d.split(" -> ")[0] for d in claim.details[:4])
    if verdicts:
        claim.verdict = "reproduces" if all(verdicts) else "does not reproduce"
    elif skipped:
        claim.verdict = "not compared"
    else:
        claim.verdict = "cannot judge"
        claim.details.append("The paper's numbers are for UCF-101/HMDB-51 with Kinetics-pretrained weights; "
                             "absolute numbers on another dataset say nothing about them.")


def comparative_claim(claim: Claim, comparisons: list[Comparison], margin: float | None = None) -> None:
    if not comparisons:
        claim.verdict, claim.ours = "cannot judge", "not run (the table's target was not built)"
        return
    claim.verdict = judge(comparisons, margin)
    claim.details = [describe(c) for c in comparisons]
    won = sum(c.diff > 0 for c in comparisons)
    sig = sum(c.p_adj < ALPHA for c in comparisons)
    claim.ours = (f"ahead in {won}/{len(comparisons)} comparisons, significant (Holm p < {ALPHA}) in {sig}; "
                  + "; ".join(f"{c.name} {c.diff:+.1f}" for c in comparisons[:3])
                  + (" ..." if len(comparisons) > 3 else ""))
    undecided = [c for c in comparisons if c.outcome == "undecided"]
    if claim.verdict == "cannot judge" and undecided:
        worst = max(undecided, key=lambda c: c.needed if c.needed is not None else 0)
        claim.need = f"would need {_need(worst.needed, worst.n)} ({worst.name})"
        claim.ours += f"; {claim.need}"
    finite = [c.mde for c in comparisons if np.isfinite(c.mde)]
    claim.mde = max(finite) if finite else float("inf")


def dataset_coverage(cfg: Config) -> dict[str, dict[str, Any]]:
    """Per configured dataset, its test videos present in the manifests and listed in the
    official lists over the configured splits (from prepare's coverage records; a dataset
    without records is left out)."""
    from asnet.data.splits import read_coverage

    out: dict[str, dict[str, Any]] = {}
    for d in cfg.datasets:
        recs = [read_coverage(paths.manifest(d.name, s)) for s in cfg.splits]
        if any(r is None for r in recs):
            continue
        out[d.name] = {"present": sum(r["test"]["present"] for r in recs), "listed": sum(r["test"]["listed"] for r in recs),
                       "allow_missing": any(r["allow_missing"] for r in recs),
                       "synthetic": all(r.get("synthetic", False) for r in recs)}
    return out


def coverage_lines(cfg: Config) -> tuple[list[str], dict[str, str]]:
    """The audit's coverage paragraph ("N of M official test videos" per dataset) and, per
    real dataset below report.min_coverage, why its numbers are not compared with the paper's."""
    from asnet.data.splits import coverage_phrase

    cov = dataset_coverage(cfg)
    lines, below = [], {}
    for name, c in cov.items():
        if c["synthetic"] and c["present"] == c["listed"]:
            continue  # generated complete: nothing to say
        phrase = coverage_phrase(c["present"], c["listed"], c["allow_missing"])
        lines.append(f"- {name}, splits {list(cfg.splits)}: {phrase}")
        if c["listed"] and c["present"] / c["listed"] < cfg.report.min_coverage:
            below[name] = (f"not compared with the paper: {phrase}, below report.min_coverage "
                           f"{cfg.report.min_coverage:g}")
    if lines:
        lines = ["", "Coverage of the official test lists (M from the official lists, not the manifests):", "", *lines]
    return lines, below


def _mde_cell(c: Claim) -> str:
    return "" if c.mde is None else ("-" if not np.isfinite(c.mde) else f"{c.mde:.1f}")


def write_markdown(claims: list[Claim], header: str, out_md: Path, summary: list[str] | None = None,
                   sections: list[str] | None = None) -> pd.DataFrame:
    """results/audit.md (header, the summary, the claims' table, details per claim, then any
    further `sections`) and results/audit.csv (one row per claim)."""
    df = pd.DataFrame([{"id": c.id, "claim": c.claim, "source": c.source, "paper": c.paper, "ours": c.ours,
                        "verdict": c.verdict, "mde_points": c.mde, "would_need": c.need} for c in claims])
    counts = df["verdict"].value_counts()
    # "not compared" (coverage below report.min_coverage) only appears when it happened
    shown = ("reproduces", "does not reproduce", "cannot judge") + (("not compared",) if counts.get("not compared") else ())
    lines = [header, ""]
    if summary:
        lines += summary + [""]
    lines += ["Claims: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in shown) + ".", "",
              "| # | Claim | Paper | Verdict | Detectable (points, 80% power) |", "|---|---|---|---|---|"]
    lines += [f"| {c.id} | {c.claim} ({c.source}) | {c.paper} | **{c.verdict}**{': ' + c.need if c.need else ''} "
              f"| {_mde_cell(c)} |" for c in claims]
    for c in claims:
        lines += ["", f"## {c.id}. {c.claim}", "", f"Source: {c.source}. Paper: {c.paper}.", "",
                  f"Verdict: **{c.verdict}**. Ours: {c.ours}.", ""]
        lines += [f"- {d}" for d in c.details]
    for sec in sections or []:
        lines += ["", sec]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines) + "\n")
    df.to_csv(out_md.with_suffix(".csv"), index=False)
    return df
