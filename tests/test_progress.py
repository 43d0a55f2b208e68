"""Progress a person sees on the Snakemake console: a real tiny-preset run of one evaluation
(extraction, training, evaluation jobs) prints each job's progress lines, prefixed with the
job, on Snakemake's stderr, while the tqdm bars stay in the jobs' log files; an extraction
chunk starts no more decoder processes than the threads its job was given."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


@pytest.mark.slow
def test_snakemake_console_shows_each_jobs_progress(tmp_path: Path) -> None:
    cfg = tmp_path / "progress.yaml"
    # 4 decoders wanted; Snakemake scales the chunk job's threads down to --cores 2.
    cfg.write_text("preset: tiny\nframes: {workers: 4}\n")
    target = "results/eval/synthetic_tiny/split1/single/metrics.json"
    proc = subprocess.run(SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
                                       "--cores", "2", target, "--configfile", str(cfg)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    console = proc.stderr

    def lines(prefix: str) -> list[str]:
        return re.findall(rf"^\[{re.escape(prefix)}\] (.*)$", console, flags=re.M)

    for chunk in (0, 1):
        chunk_lines = lines(f"extract_chunk dataset=synthetic_tiny chunk={chunk}")
        assert any(re.search(r"decoding \d+ videos in 2 decoder processes", s) for s in chunk_lines), console[-3000:]
    train = lines("train dataset=synthetic_tiny split=1 variant=single")
    assert [s.split(":")[0] for s in train if s.startswith("epoch ")] == ["epoch 0", "epoch 1"], console[-3000:]
    assert any(s.startswith("validating epoch 0 ") for s in train)
    evaluate = lines("evaluate dataset=synthetic_tiny split=1 variant=single")
    counts = [re.fullmatch(r"evaluate single: (\d+) of (\d+) videos", s) for s in evaluate]
    assert counts and all(counts), evaluate
    assert counts[-1][1] == counts[-1][2]  # the last line is the whole test list
    # The bars stay in the log files, which also have the progress lines.
    assert "%|" not in console
    train_log = (tmp_path / "results/logs/synthetic_tiny/split1/single/train.log").read_text()
    assert "asnet.train.loop: epoch 1:" in train_log and "%|" in train_log
