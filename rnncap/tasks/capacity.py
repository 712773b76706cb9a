"""The per-parameter capacity task: memorise random labels of random binary inputs.

Drawn once from ``seed``: ``b`` distinct binary input vectors
``X ∈ {0,1}^(b × n_in)`` and ``b`` binary labels ``Y ∈ {0,1}^b``. Each input is presented at step 1
(zeros at steps 2..T) and its label is read, through a softmax over 2
classes, at step ``T`` (``unroll``, 5 by default as in the paper's headline
figure). The network is trained with cross-entropy on the ``b`` samples
themselves, and scored not by the loss but by how many bits of the labels it
stores (the paper's eqs. 21-22):

    I = b (1 - H2(p)),    H2(p) = -p log2 p - (1 - p) log2 (1 - p)

where ``p`` is the fraction of the ``b`` samples classified correctly. A
classifier that is wrong on purpose stores as much as one that is right, so
``I`` is symmetric about ``p = 1/2``. Bits per parameter = ``I`` / parameters.

The inputs are drawn without replacement, so no two samples share an input
(two equal inputs with different labels could not both be fitted), as long
as ``b <= 2^n_in``; beyond that every input is used and some twice or more
(raise ``n_in``). ``n_in`` is ours (the paper does not say); the task's
default, 16, allows ``b`` up to 65536. The measurements (``rnncap
capacity``, the capacity presets) size it to the budget instead,
:func:`input_bits`: as few bits as keep the inputs distinct leave the most
parameters for the recurrence (at 1000 parameters, 13 bits give the GRU 12
units where 32 bits gave it 7; REPRODUCTION.md).

Two choices of ours make the networks reach more of their capacity in a
given number of steps without changing what they can store
(``REPRODUCTION.md`` measures both):

- ``signed`` (default): the input bits are written as -1 and +1, not 0 and 1.
  The functions a network can compute are the same (``W x01 = W (x + 1) / 2``
  only moves the first step's bias), but centred inputs train faster.
- ``label_noise`` ε: the loss is the likelihood of labels that are random
  with probability ε (``SoftmaxCrossEntropy(noise=ε)``), so that near
  capacity the gradient gives up on the samples the network cannot fit
  instead of pulling every weight toward them. ε = 0 (the task's default)
  is the paper's cross-entropy; the measurements (``rnncap capacity``, the
  capacity experiments) train with :data:`LABEL_NOISE`.
  This loss is bounded (by ``-log(ε/2)``), so a run whose weights blow up
  is seldom flagged infeasible: it scores about 0 bits instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from rnncap.autodiff.losses import SoftmaxCrossEntropy
from rnncap.backend import TRAIN_DTYPE, to_numpy
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import FixedDatasetTask, present_then_read


LABEL_NOISE = 0.04    # the ε that `rnncap capacity` and the capacity experiments train with (REPRODUCTION.md)
CAPACITY_STEPS = 100000   # `rnncap capacity`'s training steps per trial: 1000-parameter RNNs stored 0.4 bits per
                          # parameter more than in 20000 (REPRODUCTION.md, "Longer training, to a rate near zero")


def distinct_bit_vectors(rng: numpy.random.Generator, count: int, bits: int) -> numpy.ndarray:
    """``count`` vectors of ``bits`` random bits, (count, bits) in {0, 1}, all different while
    ``count <= 2^bits`` (beyond that, all 2^bits of them and random repeats)."""
    if bits >= 63:                                   # a repeat among 2^63 or more is not going to happen
        return rng.integers(0, 2, size=(count, bits))
    codes = rng.choice(2 ** bits, size=min(count, 2 ** bits), replace=False)   # distinct integers
    if count > len(codes):
        codes = rng.permutation(numpy.concatenate([codes, rng.integers(0, 2 ** bits, size=count - len(codes))]))
    return (codes[:, None] >> numpy.arange(bits)) & 1


def binary_entropy(p: float) -> float:
    """H2(p) in bits, with 0 log 0 = 0."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -(p * math.log2(p) + (1.0 - p) * math.log2(1.0 - p))


def mutual_information_bits(b: int, p: float) -> float:
    """Bits stored about ``b`` random binary labels by a classifier with accuracy ``p`` (eq. 21-22)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"accuracy must be in [0, 1], got {p}")
    return b * (1.0 - binary_entropy(p))


def bits_per_parameter(bits: float, n_params: int) -> float:
    return bits / n_params


MOST_SAMPLES_PER_PARAM = 8.0      # the largest b / P the capacity searches try (the bsearch grid's last)


def input_bits(budget: int, samples_per_param: float = MOST_SAMPLES_PER_PARAM) -> int:
    """The input width of the capacity measurements at a parameter budget: ``ceil(log2(8 * budget))``,
    the fewest bits that keep every ``b`` up to ``samples_per_param * budget`` inputs distinct.

    Each input bit costs the first layer one weight per gate and unit, which
    reads the input but stores no label: at 1000 parameters and 16 bits, the
    input weights are more than half of the GRU's parameters. With the width
    sized to the budget (13 bits at 1000 parameters) the GRU stored 0.26 bits
    per parameter more and the RNN the same (REPRODUCTION.md).
    """
    return max(1, math.ceil(math.log2(max(2.0, samples_per_param * budget))))      # 1 for a budget too small to use


MOST_MINIBATCH = 1024     # the measurements' minibatch from 1000 parameters up


def minibatch_size(budget: int) -> int:
    """The minibatch of the capacity measurements at a parameter budget: the power of two nearest
    ``budget`` (on a log scale), and at most :data:`MOST_MINIBATCH`.

    The searches try ``b`` near ``4P``, so this is about a quarter of the
    samples at every budget. A fixed 1024 trains a small network on all its
    samples at every step (``b`` is about 400 at 100 parameters), and full
    batches stored less there: at 100 parameters the RNN 1.32 bits per
    parameter against 1.89 with minibatches of 128, at 250 parameters 2.31
    against 2.67 with 256 (means of 8 seeds, REPRODUCTION.md). From 1000
    parameters up it is 1024, as it has been.
    """
    return min(MOST_MINIBATCH, 1 << max(0, round(math.log2(max(1, budget)))))


SEEDED_BELOW = 1000       # the budget under which capacity searches train each point from more seeds


def seeds_for_budget(budget: int) -> int:
    """Seeds per point of a capacity search at a parameter budget (the quick preset's, and ``rnncap
    capacity``'s by default): ``1000 // budget``, at least 1 (4 at 250 parameters), each trained for that
    fraction of the steps.

    A small network gains nothing from long training and much from its
    seed: at 250 parameters the RNN stored 2.66 bits per parameter after
    10000 steps and 2.75 after 40000, while 8 seeds ranged over 0.6 (RNN)
    to 1.5 (LSTM) bits per parameter (REPRODUCTION.md, "Small networks: more
    seeds, fewer steps"). So a search spends a point's steps on several
    seeds, and a point scores its best seed.
    """
    return max(1, SEEDED_BELOW // max(1, budget))


@dataclass(frozen=True)
class CapacityConfig:
    n_samples: int = 3000         # b (`rnncap capacity` searches over it)
    n_in: int = 16
    unroll: int = 5               # T
    seed: int = 0                 # the dataset's seed
    batch_size: int | None = None  # None: every step sees all b samples
    signed: bool = True           # the bits as -1/+1 (True) or 0/1
    label_noise: float = 0.0      # ε of the loss (0: cross-entropy; the measurements use LABEL_NOISE)

    def __post_init__(self):
        if self.n_samples < 1:
            raise RnncapError(f"capacity task: n_samples (the number of samples b) must be >= 1, got {self.n_samples}")
        if self.n_in < 1:
            raise RnncapError(f"capacity task: n_in must be >= 1, got {self.n_in}")
        if self.unroll < 1:
            raise RnncapError(f"capacity task: unroll must be >= 1 (the label is read at step T), got {self.unroll}")
        if self.batch_size is not None and self.batch_size < 1:
            raise RnncapError(f"capacity task: batch_size must be >= 1 (or none: all b samples), got {self.batch_size}")
        if not 0.0 <= self.label_noise < 1.0:
            raise RnncapError(f"capacity task: label_noise must be in [0, 1), got {self.label_noise}")

    def footprint(self) -> Footprint:
        return Footprint(steps=self.unroll, batch=self.batch_size or self.n_samples, evaluated=self.n_samples,
                         held=self.n_samples, n_in=self.n_in, n_out=2)


class CapacityTask(FixedDatasetTask):
    name = "capacity"
    objective = "bits"
    direction = "max"
    input_steps = 1                   # present_then_read: the input is shown at step 1 only
    select_best = True                # any parameters reached during training store those bits

    def __init__(self, config: CapacityConfig, xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_in, self.n_out = config.n_in, 2
        self.loss = SoftmaxCrossEntropy(noise=config.label_noise)
        data_rng = numpy.random.default_rng(config.seed)
        inputs = distinct_bit_vectors(data_rng, config.n_samples, config.n_in)    # (b, n_in) in {0, 1}
        if config.signed:
            inputs = 2 * inputs - 1                                               # in {-1, +1}
        self.labels = data_rng.integers(0, 2, size=config.n_samples)              # (b,)
        x, target, mask = present_then_read(inputs, self.labels, config.unroll)
        self.x, self.target, self.mask = self.to_device(x), self.xp.asarray(target), self.to_device(mask)

    def evaluate(self, net) -> dict:
        out = net.forward(self.x, input_steps=self.input_steps).out          # (T, b, 2)
        predicted = to_numpy(out[-1].argmax(axis=1))                          # label read at step T
        p = float((predicted == self.labels).mean())
        bits = mutual_information_bits(self.config.n_samples, p)
        loss, _ = self.loss(out, self.target, self.mask)
        return {"accuracy": p, "bits": bits, "bits_per_parameter": bits_per_parameter(bits, net.n_params),
                "loss": float(loss), "b": self.config.n_samples}

    def describe(self) -> dict:
        c = self.config
        loss = "softmax over 2 classes at step T" + (f", labels random with probability {c.label_noise}"
                                                      if c.label_noise else "")
        return {"task": self.name, "n_in": c.n_in, "n_out": 2, "T": c.unroll, "b": c.n_samples,
                "inputs": "-1/+1" if c.signed else "0/1", "loss": loss, "metric": "bits = b (1 - H2(accuracy))"}
