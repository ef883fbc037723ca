#!/usr/bin/env bash
# Second bounded GPU check (about 4 minutes at most): every CUDA-marked test, the huge-batch experiment
# (issue 7) and the app-attached vs headless trainer speed (issue 3). Results: $OUT/summary.txt and one
# $OUT/results.tar.gz. Needs textual on the GPU machine: carry build/tui-pkgs (pip install --target).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
RES="$OUT/res"; mkdir -p "$RES"
export PYTHONPATH=.:build/tui-pkgs PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
DATA=/tmp/bstui-data
S="$OUT/summary.txt"; : >"$S"
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >"$RES/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$S"; tail -n 40 "$RES/$name.log" >>"$S"; echo >>"$S"; }
"$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >>"$S" 2>&1
step cuda_tests 50 "$PY" -m pytest -p no:cacheprovider -q -ra -m cuda tests/trainer tests/unit
step huge_batch 100 "$PY" -m trainer run experiments/huge-batch.toml --set "data.root=\"$DATA\"" \
    --set data.download=false --device cuda --quiet --out "$RES/huge-batch"
"$PY" -m trainer report "$RES/huge-batch" >"$RES/huge-report.log" 2>&1; tail -n 40 "$RES/huge-report.log" >>"$S"
step ui_attached 80 "$PY" bench/ui.py --skip-frame --quick --device cuda --json "$RES/ui.json"
rm -rf "$RES/huge-batch/checkpoints"; gzip -q "$RES/huge-batch/events.jsonl" 2>/dev/null
tar -C "$OUT" -czf "$OUT/results.tar.gz" res && rm -rf "$RES"
