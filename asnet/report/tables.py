"""Cross-split aggregation and the LaTeX tables (pandas -> booktabs)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from asnet.config import REPO_ROOT
from asnet.paths import parse_run_dir
from asnet.report.stats import bootstrap_ci, mcnemar
from asnet.variants import LABELS

PAPER_NUMBERS = REPO_ROOT / "workflow" / "paper" / "paper_numbers.csv"


def _flat(metrics: dict) -> dict:
    """One CSV column per scalar: provenance records ({"pretrained": {"sha256": ...}}) become
    pretrained_sha256, ...; nested lists stay readable as JSON."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}_{sub}"] = json.dumps(v) if isinstance(v, list | dict) else v
        else:
            out[key] = value
    return out


def collect_metrics(paths: list[Path], seed: int = 0) -> pd.DataFrame:
    """Read results/eval/<dataset>/split<k>/<variant>[/seed<s>]/metrics.json files into one
    long frame. With a replicate seed's file among them (asnet.seeds) it has a `seed` column
    after `split`, `seed` (the config's) for the runs without a seed folder; else none, as
    before replicates existed."""
    rows, seeds = [], []
    for p in paths:
        p = Path(p)
        try:
            run = parse_run_dir(p.parent)
        except ValueError:
            raise ValueError(f"{p}: expected .../<dataset>/split<k>/<variant>[/seed<s>]/metrics.json") from None
        m = _flat(json.loads(p.read_text()))
        rows.append({"dataset": run.dataset, "variant": run.variant, "split": run.split, **m})
        seeds.append(seed if run.seed is None else run.seed)
    if not rows:
        raise ValueError("no metrics files given")
    df = pd.DataFrame(rows).drop(columns=["variant"], errors="ignore")
    df.insert(1, "variant", [r["variant"] for r in rows])
    keys = ["dataset", "variant", "split"]
    if any(s != seed for s in seeds):
        df.insert(3, "seed", seeds)
        keys.append("seed")
    df = df.sort_values(keys).reset_index(drop=True)
    return add_uncertainty(df, [Path(p).parent for p in paths], seed)


def add_uncertainty(df: pd.DataFrame, run_dirs: list[Path], seed: int = 0) -> pd.DataFrame:
    """Per run: a 95% bootstrap interval of top-1 over test videos; per non-single run: the
    McNemar p-value against the single-stream run of the same seed on the same split's videos."""
    preds: dict[tuple[str, int, str, int], pd.DataFrame] = {}
    for d in run_dirs:
        f = d / "predictions.csv"
        if f.exists():
            run = parse_run_dir(d)
            preds[(run.dataset, run.split, run.variant, seed if run.seed is None else run.seed)] = (
                pd.read_csv(f).set_index("video"))
    seeds = df["seed"] if "seed" in df.columns else pd.Series(seed, index=df.index)
    lo, hi, p_single = [], [], []
    for row, run_seed in zip(df.itertuples(), seeds, strict=True):
        p = preds.get((row.dataset, row.split, row.variant, run_seed))
        if p is None or not len(p):
            lo.append(float("nan"))
            hi.append(float("nan"))
            p_single.append(float("nan"))
            continue
        a, b = bootstrap_ci(p["correct"].to_numpy())
        lo.append(a)
        hi.append(b)
        base = preds.get((row.dataset, row.split, "single", run_seed))
        if row.variant == "single" or base is None:
            p_single.append(float("nan"))
            continue
        common = p.index.intersection(base.index)
        test = mcnemar(p.loc[common, "correct"].to_numpy(), base.loc[common, "correct"].to_numpy())
        p_single.append(float(test["p"]))
    return df.assign(top1_ci_low=lo, top1_ci_high=hi, mcnemar_p_vs_single=p_single)


def paper_numbers(table: str) -> pd.DataFrame:
    """The paper's numbers for one table, as stored data with provenance."""
    df = pd.read_csv(PAPER_NUMBERS)
    return df[df["table"] == table]


RUNS = "Runs"  # runs (seeds) per cell, in tables where some cell has more than one (asnet.seeds)


def sd_column(column: str) -> str:
    """The column of the sd over seeds of a mean column (tables with replicates)."""
    return f"{column} sd"


def _runs_per_cell(sub: pd.DataFrame, where: str) -> int:
    """Seeds per split cell of one table row: the same for every split, or ValueError naming the gap."""
    counts = sub.groupby("split").size()
    if counts.nunique() > 1:
        raise ValueError(f"{where}: runs per split differ ({counts.to_dict()}); evaluate every configured seed "
                         "of every split (asnet.seeds) before aggregating")
    return int(counts.iloc[0])


def table6_frame(
    metrics: pd.DataFrame,
    variant_order: list[str],
    paper_column: bool = True,
    costs: dict[tuple[str, str], dict] | None = None,
) -> pd.DataFrame:
    """Wide table: per dataset and variant, top-1 (%) per split, mean over splits, paper's
    value, and (given `costs`) parameters and forward GMACs per view x views.

    With replicate seeds (a `seed` column, asnet.seeds) each split's top-1 is the mean over
    its seeds, the mean over splits the mean over every run, and the table gains `<column>
    sd` (sample sd over seeds: of the split's top-1; of each seed's mean over splits; blank
    for one run) and `Runs` (seeds per split) columns."""
    paper = paper_numbers("table6")
    splits = sorted(metrics["split"].unique())
    replicated = "seed" in metrics.columns and bool((metrics.groupby(["dataset", "variant", "split"]).size() > 1).any())
    out = []
    for dataset in sorted(metrics["dataset"].unique()):
        present = set(metrics.loc[metrics["dataset"] == dataset, "variant"])
        for variant in [v for v in variant_order if v in present]:
            sub = metrics[(metrics["dataset"] == dataset) & (metrics["variant"] == variant)]
            runs = _runs_per_cell(sub, f"{dataset} {variant}")
            row = {"Dataset": dataset, "Model": LABELS.get(variant, variant)}
            per_split = sub.groupby("split")["top1"]
            means, sds = 100 * per_split.mean(), 100 * per_split.std(ddof=1)
            mean_col = f"Mean ({sub['split'].nunique()} splits)"
            for s in splits:
                row[f"Split {s}"] = means.get(s, float("nan"))
                if replicated:
                    row[sd_column(f"Split {s}")] = sds.get(s, float("nan")) if runs > 1 else float("nan")
            row[mean_col] = 100 * sub["top1"].mean()
            if replicated:
                per_seed = 100 * sub.groupby("seed")["top1"].mean()
                row[sd_column(mean_col)] = per_seed.std(ddof=1) if runs > 1 else float("nan")
                row[RUNS] = runs
            if paper_column:
                hit = paper[(paper["dataset"] == dataset) & (paper["row"] == variant) & (paper["column"] == "top1_mean3")]
                row["Paper"] = float(hit["value"].iloc[0]) if len(hit) else float("nan")
                row["Diff"] = row[mean_col] - row["Paper"]  # ours - paper's, same dataset
            if costs is not None and (dataset, variant) in costs:
                c = costs[(dataset, variant)]
                row["Params (M)"] = c["total_params"] / 1e6
                row["GMACs/view"] = c["gmacs_per_view"]
                row["Views"] = int(round((sub["clips"] / sub["videos"]).mean()))
            out.append(row)
    return pd.DataFrame(out)


def write_csv_and_tex(full: pd.DataFrame, shown: pd.DataFrame, out_tex: Path, caption: str,
                      formats: dict[str, str] | None = None) -> None:
    """`full` as out_tex's .csv (4 decimals) and `shown` as its LaTeX table, labelled tab:<stem>."""
    out_tex.parent.mkdir(parents=True, exist_ok=True)
    full.to_csv(out_tex.with_suffix(".csv"), index=False, float_format="%.4f")
    out_tex.write_text(to_latex(shown, caption, f"tab:{out_tex.stem}", formats))


def with_sd(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """`df` as the .tex shows a table with replicates: each of `columns` as "mean $\\pm$ sd" text
    where its row has more than one run (`Runs`), its mean alone where one, "--" where none;
    the sd columns dropped. A table without a `Runs` column is returned as it is."""
    if RUNS not in df.columns:
        return df
    out = df.copy()
    for c in columns:
        sd = df[sd_column(c)]
        out[c] = [("--" if pd.isna(m) else f"{m:.1f}" if n <= 1 or pd.isna(e) else f"{m:.1f} $\\pm$ {e:.1f}")
                  for m, e, n in zip(df[c], sd, df[RUNS], strict=True)]
    out[RUNS] = out[RUNS].astype(int)
    return out.drop(columns=[sd_column(c) for c in columns])


def to_latex(df: pd.DataFrame, caption: str, label: str, formats: dict[str, str] | None = None,
             right: tuple[str, ...] = ()) -> str:
    """booktabs LaTeX: numbers with one decimal (or `formats[column]`), "--" for missing; deterministic.
    Text columns are left-aligned, numbers and the `right` columns (numbers as text) right-aligned."""
    fmt = {c: "{:.1f}" for c in df.columns if pd.api.types.is_float_dtype(df[c])}
    fmt.update({c: "{:.3f}" for c in ("Params (M)", "GMACs/view") if c in df.columns})
    for c in ("Views", RUNS):
        if c in df.columns:
            fmt[c] = "{:d}"
    fmt.update(formats or {})
    styler = df.style.format(fmt, na_rep="--").hide(axis="index")
    if right:
        align = "".join("r" if c in right or pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    else:  # text columns lead in every table without numbers as text
        text_cols = sum(1 for c in df.columns if not pd.api.types.is_numeric_dtype(df[c]))
        align = "l" * text_cols + "r" * (df.shape[1] - text_cols)
    return styler.to_latex(hrules=True, caption=caption, label=label, position="t", column_format=align)


def write_table6(
    metric_files: list[Path],
    variant_order: list[str],
    out_tex: Path,
    out_csv: Path,
    caption: str | None = None,
    paper_column: bool = True,
    costs: dict[tuple[str, str], dict] | None = None,
    anchor_sentence: str = "",
    seed: int = 0,
) -> pd.DataFrame:
    """Aggregate metrics over splits (and replicate seeds, asnet.seeds; `seed`: the config's,
    the seed of the runs without a seed folder) and write results/table6.{csv,tex} (and the
    long form with every metric, e.g. the SPA IoUs, as <name>_metrics.csv); `anchor_sentence`
    (the anchor check's verdict, when it ran) ends the caption."""
    metrics = collect_metrics(metric_files, seed)
    wide = table6_frame(metrics, variant_order, paper_column, costs)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    wide.to_csv(out_csv, index=False, float_format="%.4f")
    metrics.to_csv(out_csv.with_name(out_csv.stem + "_metrics.csv"), index=False, float_format="%.4f")
    datasets = sorted(metrics["dataset"].unique())
    p6 = paper_numbers("table6")
    no_paper = [d for d in datasets if not ((p6["dataset"] == d) & (p6["column"] == "top1_mean3")).any()]
    caption = caption or "Top-1 accuracy (\\%) over the test splits, reproduced by asnet-repro."
    if no_paper and paper_column:
        caption += f" The paper reports no number for {', '.join(no_paper)} (shown as --)."
    if costs:
        caption += (" Params: model + SPA agent. GMACs/view: forward multiply-adds per clip"
                    " (torch FlopCounterMode), SPA's test-time rollouts included; Views: clips per video.")
    caption += excluded_note(metrics) + views_note(metrics) + coverage_note(metrics) + replicates_note(wide)
    if anchor_sentence:
        caption += " " + anchor_sentence
    means = [c for c in wide.columns if c.startswith(("Split ", "Mean (")) and not c.endswith(" sd")]
    out_tex.write_text(to_latex(with_sd(wide, means), caption, f"tab:{out_tex.stem}",
                                right=tuple(means) if RUNS in wide.columns else ()))
    return wide


def replicates_note(wide: pd.DataFrame, splits: bool = True) -> str:
    """Caption sentence of a table with replicate seeds (a `Runs` column); "" without."""
    if RUNS not in wide.columns:
        return ""
    return (" With more than one run (Runs: training seeds per cell), a cell is the mean $\\pm$ the sample sd"
            " over seeds" + (" (of the mean over splits: over each seed's mean)." if splits else "."))


def coverage_note(metrics: pd.DataFrame) -> str:
    """Caption sentence: per (dataset, split) of a real dataset, or of any dataset evaluated on
    fewer than its official test videos, "N of M official test videos" (M from the official
    lists, not the manifest); "" for complete synthetic sets and metrics without the count."""
    from asnet.data.splits import coverage_phrase

    if "videos_official" not in metrics.columns:
        return ""
    rows = metrics.dropna(subset=["videos_official"]).drop_duplicates(["dataset", "split"])
    synthetic = rows.get("dataset_synthetic", pd.Series(False, index=rows.index)).fillna(False).astype(bool)
    short = rows["videos_evaluated"] < rows["videos_official"]
    rows = rows[~synthetic | short]
    if rows.empty:
        return ""
    parts = [f"{r.dataset} split {r.split}: "
             + coverage_phrase(int(r.videos_evaluated), int(r.videos_official), bool(getattr(r, "allow_missing", False)))
             for r in rows.sort_values(["dataset", "split"]).itertuples()]
    below = bool((rows["videos_evaluated"] < rows["videos_official"]).any())
    tail = " (fewer than the paper's test set: not comparable with its numbers)" if below else ""
    return " Coverage: " + "; ".join(parts).replace("_", "\\_") + tail + "."


def excluded_note(metrics: pd.DataFrame) -> str:
    """Caption sentence naming every (dataset, split) whose accuracy is over fewer test videos
    than its list has (videos excluded at frame extraction); "" when none (or older metrics)."""
    if "videos_excluded" not in metrics.columns:
        return ""
    hit = metrics[metrics["videos_excluded"].fillna(0) > 0].drop_duplicates(["dataset", "split"])
    if hit.empty:
        return ""
    parts = [f"{r.dataset} split {r.split}: {int(r.videos_evaluated)} of {int(r.videos_listed)}"
             for r in hit.sort_values(["dataset", "split"]).itertuples()]
    return (" Test videos evaluated (the rest were excluded at frame extraction, see bad\\_videos.csv): "
            + "; ".join(parts) + ".")


def views_note(metrics: pd.DataFrame) -> str:
    """Caption sentence for runs not evaluated with Hara et al.'s views (eval.views)."""
    if "views" not in metrics.columns:
        return ""
    other = sorted(set(metrics["views"].dropna()) - {"hara"})
    names = {"mmaction_10x3": "MMAction2's 10 clips x 3 crops"}
    text = ", ".join(names.get(v, v.replace("_", "\\_")) for v in other)
    return f" Test views: {text} (eval.views), not Hara et al.'s every clip x centre crop." if other else ""


_TITLES = {
    "table1": "Table 1: input of the saliency stream",
    "table2": "Table 2: backbones",
    "table3": "Table 3: fusion of the two streams",
    "table4": "Table 4: SPA actions and training steps",
}
_PAPER_DATASETS = {"ucf101": "Paper UCF-101", "hmdb51": "Paper HMDB-51"}


def load_predictions(metrics_json: Path) -> pd.DataFrame | None:
    """The per-video predictions.csv beside a metrics.json, indexed by video (None if absent)."""
    f = Path(metrics_json).parent / "predictions.csv"
    return pd.read_csv(f).set_index("video") if f.exists() else None


def interval_and_p(pred: pd.DataFrame | None, base: pd.DataFrame | None) -> tuple[float, float, float]:
    """(low, high) of a 95% bootstrap interval of top-1 over `pred`'s videos and McNemar's p
    against `base` on the videos both have; NaN where predictions (or a base) are missing."""
    if pred is None or not len(pred):
        return float("nan"), float("nan"), float("nan")
    lo, hi = bootstrap_ci(pred["correct"].to_numpy())
    if base is None:
        return lo, hi, float("nan")
    common = pred.index.intersection(base.index)
    return lo, hi, mcnemar(pred.loc[common, "correct"].to_numpy(), base.loc[common, "correct"].to_numpy())["p"]


def write_experiment_table(table: str, rows: list[dict], out_tex: Path) -> pd.DataFrame:
    """One of the paper's ablation tables (rows from asnet.stages.experiment_runs): per row
    our top-1 on split 1 with a 95% bootstrap interval over test videos, the McNemar p-value
    against the same backbone's single stream on the same videos, and the paper's UCF-101 /
    HMDB-51 values (provenance in workflow/paper/paper_numbers.csv). On a dataset the paper
    reports, "Paper" is its value for that dataset and "Diff" ours minus the paper's.

    A row with replicate seeds (its `replicates`' metrics.json, asnet.seeds) shows the mean
    top-1 over its runs, with `Top-1 sd` (sample sd over seeds) and `Runs` columns in a table
    where some row has more than one run; the interval and p are its `seed` run's."""
    paper = paper_numbers(table)
    replicated = any(r.get("replicates") for r in rows)
    out = []
    for r in rows:
        m = json.loads(Path(r["metrics"]).read_text())
        top1 = pd.Series([m["top1"], *(json.loads(Path(f).read_text())["top1"] for f in r.get("replicates", []))])
        rec: dict = {"Dataset": r["dataset"], "Model": LABELS.get(r["variant"], r["variant"]),
                     "Top-1": 100 * top1.mean()}
        if replicated:
            rec[sd_column("Top-1")] = 100 * top1.std(ddof=1) if len(top1) > 1 else float("nan")
            rec[RUNS] = len(top1)
        same_run = Path(r["baseline"]) == Path(r["metrics"])
        lo, hi, p_value = interval_and_p(load_predictions(r["metrics"]),
                                         None if same_run else load_predictions(r["baseline"]))
        rec.update({"CI low": 100 * lo, "CI high": 100 * hi, "McNemar p vs single": p_value})
        for ds, col in _PAPER_DATASETS.items():
            hit = paper[(paper["dataset"] == ds) & (paper["row"] == r["paper_row"]) & (paper["column"] == r["paper_col"])]
            rec[col] = float(hit["value"].iloc[0]) if len(hit) else float("nan")
        same = _PAPER_DATASETS.get(r["dataset"])
        rec["Diff"] = rec["Top-1"] - rec[same] if same else float("nan")
        rec["run"] = r["run"]
        out.append(rec)
    wide = pd.DataFrame(out)
    out_tex.parent.mkdir(parents=True, exist_ok=True)
    wide.to_csv(out_tex.with_suffix(".csv"), index=False, float_format="%.4f")
    caption = (f"{_TITLES.get(table, table)}. Top-1 (\\%) on split 1 with a 95\\% bootstrap interval over test "
               "videos and McNemar's p against the same backbone's single stream; the paper's values "
               "(Kinetics-pretrained) for reference, Diff = ours - paper's on the same dataset.")
    if replicated:
        caption += replicates_note(wide, splits=False) + " Interval and p: the run of the config's seed."
    caption += coverage_note(pd.DataFrame([{"dataset": r["dataset"], "split": 1,
                                            **_flat(json.loads(Path(r["metrics"]).read_text()))} for r in rows]))
    out_tex.write_text(to_latex(with_sd(wide.drop(columns=["run"]), ["Top-1"]), caption, f"tab:{out_tex.stem}",
                                {"McNemar p vs single": "{:.3f}"}, right=("Top-1",) if replicated else ()))
    return wide
