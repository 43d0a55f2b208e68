"""benchmarks/loader.py runs end to end at tiny settings and prints one line per stored format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "loader.py"
FORMATS = (
    "npy", "npy_u8crop", "npy_small", "jpeg_pack", "jpeg", "mjpeg", "mpeg4_g8", "h264_g8", "h264_long", "src_avi"
)


def test_loader_benchmark_smoke(tmp_path: Path) -> None:
    """--smoke: every format, and the DataLoader delivery of the package's stores with 1 and 2
    workers, crops in the workers and in the main process."""
    out_json = tmp_path / "loader.json"
    cmd = [sys.executable, str(SCRIPT), "--smoke", "--workdir", str(tmp_path / "work"), "--json", str(out_json)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in FORMATS:
        assert any(
            line.startswith(f"format {name}: ") and "clips/s @16f" in line and "@64f" in line
            for line in lines
        ), (
            name,
            proc.stdout,
        )
        assert any(line.startswith(f"| {name} |") for line in lines), proc.stdout
        assert any(line.startswith(f"workers {name}: ") for line in lines), proc.stdout
    res = json.loads(out_json.read_text())
    assert set(res["formats"]) == set(FORMATS)
    for entry in res["formats"].values():
        assert entry["bytes_per_video_s"] > 0
        assert entry["16f"]["clips_per_s"] > 0 and entry["64f"]["clips_per_s"] > 0
    assert abs(res["formats"]["jpeg"]["16f"]["vs_jpeg"] - 1.0) < 1e-9
    # the packed JPEG store is a fraction of the .npy one
    assert res["formats"]["jpeg_pack"]["bytes_total"] * 4 < res["formats"]["npy"]["bytes_total"]
    cases = {(e["format"], e["crop"], e["workers"]) for e in res["loader_workers"].values()}
    assert cases == {(f, m, k) for f in ("npy", "jpeg_pack") for m in ("workers", "main") for k in (1, 2)}
    assert all(e["clips_per_s"] > 0 for e in res["loader_workers"].values())
    assert any(line.startswith("delivered jpeg_pack/workers/2: ") for line in lines), proc.stdout


def test_loader_benchmark_help() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "--videos" in proc.stdout and "--cold" in proc.stdout
