"""The workflow on a real (single-node) SLURM cluster through profiles/slurm.

The cluster (tests/slurm_cluster.py) runs here: munged, slurmctld and slurmd from Debian's
`slurm-wlm` and `munge`, which `.ci/run` installs. Snakemake submits every job of the tiny
Table 6 with sbatch (snakemake-executor-plugin-slurm); the test checks the table and that
every job really was a SLURM job, with the resources of the shipped profile.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import slurm_cluster

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")


@pytest.fixture(scope="module")
def cluster() -> Iterator[slurm_cluster.SlurmCluster]:
    """A running single-node cluster; its daemons are stopped by PID whatever happens."""
    problem = slurm_cluster.unavailable()
    if problem:
        if os.environ.get("CI"):  # CI installs SLURM (.ci/run): missing is a failure there
            pytest.fail(f"cannot run the SLURM test cluster: {problem}")
        pytest.skip(problem)
    # Not under pytest's tmp_path: munge's socket path must stay short (sun_path, 108 bytes).
    root = Path(tempfile.mkdtemp(prefix="asnet-slurm-", dir="/tmp"))
    c = slurm_cluster.SlurmCluster(root)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        shutil.rmtree(root, ignore_errors=True)


def _job(cluster: slurm_cluster.SlurmCluster, job_id: str) -> dict[str, str]:
    """`scontrol show job` of a (finished) job as a mapping; MinJobAge keeps it for 300 s."""
    out = subprocess.run(["scontrol", "--oneliner", "show", "job", job_id], env=cluster.env(),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"scontrol show job {job_id}: {out.stderr}"
    return dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)


def _megabytes(value: str) -> float:
    """scontrol's memory ("64000M", "62.50G") in MB."""
    return float(value[:-1]) * {"M": 1, "G": 1024, "T": 1024**2}[value[-1]]


@pytest.mark.slow
def test_table6_through_slurm_profile(cluster: slurm_cluster.SlurmCluster, tmp_path: Path) -> None:
    work = tmp_path / "work"
    ci_profile = cluster.ci_profile(tmp_path / "ci-profile")
    cmd = [sys.executable, "-m", "snakemake", "results/table6.tex", "--snakefile", str(REPO / "Snakefile"),
           "--directory", str(work), "--profile", str(PROFILE), "--profile", str(ci_profile),
           "--config", "preset=tiny"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=cluster.env(), capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{output[-5000:]}\n{cluster.logs()}"
    print(f"snakemake through SLURM: {time.monotonic() - t0:.0f} s")

    tex = (work / "results/table6.tex").read_text()
    assert "ASNet (SPA)" in tex and "Single stream" in tex

    # Every job of the DAG but the table (a localrule: an aggregation of seconds) was submitted
    # with sbatch, and SLURM ran each to completion.
    total = int(re.search(r"^total\s+(\d+)$", output, re.M).group(1))
    submitted = SUBMITTED.findall(output)
    assert total == 9 and len(submitted) == 8, output[-5000:]  # prepare, 2 extract_chunk, extract, 2 train, 2 evaluate
    assert re.search(r"^localrule table6:", output, re.M), output[-5000:]
    jobs = {slurm_id: _job(cluster, slurm_id) for _, slurm_id, _ in submitted}
    for slurm_id, job in jobs.items():
        assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", (slurm_id, job)
        assert job["NodeList"] == cluster.host and job["Partition"] == "ci"
    rules = sorted(re.match(r"rule_([a-z0-9_]+?)(_wildcards_.*)?$", j["Comment"]).group(1) for j in jobs.values())
    assert rules == sorted(["prepare", "extract_chunk", "extract_chunk", "extract", "train", "train",
                            "evaluate", "evaluate"])

    # The shipped profile's resources reached sbatch: train 48 h / 64000 MB, others 60 min /
    # 8000 MB (evaluate 8 h); threads (train.threads: 1) became --cpus-per-task; tiny runs on
    # CPU: no GPU asked.
    for job in jobs.values():
        rule = re.match(r"rule_([a-z0-9_]+?)(_wildcards_.*)?$", job["Comment"]).group(1)
        want = {"train": ("2-00:00:00", 64000, 1), "evaluate": ("08:00:00", 32000, 1),
                "extract_chunk": ("08:00:00", 16000, 1)}.get(rule, ("01:00:00", 8000, 1))
        got = (job["TimeLimit"], _megabytes(job["MinMemoryNode"]), int(job["MinCPUsNode"]))
        assert got == want, (rule, job)
        assert "gpu" not in job.get("TresPerNode", "") + job.get("TresPerJob", ""), job

    # The plugin's per-job SLURM logs: each job re-ran Snakemake inside its allocation
    # (the slurm-jobstep executor), which started the rule as job step 0 with srun.
    slurmd_log = (cluster.root / "log" / "slurmd.log").read_text()
    for _, slurm_id, log in submitted:
        text = Path(log).read_text()
        assert "--executor slurm-jobstep" in text and "Finished jobid" in text, (slurm_id, text[-2000:])
        assert f"[{slurm_id}.0] done with job" in slurmd_log, slurm_id
    train_logs = list((work / ".snakemake/slurm_logs/rule_train").rglob("*.log"))
    assert len(train_logs) == 2
