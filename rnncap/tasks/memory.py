"""The per-unit capacity task: remember a real vector seen once.

A fresh input ``u ~ N(0, I_{n_in})`` (``n_in`` = 64 in the paper) is presented
at step 1 (zeros afterwards), and the linear readout must reconstruct it at
step ``T`` (5 by default; ours) under a squared-error loss. Every batch holds
new samples, so this measures how much of its input history the state keeps,
not memorisation.

Metric: the normalised error ``E‖û - u‖² / E‖u‖²`` on a fixed set of fresh
samples. The paper's finding is that every cell, depth and size reconstructs
the input iff the units per layer ``n_h ≥ n_in``; below that the best a network
can do is keep an ``n_h``-dimensional subspace, whose normalised error for
i.i.d. inputs is ``max(0, 1 - n_h / n_in)`` (the reference curve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from rnncap.autodiff.losses import SquaredError
from rnncap.backend import TRAIN_DTYPE
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import Batch, Task, present_then_read


def reference_error(n_h, n_in: int):
    """Normalised error of the best ``n_h``-dimensional linear reconstruction of i.i.d. inputs.

    ``max(0, 1 - n_h / n_in)``: a float for a number ``n_h``, an array for an array of them.
    """
    value = numpy.maximum(0.0, 1.0 - numpy.asarray(n_h, dtype=float) / n_in)
    return float(value) if value.ndim == 0 else value


@dataclass(frozen=True)
class MemoryConfig:
    n_in: int = 64
    unroll: int = 5
    batch_size: int = 256
    eval_samples: int = 4096
    seed: int = 0                     # the evaluation set's seed

    def __post_init__(self):
        for name in ("n_in", "unroll", "batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise RnncapError(f"memory task: {name} must be >= 1, got {getattr(self, name)}")

    def footprint(self) -> Footprint:
        return Footprint(steps=self.unroll, batch=self.batch_size, evaluated=self.eval_samples,
                         held=self.eval_samples, n_in=self.n_in, n_out=self.n_in)


class MemoryTask(Task):
    name = "memory"
    objective = "error"
    direction = "min"
    input_steps = 1                   # present_then_read: the input is shown at step 1 only

    def __init__(self, config: MemoryConfig = MemoryConfig(), xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_in = self.n_out = config.n_in
        self.loss = SquaredError()
        self.eval_batch = self._make_batch(numpy.random.default_rng([config.seed, 1]), config.eval_samples)

    def _make_batch(self, rng: numpy.random.Generator, size: int) -> Batch:
        u = rng.normal(size=(size, self.config.n_in))                         # (B, n_in)
        x, target, mask = present_then_read(u, u, self.config.unroll)         # shown at step 1, recalled at T
        return Batch(self.to_device(x), self.to_device(target), self.to_device(mask))

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        return self._make_batch(rng, self.config.batch_size)

    def evaluate(self, net) -> dict:
        recalled = net.forward(self.eval_batch.x, input_steps=self.input_steps).out[-1]   # (B, n_in)
        u = self.eval_batch.target[-1]
        error = float(((recalled - u) ** 2).sum() / (u * u).sum())
        return {"error": error, "reference": reference_error(net.n_h, self.n_in), "n_h": net.n_h}

    def describe(self) -> dict:
        c = self.config
        return {"task": self.name, "n_in": c.n_in, "n_out": c.n_in, "T": c.unroll, "batch": c.batch_size,
                "loss": "squared error at step T", "metric": "E|u_hat - u|^2 / E|u|^2 on fresh samples"}
