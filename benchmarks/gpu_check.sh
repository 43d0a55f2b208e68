#!/usr/bin/env bash
# The prepared GPU check in one line: `bash benchmarks/gpu_check.sh [OUT.json] [gpu_check.py options]`.
# Installs the carried wheels of .whl/ (benchmarks/gpu_wheels.txt) when there are any, then runs
# benchmarks/gpu_check.py, writing $OUT/gpu_check.json (or the path given) and a .log beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
site="${GPU_CHECK_SITE:-/tmp/site}"  # where the wheels are unpacked
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
out="${1:-${OUT:-.}/gpu_check.json}"
shift || true
export PYTHONUNBUFFERED=1
# gpu_check.py keeps its own budget (--budget-s, 480 s); the timeout only stops a step that hangs.
timeout -k 10 "${GPU_CHECK_TIMEOUT_S:-540}" python3 benchmarks/gpu_check.py --out "$out" "$@" 2>&1 | tee "${out%.json}.log"
