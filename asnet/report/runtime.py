"""results/runtime.csv: the run times Snakemake measured, summed per stage.

Every job rule writes a `benchmark:` file, by convention `results/benchmarks/<rule>.tsv`
(rules without wildcards) or `results/benchmarks/<rule>/<wildcards as in the log path>.tsv`,
so a stage is the first path component under the benchmarks folder, without `.tsv`. Each
file holds Snakemake's columns (s, h:m:s, max_rss, max_vms, max_uss, max_pss, io_in, io_out,
mean_load, cpu_time; one row per repeat); whatever files exist are read, so the table covers
exactly the jobs that ran here.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

BENCHMARK_DIR = Path("results") / "benchmarks"
# Snakemake's benchmark columns and how they add up over a stage's jobs: times and I/O sum,
# memory peaks take the largest job's.
SUMMED = ("s", "cpu_time", "io_in", "io_out")
PEAKS = ("max_rss", "max_vms", "max_uss", "max_pss")
COLUMNS = ("stage", "jobs", "s", "h:m:s", "max_job_s", "cpu_time", "max_rss", "max_vms", "max_uss", "max_pss",
           "io_in", "io_out")


def read_benchmarks(bench_dir: Path = BENCHMARK_DIR) -> pd.DataFrame:
    """One row per benchmark file and repeat: `stage`, `file` and Snakemake's numeric columns
    (values Snakemake could not measure, written as "NA" or "-", become NaN)."""
    bench_dir = Path(bench_dir)
    frames = []
    for path in sorted(bench_dir.rglob("*.tsv")):
        rel = path.relative_to(bench_dir)
        df = pd.read_csv(path, sep="\t")
        if "s" not in df.columns:
            raise ValueError(f"{path}: not a Snakemake benchmark file (no `s` column); remove it from {bench_dir}")
        stage = rel.parts[0].removesuffix(".tsv")
        numeric = df.drop(columns=[c for c in ("h:m:s",) if c in df.columns]).apply(pd.to_numeric, errors="coerce")
        frames.append(numeric.assign(stage=stage, file=rel.as_posix()))
    if not frames:
        return pd.DataFrame(columns=["stage", "file", *SUMMED, *PEAKS])
    return pd.concat(frames, ignore_index=True)


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def summarise(bench: pd.DataFrame) -> pd.DataFrame:
    """Per stage: jobs (benchmark files), total wall seconds `s` (and as h:m:s), the longest
    job's seconds, total CPU seconds, the largest job's memory peaks (MB) and total I/O (MB);
    a last row `total` over every stage. Stages in order of total time, longest first."""
    if bench.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    per_file = bench.groupby(["stage", "file"], sort=True)
    jobs = per_file.agg({**{c: "sum" for c in SUMMED if c in bench}, **{c: "max" for c in PEAKS if c in bench}})
    grouped = jobs.groupby(level="stage")
    out = grouped.agg({**{c: "sum" for c in SUMMED if c in jobs}, **{c: "max" for c in PEAKS if c in jobs}})
    out.insert(0, "jobs", grouped.size())
    out["max_job_s"] = grouped["s"].max()
    out = out.sort_values("s", ascending=False, kind="stable")
    total = {"jobs": int(out["jobs"].sum()), "max_job_s": out["max_job_s"].max(),
             **{c: out[c].sum(min_count=1) for c in SUMMED if c in out},
             **{c: out[c].max() for c in PEAKS if c in out}}
    out.loc["total"] = pd.Series(total)
    out["h:m:s"] = out["s"].map(_hms)
    out["jobs"] = out["jobs"].astype(int)
    out = out.reset_index(names="stage")
    return out[[c for c in COLUMNS if c in out.columns]].round(2)


def write_runtime(out_csv: Path = Path("results/runtime.csv"), bench_dir: Path = BENCHMARK_DIR) -> pd.DataFrame:
    """results/runtime.csv: `summarise` of every benchmark file under `bench_dir`."""
    table = summarise(read_benchmarks(bench_dir))
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_csv, index=False)
    return table
