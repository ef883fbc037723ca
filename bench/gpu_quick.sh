#!/usr/bin/env bash
# The session's one bounded GPU check (about 5 minutes at most): fast-path equality tests, the study's
# full sweep on the fast path, and the speed and split benchmarks; everything lands in $OUT as
# summary.txt plus one results.tar.gz (the device tool returns at most 8 files).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-./gpu-out}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
RES="$OUT/res"; mkdir -p "$RES"
export PYTHONPATH=. PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
DATA=/tmp/bstui-data
S="$OUT/summary.txt"; : >"$S"
step() { local name=$1 limit=$2; shift 2; local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >"$RES/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$S"; tail -n 25 "$RES/$name.log" >>"$S"; echo >>"$S"; }
"$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' >>"$S" 2>&1
step fastpath_tests 60 "$PY" -m pytest -p no:cacheprovider -q -ra -x tests/trainer/test_fastpath.py tests/trainer/test_split.py
step study_sweep 100 "$PY" -m trainer run --set data.dataset=synthetic-digits --set "data.root=\"$DATA\"" \
    --device cuda --quiet --out "$RES/study-run"
"$PY" -m trainer report "$RES/study-run" >"$RES/report.log" 2>&1
step speed 80 "$PY" bench/speed.py --device cuda --deadline 65 --root "$DATA" --json "$RES/speed.json"
step split 30 "$PY" bench/split.py --device cuda --json "$RES/split.json"
rm -f "$RES/study-run/events.jsonl.gz"; gzip -q "$RES/study-run/events.jsonl" 2>/dev/null
tar -C "$OUT" -czf "$OUT/results.tar.gz" res && rm -rf "$RES"
