"""benchmarks/train_step.py runs end to end at the tiniest settings and reports its ratios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "train_step.py"


def test_train_step_benchmark_smoke(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    cmd = [
        sys.executable, str(SCRIPT), "--depth", "10", "--width", "8", "--size", "32", "--clip-len", "4",
        "--batch", "2", "--frame", "40", "70", "--train-steps", "2", "--warmup", "1", "--repeats", "1",
        "--json", str(out_json),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in ("single_step_speedup_vs_plain_fp32", "asnet_step_vs_single_step", "asnet_inference_vs_single_inference"):
        assert any(line.startswith(f"ratio {name}: ") for line in lines), proc.stdout
    assert any(line.startswith("conv peak") for line in lines), proc.stdout
    res = json.loads(out_json.read_text())
    assert set(res["cases"]) == {"train_plain", "train_single", "train_asnet", "infer_single", "infer_asnet"}
    assert all(c["clips_per_s"] > 0 and c["peak_rss_mb"] > 0 for c in res["cases"].values())
    assert set(res["ratios"]) == {"single_vs_plain", "asnet_vs_single_train", "asnet_vs_single_infer"}


def test_train_step_benchmark_help() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--depth" in proc.stdout and "--repeats" in proc.stdout


def test_plan_memory_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/plan_memory.py at its tiniest: one ratio line per case, and the prediction
    within 15% of the real step's live peak (LiveBytes on real tensors)."""
    script = REPO / "benchmarks" / "plan_memory.py"
    out_json = tmp_path / "plan_memory.json"
    cmd = [sys.executable, str(script), "--width", "8", "--size", "32", "--batch", "2", "--frames", "4",
           "--frame", "40", "54", "--train-steps", "2", "--classes", "3", "--json", str(out_json)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sum(line.startswith("ratio ") for line in proc.stdout.splitlines()) == 2, proc.stdout
    res = json.loads(out_json.read_text())
    assert set(res) == {"single_4f", "asnet_4f"}
    assert all(0.85 <= r["ratio_live"] <= 1.15 for r in res.values()), res


def test_crops_benchmark_smoke(tmp_path: Path) -> None:
    """benchmarks/crops.py times both crop methods and writes their ratio."""
    out_json = tmp_path / "crops.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "crops.py"), "--batch", "2", "--clip-len", "2",
           "--frame", "20", "30", "--size", "8", "--repeats", "1", "--json", str(out_json)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out_json.read_text())
    assert set(res["s_per_batch"]) == {"window", "matrix"} and res["matrix_over_window"] > 0
