"""Random continuous functions (RCF): memorise a fixed random smooth function on fixed samples.

Like the capacity task, but with real inputs and real targets. Drawn once from
``seed``: a function given by ``K`` random Fourier features,

    f(x) = a · cos(W x + φ),    W ~ N(0, 1/n_in)  (K × n_in),
                                φ ~ U[0, 2π)      (K,),
                                a ~ N(0, 1/K)     (n_out × K),

and ``n_samples`` inputs ``x ~ N(0, I_{n_in})`` with their targets ``f(x)``.
Each input is presented at step 1 (zeros at steps 2..T) and ``f(x)`` is read
by the linear readout at step ``T`` (``unroll``, 5 by default as for
capacity), under a squared-error loss, trained on the samples themselves.

``W``'s scale makes ``|W x|`` of order 1, so ``f`` varies on the scale of
the data: smooth, but not close to linear. Its variance over ``x`` does not
depend on ``K``: averaged over ``a`` it is ``(1/K) Σ_k Var_x cos(w_k·x + φ_k)``,
and averaged over ``φ`` each term is ``(1 - e^{-|w_k|^2}) / 2``; with
``|w|^2 ~ χ²_{n_in} / n_in`` that gives ``(1 - (1 + 2/n_in)^{-n_in/2}) / 2``
per output, 0.305 for ``n_in = 16`` (0.316 as ``n_in`` grows). One drawn
function's sample variance scatters around it (over 1000 seeds of the
defaults: mean 0.300, standard deviation 0.068, range 0.14 to 0.57).

Metrics, on the ``n_samples`` training samples: ``loss``, the mean over
samples of ``Σ_outputs (f̂ - f)^2``; ``normalised_error`` = loss / the
targets' total variance (1 for the best constant, 0 for a perfect fit); and
``r2`` = 1 - normalised_error.

Ours (the paper gives no definition): the Fourier-feature construction, ``K``
= 256, ``n_in`` = 16 (enough dimensions that 4096 Gaussian samples are far
apart, so a network cannot just interpolate between near neighbours, and few
enough that the input weights take a small share of a small budget),
``n_out`` = 1, ``n_samples`` = 4096. In the code ``W`` and ``a`` are stored
transposed, for row vectors (``x @ W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from rnncap.autodiff.losses import SquaredError
from rnncap.backend import TRAIN_DTYPE, to_numpy
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import FixedDatasetTask, present_then_read


@dataclass(frozen=True)
class RCFConfig:
    n_samples: int = 4096
    n_in: int = 16
    n_out: int = 1
    features: int = 256           # K, random Fourier features
    unroll: int = 5               # T
    seed: int = 0                 # the function's and the samples' seed
    batch_size: int | None = None  # None: every step sees all samples

    def __post_init__(self):
        for name in ("n_samples", "n_in", "n_out", "features", "unroll"):
            if getattr(self, name) < 1:
                raise RnncapError(f"rcf task: {name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise RnncapError(f"rcf task: batch_size must be >= 1 (or none: all samples), got {self.batch_size}")

    def footprint(self) -> Footprint:
        features = 2 * 8 * self.n_samples * self.features            # cos(x W + phase): (b, K) float64, twice
        return Footprint(steps=self.unroll, batch=self.batch_size or self.n_samples, evaluated=self.n_samples,
                         held=self.n_samples, n_in=self.n_in, n_out=self.n_out, extra_bytes=features)


class RandomFunction:
    """``f(x) = a · cos(W x + φ)`` with random Fourier features, drawn from a generator."""

    def __init__(self, rng: numpy.random.Generator, n_in: int, n_out: int, features: int):
        self.W = rng.normal(0.0, 1.0 / math.sqrt(n_in), size=(n_in, features))    # (n_in, K), row-vector x @ W
        self.phase = rng.uniform(0.0, 2.0 * math.pi, size=features)               # (K,)
        self.a = rng.normal(0.0, 1.0 / math.sqrt(features), size=(features, n_out))  # (K, n_out)

    def __call__(self, x: numpy.ndarray) -> numpy.ndarray:
        return numpy.cos(x @ self.W + self.phase) @ self.a                        # (B, n_out)


class RCFTask(FixedDatasetTask):
    name = "rcf"
    objective = "loss"
    direction = "min"
    input_steps = 1                   # present_then_read: the input is shown at step 1 only
    select_best = True                # the metric is on the training samples: any parameters reached count

    def __init__(self, config: RCFConfig = RCFConfig(), xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_in, self.n_out = config.n_in, config.n_out
        self.loss = SquaredError()
        data_rng = numpy.random.default_rng(config.seed)
        self.function = RandomFunction(data_rng, config.n_in, config.n_out, config.features)
        self.inputs = data_rng.normal(size=(config.n_samples, config.n_in))       # (b, n_in)
        self.values = self.function(self.inputs)                                  # (b, n_out)
        self.target_variance = float(self.values.var(axis=0).sum())               # total over outputs
        x, target, mask = present_then_read(self.inputs, self.values, config.unroll)
        self.x, self.target, self.mask = self.to_device(x), self.to_device(target), self.to_device(mask)

    def evaluate(self, net) -> dict:
        out = net.forward(self.x, input_steps=self.input_steps).out                 # (T, b, n_out)
        predicted = to_numpy(out[-1]).astype(numpy.float64)                       # (b, n_out), read at step T
        mse = float(((predicted - self.values) ** 2).sum(axis=1).mean())
        normalised = mse / self.target_variance
        return {"loss": mse, "normalised_error": normalised, "r2": 1.0 - normalised,
                "target_variance": self.target_variance}

    def describe(self) -> dict:
        c = self.config
        return {"task": self.name, "n_in": c.n_in, "n_out": c.n_out, "T": c.unroll, "samples": c.n_samples,
                "features": c.features, "loss": "squared error at step T",
                "metric": "MSE on the samples; normalised_error = MSE / target variance"}
