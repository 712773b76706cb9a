#!/usr/bin/env bash
# The checks that need a GPU, in one run. Sections (default: all of them, in this order):
#   tests       every test's CuPy variant (gradients, networks, tasks, populations)
#   gradcheck   `rnncap gradcheck` on the GPU: every cell, depths 1-4 (+RNN 2-4), both nonlinearities
#   smoke       a short training run and a short `rnncap capacity` search with a population, on the GPU
#   throughput  benchmarks/throughput.py: capacity trials per hour, K = 1 .. 4096
#   speed       benchmarks/speed.py: one network on CuPy against PyTorch on CUDA
# Usage: OUT=results-dir bash benchmarks/gpu_check.sh [section ...]   (needs CuPy and a CUDA device)
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 RNNCAP_DEVICE=gpu
sections=${*:-tests gradcheck smoke throughput speed}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"

for section in $sections; do
  echo "== $section"
  case $section in
  tests)
    # test_cluster.py needs Dask (the test extra) and has no CuPy variants
    python3 -m pytest tests -q -p no:cacheprovider -k cupy --ignore=tests/test_cluster.py 2>&1 | tail -15 \
      | tee "$OUT/pytest-cupy.txt" ;;
  gradcheck)
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
    ;;
  smoke)
    python3 -m rnncap train --task parens --cell gru --budget 20000 --steps 300 --lr 3e-3 --json \
      | python3 -c "import json,sys; d=json.load(sys.stdin)
print(d['status'], d['steps'], 'steps', round(d['wall_time'], 1), 's', d['metrics'])"
    python3 -m rnncap capacity --cell gru --budget 1000 --trials 16 --population 16 --steps 2000 \
      --store "$OUT/smoke.sqlite" 2>&1 | tail -6 ;;
  throughput)
    python3 benchmarks/throughput.py --device gpu --populations 1,8,32,128,1024,4096 --steps 100 \
      --out "$OUT/throughput-gpu.json" ;;
  speed)
    python3 benchmarks/speed.py --device gpu --repeats 15 --out "$OUT/speed-gpu.json" ;;
  *) echo "unknown section $section" ;;
  esac
done
