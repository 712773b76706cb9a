#!/usr/bin/env bash
# The checks that need a GPU, in one run: CuPy test variants, gradient checks of
# every cell and depth on the GPU, a short training run, and the speed benchmark.
# Usage: OUT=results-dir bash benchmarks/gpu_check.sh   (needs CuPy and a CUDA device)
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 RNNCAP_DEVICE=gpu
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"

echo "== CuPy variants of the tests"
python3 -m pytest tests/test_gradients.py tests/test_network.py tests/test_tasks.py -q -p no:cacheprovider -k cupy 2>&1 | tail -15 | tee "$OUT/pytest-cupy.txt"

echo "== gradcheck on the GPU: every cell, depths 1-4 (+RNN 2-4), both nonlinearities"
: > "$OUT/gradcheck-gpu.jsonl"
for cell in rnn irnn ugrnn gru lstm plusrnn; do
  case $cell in irnn|plusrnn) nls="default";; *) nls="tanh relu";; esac
  for depth in 1 2 3 4; do
    [ $cell = plusrnn ] && [ $depth = 1 ] && continue
    for nl in $nls; do
      args=(--cell $cell --depth $depth --json); [ $nl != default ] && args+=(-s $nl)
      python3 -m rnncap gradcheck "${args[@]}" >> "$OUT/gradcheck-gpu.jsonl" || echo "FAILED $cell $depth $nl"
    done
  done
done
python3 - "$OUT/gradcheck-gpu.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{len(rows)} gradchecks on {rows[0]['device']}: all passed = {all(r['passed'] for r in rows)}, "
      f"largest relative error {max(r['max_error'] for r in rows):.2e}")
PY

echo "== a short training run on the GPU"
python3 -m rnncap train --task parens --cell gru --budget 20000 --steps 300 --lr 3e-3 --json \
  | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['status'], d['steps'], 'steps', round(d['wall_time'],1), 's', d['metrics'])"

echo "== speed: rnncap on CuPy against PyTorch on CUDA"
python3 benchmarks/speed.py --device gpu --repeats 15 --out "$OUT/speed-gpu.json"
