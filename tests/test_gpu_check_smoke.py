"""benchmarks/gpu_check.py runs end to end on the CPU at tiny sizes and writes every case,
with nothing importable but what a bare CUDA PyTorch image has and benchmarks/gpu_wheels.txt adds."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402

IMAGE = ("torch", "numpy", "pandas", "pyyaml")  # what the GPU machine's image is taken to hold


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bare_site(where: Path) -> Path:
    """A folder holding only the image's packages, the listed wheels and what they require
    (links to this interpreter's installed files): with `python -S` and PYTHONPATH on it, every
    other package is missing, as on that machine (optional imports take their fallbacks)."""
    wheels = [ln.split("==")[0] for ln in (REPO / "benchmarks" / "gpu_wheels.txt").read_text().splitlines()
              if ln.strip() and not ln.startswith("#")]
    todo, seen = [*IMAGE, *wheels], set()
    site = where / "bare_site"
    site.mkdir()
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement of another platform (CUDA libraries) or Python version
        todo += [re.split(r"[<>=!~\[; (]", r, maxsplit=1)[0] for r in dist.requires or [] if "extra ==" not in r]
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "bin")}:
            src, dst = Path(dist.locate_file(top)), site / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
    return site


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_gpu_check_smoke(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "PYTHONPATH": str(bare_site(tmp_path))}  # -S: no site-packages, no editable install
    cmd = [sys.executable, "-S", str(SCRIPT), "--device", "cpu", "--smoke", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    names = [c.name for c in gpu_check.planned_cases()] + ["asnet_16f_best"]
    for name in names:
        if name in doc["skipped"]:
            # CPU only: bf16 with channels_last_3d is never run there (asnet/device.py), and the
            # ASNet rerun is skipped when the fastest combination is the default one.
            reason = doc["skipped"][name]
            assert ("bf16" in name and "_cl_" in name and reason.startswith("cpu:")) or name == "asnet_16f_best", (name, reason)
            continue
        row = doc["cases"][name]
        assert "error" not in row, (name, row.get("error"), row.get("traceback"))
        for key in ("median_s", "min_s", "clips_per_s", "gflop_per_step", "achieved_tflops"):
            assert _number(row[key]) and row[key] > 0, (name, key, row[key])
        assert row["max_memory_allocated"] is None  # CPU: no allocator statistics
        assert row["mfu"] is None  # no CPU peak in the table
        assert (row["plan_prediction"] is None) == (row["plan_reason"] is not None)
        if row["plan_prediction"] is not None:
            assert _number(row["plan_prediction"]) and row["plan_prediction"] > 0
        cfg = row["config"]
        assert {"variant", "clip_len", "batch", "amp", "channels_last", "cudnn_benchmark"} <= set(cfg)
        if cfg["variant"] == "asnet":
            assert _number(row["model_only_median_s"]) and 0 <= row["outside_model_share"] <= 1
    assert doc["cases"]["single_64f"]["config"]["clip_len"] == 2 * doc["cases"]["single_16f"]["config"]["clip_len"]
    ratio = doc["derived"]["asnet_vs_single"]
    assert _number(ratio["time_ratio"]) and _number(ratio["flop_ratio"]) and isinstance(ratio["met"], bool)
    assert isinstance(doc["derived"]["asnet_16f_outside_model"]["met"], bool)
    rec = doc["recommendations"]
    assert rec["amp"] in ("fp16", "bf16") and isinstance(rec["channels_last"], bool)
    assert isinstance(rec["cudnn_benchmark"], bool) and rec["fastest_case"] in doc["cases"]
    env = doc["environment"]
    assert env["torch"] and env["device_type"] == "cpu" and env["peak_tflops"] == "unknown"


def test_gpu_check_budget_skips_and_records(tmp_path: Path) -> None:
    """A budget too small for anything: every case is recorded as skipped, the file still written."""
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--smoke", "--out", str(out), "--budget-s", "0"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert not doc["cases"]
    assert {c.name for c in gpu_check.planned_cases()} <= set(doc["skipped"])


def test_gpu_check_uses_plan_when_present(tmp_path: Path, monkeypatch) -> None:
    """With asnet.plan importable, its step_peak_bytes is called with the case's config and batch."""
    import types

    calls = []

    def step_peak_bytes(cfg, variant_name: str, num_classes: int, micro_batch: int) -> int:
        calls.append((variant_name, num_classes, micro_batch, cfg.train.amp, cfg.input.clip_len))
        return 12345

    monkeypatch.setitem(sys.modules, "asnet.plan", types.SimpleNamespace(step_peak_bytes=step_peak_bytes))
    args = gpu_check.parse_args(["--device", "cpu", "--smoke", "--out", str(tmp_path / "x.json")])
    checker = gpu_check.Checker(args)
    case = gpu_check.Case("asnet_16f", "asnet", False, "bf16", False, True)
    out = checker.plan(checker.config(case), case)
    assert out["plan_prediction"] == 12345 and out["plan_reason"] is None
    assert calls == [("asnet", gpu_check.NUM_CLASSES, 2, "bf16", 4)]
