"""The floor: one capacity-task training step as a bare NumPy function, against rnncap's step.

The bare function does the same arithmetic as rnncap for a vanilla RNN (tanh)
on the capacity task: input projection of step 1 in one GEMM (the input is
zero after it, and both sides know it), the
recurrence, the readout and softmax cross-entropy at the last step, BPTT, the
gradient's global norm and clipping, and an Adam update, with no framework
around it (no dicts of named parameters, no caches, no masks, no checks). It
is what rnncap's step could cost if Python did nothing but call NumPy.

Both sides draw their minibatch of 256 from a dataset of ``b = 3P`` samples
the same way. Medians of interleaved repeats; the ratio is rnncap / floor,
the median over repeats of the two times measured back to back.

    python benchmarks/floor.py                       # RNN, 1000-parameter budget, T = 5, minibatch 256
    python benchmarks/floor.py --out benchmarks/results/floor-cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap.network import Network, count_params, units_for_budget  # noqa: E402
from rnncap.optim import Adam, clip_by_norm, flatten, learning_rate  # noqa: E402
from rnncap.tasks import make_task  # noqa: E402


def bare_step(P, M, V, t, x_all, labels, rng, lr, batch=256, clip=10.0, b1=0.9, b2=0.999, eps=1e-8):
    """One step on a minibatch: P, M, V are lists [W_x, W_h, b, h0, W_o, b_o] (and Adam's moments)."""
    W_x, W_h, b, h0, W_o, b_o = P
    rows = rng.choice(x_all.shape[1], size=batch, replace=False)
    x = numpy.take(x_all, rows, axis=1)                                  # (T, B, n_in)
    y = labels[rows]                                                     # (B,)
    T, B, n_in = x.shape
    xw = numpy.empty((T, B, b.shape[0]), dtype=x.dtype)
    xw[0] = x[0] @ W_x + b                                               # the input is zero after step 1
    xw[1:] = b
    hs = [numpy.repeat(h0[None, :], B, axis=0)]
    for k in range(T):
        hs.append(numpy.tanh(xw[k] + hs[-1] @ W_h))
    logits = hs[-1] @ W_o + b_o                                          # (B, 2)
    z = logits - logits.max(axis=1, keepdims=True)
    p = numpy.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -numpy.log(p[numpy.arange(B), y]).mean()
    dlogits = p
    dlogits[numpy.arange(B), y] -= 1.0
    dlogits /= B
    dW_o, db_o = hs[-1].T @ dlogits, dlogits.sum(axis=0)
    dh = dlogits @ W_o.T
    dW_h = numpy.zeros_like(W_h)
    dxw = numpy.empty_like(xw)
    for k in reversed(range(T)):
        dz = dh * (1.0 - hs[k + 1] * hs[k + 1])
        dW_h += hs[k].T @ dz
        dh = dz @ W_h.T
        dxw[k] = dz
    dxw2 = dxw.reshape(T * B, -1)
    dW_x, db = x[0].T @ dxw[0], dxw2.sum(axis=0)
    dh0 = dh.sum(axis=0)
    G = [dW_x, dW_h, db, dh0, dW_o, db_o]
    norm = math.sqrt(float(sum((g * g).sum() for g in G)))
    if norm > clip:
        for g in G:
            g *= clip / norm
    step = lr * math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
    for p_, m, v, g in zip(P, M, V, G):
        m *= b1
        m += (1.0 - b1) * g
        v *= b2
        v += (1.0 - b2) * g * g
        p_ -= step * m / (numpy.sqrt(v) + eps)
    return loss


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=500, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    n_h = units_for_budget("rnn", 1, 32, 2, args.budget)
    n_params = count_params("rnn", 1, 32, 2, n_h)
    task = make_task("capacity", {"n_samples": 3 * n_params, "n_in": 32, "unroll": 5, "batch_size": 256})
    net = Network("rnn", 1, 32, 2, n_h, rng=0)
    labels = numpy.asarray(task.labels)

    def run_rnncap():
        rng, adam = numpy.random.default_rng(0), Adam()
        state = adam.init(net.params)
        for step in range(args.steps):
            batch = task.batch(step, rng)
            result = net.loss_and_grads(batch.x, batch.target, batch.mask, task.loss, input_grad=False,
                                        input_steps=task.input_steps)
            g = flatten(result.grads)
            clip_by_norm(g, 10.0)
            adam.update(net.params, g, state, learning_rate(1e-2, 0.1, step, args.steps))

    def run_floor():
        rng = numpy.random.default_rng(0)
        P = [net.params[k].copy() for k in ("layer0.W_x", "layer0.W_h", "layer0.b", "layer0.h0", "readout.W",
                                            "readout.b")]
        M, V = [numpy.zeros_like(p) for p in P], [numpy.zeros_like(p) for p in P]
        for step in range(args.steps):
            bare_step(P, M, V, step + 1, task.x, labels, rng, learning_rate(1e-2, 0.1, step, args.steps))

    times = {"rnncap": [], "floor": []}
    for repeat in range(args.repeats):
        for name, fn in (("rnncap", run_rnncap), ("floor", run_floor))[::(1 if repeat % 2 else -1)]:
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / args.steps)
    rnncap, floor = statistics.median(times["rnncap"]), statistics.median(times["floor"])
    # each repeat times both back to back: the median of those paired ratios shrugs off slow drifts in the
    # machine's speed better than the ratio of the two medians
    ratio = statistics.median(r / f for r, f in zip(times["rnncap"], times["floor"]))
    print(f"RNN, {n_params} parameters ({n_h} units), T 5, minibatch 256, forward + BPTT + clip + Adam: "
          f"rnncap {1e3 * rnncap:.3f} ms, bare NumPy {1e3 * floor:.3f} ms per step; ratio {ratio:.2f} "
          f"(median of {args.repeats} paired repeats)")
    if args.out:
        Path(args.out).write_text(json.dumps({"params": n_params, "n_h": n_h, "rnncap_ms": 1e3 * rnncap,
                                              "floor_ms": 1e3 * floor, "ratio": ratio,
                                              "steps": args.steps, "repeats": args.repeats,
                                              "numpy": numpy.__version__}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
