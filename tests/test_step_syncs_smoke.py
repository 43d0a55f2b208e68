"""benchmarks/step_syncs.py --smoke runs and reports its counts (no performance goal asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_step_syncs_smoke(tmp_path: Path) -> None:
    out = tmp_path / "syncs.json"
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "step_syncs.py"), "--smoke", "--json", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "host syncs per step" in proc.stdout
    res = json.loads(out.read_text())
    for key in ("syncs_per_step", "host_reads_per_step", "unknown_reads_per_step", "h2d_bytes_per_step",
                "clip_batch_bytes", "h2d_over_clip_batch", "h2d_bytes_batch32", "before_computed_bytes_per_step"):
        assert key in res, key
    sites = res["sites"]
    assert sites and all({"site", "op", "kind", "per_step"} <= set(s) for s in sites)
    h2d = [s for s in sites if s["kind"] == "h2d"]
    # Structural: the uint8 clip batch crosses once (in Frames.of), with the worker crops of the
    # paper preset (train.crop_in_workers) and only small metadata tensors besides.
    clips = [s for s in h2d if s["dtype"] == "uint8" and len(s["shape"]) == 5 and s["shape"][-1] == 3]
    assert len(clips) == 1 and clips[0]["per_step"] == 1 and clips[0]["site"].startswith("asnet/data/crops.py")
    assert clips[0]["bytes_per_step"] == res["clip_batch_bytes"]
    big = [s for s in h2d if s is not clips[0] and s["bytes_per_step"] > 4096]
    assert all(s["dtype"] == "uint8" for s in big), big  # only the uint8 worker crops besides the clips
    assert sum(s["bytes_per_step"] for s in big) == res["worker_crop_bytes"]
    assert 0 <= res["metadata_bytes_per_step"] < 4096
    assert res["h2d_bytes_per_step"] == res["clip_batch_bytes"] + res["worker_crop_bytes"] + res["metadata_bytes_per_step"]
