"""Speed of one training step (forward + backward through time), rnncap against PyTorch.

For each cell and each shape, the wall time of one call of
``net.loss_and_grads`` (softmax cross-entropy, float32: at the last step for
the capacity shape, at every step for the sequence shapes, as those tasks
train), after ``warmup`` calls. The implementations are timed in turn within
each repeat (interleaved, the order rotating), each in its steady state (a
quarter of a second of untimed calls, then the median of a block of 3 timed
ones; see :func:`interleaved_times` for why), and each ratio is the median
of the per-repeat ratios, so a slow spell of a shared machine hits all of
them alike. PyTorch, where installed, runs the same equations on
the same shapes two ways: the same cell written as a loop of tensor
operations with autograd (``torch-loop``: like for like), and, for the cells
PyTorch has built in, ``torch.nn.RNN``/``GRU``/``LSTM`` (``torch-nn``: fused
kernels; PyTorch's GRU applies its reset after the matrix product, a
different cell of the same cost). On a GPU the timings synchronise the device
before reading the clock.

    python benchmarks/speed.py                     # NumPy (and PyTorch CPU if installed)
    python benchmarks/speed.py --device gpu        # CuPy (and PyTorch CUDA)
    python benchmarks/speed.py --out benchmarks/results/speed-cpu.json

Shapes: ``capacity`` (T=5, B=3000, n_in=32, 1 layer, 20 units), the
memorisation task at a 1000-parameter budget; ``parens`` (T=100, B=64,
n_in=30, 2 layers, 64 units); ``text8`` (T=50, B=32, n_in=27, 1 layer, 256
units).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rnncap.backend import get_xp, synchronize  # noqa: E402
from rnncap.cells import CELLS  # noqa: E402
from rnncap.network import Network  # noqa: E402

SHAPES = {
    "capacity": dict(T=5, B=3000, n_in=32, depth=1, n_h=20, n_out=2, every_step=False),
    "parens": dict(T=100, B=64, n_in=30, depth=2, n_h=64, n_out=60, every_step=True),
    "text8": dict(T=50, B=32, n_in=27, depth=1, n_h=256, n_out=27, every_step=True),
}


def interleaved_times(steps: dict, repeats: int, warmup: int, settle: float = 0.25, block: int = 3) -> dict:
    """``{name: [seconds per repeat]}`` for ``steps`` ``{name: (fn, sync)}``, timed in turn each repeat.

    Each repeat visits every implementation (the order rotating) and times it
    in its steady state, as a training loop runs it: untimed calls first, for
    at least ``settle`` seconds, then the median of ``block`` timed calls.
    The untimed calls matter on a CPU: OpenBLAS's and OpenMP's worker threads
    keep spinning for up to about 0.1 s after their last piece of work, so
    whatever runs next shares the cores with them. Measured here (text8 LSTM,
    2 cores): PyTorch's step 42 ms right after rnncap's and 19 ms in steady
    state; rnncap's 40 ms right after PyTorch's and 32 ms in steady state.
    """
    for fn, _ in steps.values():
        for _ in range(warmup):
            fn()
    names, times = list(steps), {name: [] for name in steps}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fn, sync = steps[name]
            switched = time.perf_counter()
            while time.perf_counter() - switched < settle:             # let the last one's threads go quiet
                fn()
                sync()
            block_times = []
            for _ in range(block):
                start = time.perf_counter()
                fn()
                sync()
                block_times.append(time.perf_counter() - start)
            times[name].append(statistics.median(block_times))
    return times


def rnncap_step(cell: str, shape: dict, xp):
    depth = max(shape["depth"], CELLS[cell].min_depth)
    net = Network(cell, depth, shape["n_in"], shape["n_out"], shape["n_h"], rng=0, xp=xp)
    rng = numpy.random.default_rng(0)
    x = xp.asarray(rng.normal(size=(shape["T"], shape["B"], shape["n_in"])), dtype=numpy.float32)
    target = xp.asarray(rng.integers(0, shape["n_out"], size=(shape["T"], shape["B"])))
    mask = xp.zeros((shape["T"], shape["B"]), dtype=numpy.float32)
    mask[-1 if not shape["every_step"] else slice(None)] = 1.0
    return lambda: net.loss_and_grads(x, target, mask, input_grad=False)


# PyTorch: the same equations, written with autograd -----------------------------------------

def torch_loop_step(cell: str, shape: dict, device: str):
    import torch

    torch.manual_seed(0)
    T, B, n_in, n_h, n_out = shape["T"], shape["B"], shape["n_in"], shape["n_h"], shape["n_out"]
    depth = max(shape["depth"], CELLS[cell].min_depth)
    gates = {"rnn": 1, "irnn": 1, "ugrnn": 2, "gru": 3, "lstm": 4, "plusrnn": 4}[cell]
    new = dict(device=device, dtype=torch.float32)
    proj = torch.randn(n_in, n_h, **new, requires_grad=True) if cell == "plusrnn" else None
    layers = []
    for k in range(depth):
        fan_in = n_h if (k > 0 or cell == "plusrnn") else n_in
        layers.append([torch.randn(fan_in, gates * n_h, **new).div_(fan_in ** 0.5).requires_grad_(),
                       torch.randn(n_h, gates * n_h, **new).div_(n_h ** 0.5).requires_grad_(),
                       torch.zeros(gates * n_h, **new, requires_grad=True),
                       torch.zeros(n_h, **new, requires_grad=True), torch.zeros(n_h, **new, requires_grad=True)])
    W_out = torch.randn(n_h, n_out, **new, requires_grad=True)
    x = torch.randn(T, B, n_in, **new)
    read = slice(None) if shape["every_step"] else slice(T - 1, T)
    target = torch.randint(0, n_out, (len(range(T)[read]) * B,), device=device)
    sig, relu, tanh = torch.sigmoid, torch.relu, torch.tanh

    def forward():
        h_in = x @ proj if proj is not None else x
        for W_x, W_h, b, h0, c0 in layers:
            xw = h_in @ W_x + b                                             # (T, B, G*N)
            h, c = h0.expand(B, n_h), c0.expand(B, n_h)
            outs = []
            for t in range(T):
                if cell == "gru":
                    z = xw[t, :, :2 * n_h] + h @ W_h[:, :2 * n_h]
                    r, u = sig(z[:, :n_h]), sig(z[:, n_h:] + 1.0)
                    cand = tanh(xw[t, :, 2 * n_h:] + (r * h) @ W_h[:, 2 * n_h:])
                    h = u * h + (1 - u) * cand
                    outs.append(h)
                    continue
                z = xw[t] + h @ W_h
                if cell in ("rnn", "irnn"):
                    h = (relu if cell == "irnn" else tanh)(z)
                    y = h
                elif cell == "ugrnn":
                    g = sig(z[:, n_h:] + 1.0)
                    h = g * h + (1 - g) * tanh(z[:, :n_h])
                    y = h
                elif cell == "lstm":
                    i, f, o = sig(z[:, :n_h]), sig(z[:, n_h:2 * n_h] + 1.0), sig(z[:, 3 * n_h:])
                    c = f * c + i * tanh(z[:, 2 * n_h:3 * n_h])
                    h = o * tanh(c)
                    y = h
                else:                                                        # +RNN
                    gy, gh = sig(z[:, 2 * n_h:3 * n_h] + 1.0), sig(z[:, 3 * n_h:] + 1.0)
                    y = gy * h_in[t] + (1 - gy) * relu(z[:, :n_h])
                    h = gh * h + (1 - gh) * tanh(z[:, n_h:2 * n_h])
                outs.append(y)
            h_in = torch.stack(outs)
        return torch.nn.functional.cross_entropy((h_in[read] @ W_out).reshape(-1, n_out), target)

    def step():
        for p in [proj, W_out] + [q for layer in layers for q in layer]:
            if p is not None:
                p.grad = None
        forward().backward()
    return step


def torch_nn_step(cell: str, shape: dict, device: str):
    import torch

    modules = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
    if cell not in modules:
        return None
    torch.manual_seed(0)
    rnn = modules[cell](shape["n_in"], shape["n_h"], num_layers=shape["depth"]).to(device)
    readout = torch.nn.Linear(shape["n_h"], shape["n_out"]).to(device)
    x = torch.randn(shape["T"], shape["B"], shape["n_in"], device=device)
    read = slice(None) if shape["every_step"] else slice(shape["T"] - 1, shape["T"])
    target = torch.randint(0, shape["n_out"], (len(range(shape["T"])[read]) * shape["B"],), device=device)

    def step():
        rnn.zero_grad()
        readout.zero_grad()
        out, _ = rnn(x)
        logits = readout(out[read]).reshape(-1, shape["n_out"])
        torch.nn.functional.cross_entropy(logits, target).backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--settle", type=float, default=0.25,
                        help="seconds of untimed calls before each implementation's timed block")
    parser.add_argument("--block", type=int, default=3, help="timed calls per implementation and repeat (median)")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    xp = get_xp(args.device)
    try:
        import torch
        torch_device = "cuda" if args.device == "gpu" else "cpu"
        torch_sync = torch.cuda.synchronize if args.device == "gpu" else (lambda: None)
        torch_version = torch.__version__
    except ImportError:
        torch = None
        torch_version = None
    rows = []
    for shape_name in args.shapes.split(","):
        shape = SHAPES[shape_name]
        for cell in args.cells.split(","):
            row = {"shape": shape_name, "cell": cell, **shape}
            steps = {"rnncap": (rnncap_step(cell, shape, xp), lambda: synchronize(xp))}
            if torch is not None:
                steps["torch_loop"] = (torch_loop_step(cell, shape, torch_device), torch_sync)
                nn_step = torch_nn_step(cell, shape, torch_device)
                if nn_step is not None:
                    steps["torch_nn"] = (nn_step, torch_sync)
            times = interleaved_times(steps, args.repeats, args.warmup, args.settle, args.block)
            for name, ts in times.items():
                row[f"{name}_ms"] = 1e3 * statistics.median(ts)
                if name != "rnncap":              # rnncap's time over the other's, repeat by repeat
                    row[f"ratio_vs_{name}"] = statistics.median(a / b for a, b in zip(times["rnncap"], ts))
            rows.append(row)
            timings = "  ".join(f"{k[:-3]} {v:8.2f} ms" for k, v in row.items() if k.endswith("_ms"))
            ratios = "  ".join(f"{k[6:]} {v:.2f}x" for k, v in row.items() if k.startswith("ratio_"))
            print(f"{shape_name:9s} {cell:8s} {timings}  {ratios}", flush=True)
    meta = {"device": args.device, "backend": xp.__name__, "numpy": numpy.__version__, "torch": torch_version,
            "python": platform.python_version(), "machine": platform.machine(), "processor": platform.processor(),
            "repeats": args.repeats, "warmup": args.warmup, "settle_s": args.settle, "block": args.block,
            "statistic": "median over repeats of the median of a block of steady-state training steps"}
    if args.device == "gpu":
        meta["gpu"] = xp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
