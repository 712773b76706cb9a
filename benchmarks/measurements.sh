#!/usr/bin/env bash
# Measurements quoted in REPRODUCTION.md that are not experiments, run as parallel
# single-threaded processes (each one alone would take the same time on one core):
#   - per-unit memory, every cell: rnncap memory --n-in 32 --units 8,16,24,32,48
#   - GP against random search on the capacity task (GRU, budget 1000, 40 trials each)
# Usage: OUT=dir bash benchmarks/measurements.sh
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
nproc --all > "$OUT/cores.txt"          # before OMP_NUM_THREADS, which nproc obeys
export PYTHONUNBUFFERED=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
RNNCAP="${RNNCAP:-rnncap}"
for cell in rnn irnn ugrnn gru lstm plusrnn; do
  depth=1; [ $cell = plusrnn ] && depth=2
  ( start=$SECONDS
    $RNNCAP memory --cell $cell --depth $depth --n-in 32 --units 8,16,24,32,48 \
      --time-limit "${MEMORY_TIME_LIMIT:-3600}" --store "$OUT/memory.sqlite" --json > "$OUT/memory-$cell.json"
    echo "$((SECONDS - start)) s" > "$OUT/memory-$cell.time" ) &
done
for strategy in gp random; do
  $RNNCAP tune --study gru-capacity-$strategy --task capacity --cell gru --budget 1000 --strategy $strategy \
    --trials 40 --steps 5000 -o batch_size=256 --workers 4 --store "$OUT/tuner-capacity.sqlite" --json \
    > "$OUT/tune-$strategy.json" &
done
wait
for cell in rnn irnn ugrnn gru lstm plusrnn; do
  python3 - "$OUT/memory-$cell.json" "$(cat $OUT/memory-$cell.time)" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
rows = " ".join(f"{r['n_h']}:{r['error']:.3f}/{r['reference']:.3f}" for r in d["rows"])
print(f"memory {d['cell']:8s} d{d['depth']} ({sys.argv[2]}) n_h:error/reference {rows}")
PY
done
for strategy in gp random; do
  python3 -c "import json,sys; d=json.load(open('$OUT/tune-$strategy.json')); b=d['best']; print('$strategy', d['trials'], 'trials, best bits', round(b['objective']), 'bits/param', round(b['metrics']['bits_per_parameter'], 3), 'infeasible', d['infeasible'])"
done
