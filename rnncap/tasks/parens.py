"""Parallel parentheses counting: keep ``types`` independent saturating counters.

The input alphabet has ``2 * types`` bracket symbols (an opening and a closing
bracket of each type) and ``noise`` noise symbols; symbol ids are

    2k      open bracket of type k          k = 0 .. types-1
    2k + 1  close bracket of type k
    2 * types + j                           noise symbol j, j = 0 .. noise-1

One symbol per step is drawn uniformly from the whole alphabet and presented
one-hot (``n_in = 2 * types + noise``). At every step, for every type, the
target is the number of currently unclosed brackets of that type, read through
``types`` independent softmaxes of ``saturation + 1`` classes each (``n_out =
types * (saturation + 1)``), with a loss at every step (the mask is all ones).

The counter itself saturates (ours, following the public Google Brain
reimplementation of this task family, where opening brackets "stop being
added" at the maximum): an opening bracket at ``saturation`` leaves the count
at ``saturation``, and a closing bracket always lowers a positive count by one
(so after ``saturation + 2`` opens and one close the target is
``saturation - 1``, not ``saturation``). An unmatched closing bracket leaves
the count at 0. Each counter is thus a finite automaton of ``saturation + 1``
states and every target is a function of what the network has seen.

Training batches are fresh random sequences drawn from the generator the loop
passes in. The metrics are measured on a fixed evaluation set of
``eval_samples`` sequences drawn from ``seed``:

- ``loss``: mean cross-entropy in nats, over steps, sequences and heads;
- ``accuracy``: the fraction of (step, sequence, head) counts predicted
  exactly (the argmax of each head);
- ``constant_accuracy``: the same for the best constant predictor, which
  answers, for each head, the count most frequent for that head on the
  evaluation set. A network must beat it to have learned anything.

Ten types and saturation 5 are the paper's task as PAPER.md restates it; the
number of noise symbols (10, as in the public reimplementations), the
sequence length (100), the batch size and the evaluation set's size are ours.
With the defaults a count is 0 about half the time, so ``constant_accuracy``
is about 0.48.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from rnncap.autodiff.losses import MultiSoftmaxCrossEntropy
from rnncap.backend import TRAIN_DTYPE, to_numpy
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import Batch, Task


def parens_counts(symbols: numpy.ndarray, types: int, saturation: int) -> numpy.ndarray:
    """The saturating counts after every step: ``symbols`` (T, B) ids -> counts (T, B, types)."""
    T, B = symbols.shape
    kinds = numpy.arange(types)                                               # (types,)
    count = numpy.zeros((B, types), dtype=numpy.int64)                        # (B, types)
    counts = numpy.empty((T, B, types), dtype=numpy.int64)                    # (T, B, types)
    for t in range(T):
        opened = symbols[t, :, None] == 2 * kinds                             # (B, types)
        closed = symbols[t, :, None] == 2 * kinds + 1                         # (B, types)
        count = numpy.minimum(count + opened, saturation)                     # an open at saturation is lost
        count = numpy.maximum(count - closed, 0)                              # an unmatched close is ignored
        counts[t] = count
    return counts


@dataclass(frozen=True)
class ParensConfig:
    types: int = 10               # bracket types = softmax heads
    noise: int = 10               # noise symbols
    saturation: int = 5           # counts are 0 .. saturation
    length: int = 100             # T, steps per sequence
    batch_size: int = 64
    eval_samples: int = 512       # sequences in the fixed evaluation set
    seed: int = 0                 # the evaluation set's seed

    def __post_init__(self):
        for name in ("types", "saturation", "length", "batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise RnncapError(f"parens task: {name} must be >= 1, got {getattr(self, name)}")
        if self.noise < 0:
            raise RnncapError(f"parens task: noise must be >= 0 (the number of noise symbols), got {self.noise}")

    @property
    def n_symbols(self) -> int:
        """Input symbols: an opening and a closing bracket of each type, and the noise symbols."""
        return 2 * self.types + self.noise

    def footprint(self) -> Footprint:
        one_hot_table = 8 * self.n_symbols ** 2                         # numpy.eye(n_symbols), float64
        return Footprint(steps=self.length, batch=self.batch_size, evaluated=self.eval_samples,
                         held=self.eval_samples, n_in=self.n_symbols, n_out=self.types * (self.saturation + 1),
                         extra_bytes=one_hot_table)


class ParensTask(Task):
    name = "parens"
    objective = "loss"
    direction = "min"

    def __init__(self, config: ParensConfig = ParensConfig(), xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_symbols = config.n_symbols
        self.n_classes = config.saturation + 1
        self.n_in, self.n_out = self.n_symbols, config.types * self.n_classes
        self.loss = MultiSoftmaxCrossEntropy(heads=config.types)
        eval_rng = numpy.random.default_rng([config.seed, 1])
        self.eval_symbols = self.draw_symbols(eval_rng, config.eval_samples)   # (T, E)
        self.eval_counts = parens_counts(self.eval_symbols, config.types, config.saturation)  # (T, E, types)
        self.eval_batch = self._make_batch(self.eval_symbols, self.eval_counts)

    def draw_symbols(self, rng: numpy.random.Generator, size: int) -> numpy.ndarray:
        """``size`` sequences of uniformly drawn symbol ids, (T, size)."""
        return rng.integers(0, self.n_symbols, size=(self.config.length, size))

    def _make_batch(self, symbols: numpy.ndarray, counts: numpy.ndarray) -> Batch:
        T, B = symbols.shape
        x = numpy.eye(self.n_symbols)[symbols]                                # one-hot (T, B, n_in)
        mask = numpy.ones((T, B))                                             # every step counts
        return Batch(self.to_device(x), self.xp.asarray(counts), self.to_device(mask))

    def batch_for(self, symbols: numpy.ndarray) -> Batch:
        """The batch of given symbol sequences (T, B): one-hot inputs and their counts."""
        return self._make_batch(symbols, parens_counts(symbols, self.config.types, self.config.saturation))

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        return self.batch_for(self.draw_symbols(rng, self.config.batch_size))

    def evaluate(self, net) -> dict:
        out = net.forward(self.eval_batch.x).out                              # (T, E, n_out)
        loss, _ = self.loss(out, self.eval_batch.target, self.eval_batch.mask)
        T, E, _ = out.shape
        heads = out.reshape(T, E, self.config.types, self.n_classes)          # (T, E, types, K)
        predicted = to_numpy(heads.argmax(axis=-1))                           # (T, E, types)
        accuracy = float((predicted == self.eval_counts).mean())
        return {"loss": float(loss), "accuracy": accuracy, "constant_accuracy": self.constant_accuracy()}

    def constant_accuracy(self) -> float:
        """Accuracy of answering, for each head, its most frequent count on the evaluation set."""
        counts = self.eval_counts.reshape(-1, self.config.types)              # (T*E, types)
        most_frequent = [numpy.bincount(counts[:, k], minlength=self.n_classes).max()
                         for k in range(self.config.types)]
        return float(numpy.mean(most_frequent) / counts.shape[0])

    def describe(self) -> dict:
        c = self.config
        return {"task": self.name, "n_in": self.n_in, "n_out": self.n_out, "T": c.length, "types": c.types,
                "noise": c.noise, "saturation": c.saturation, "batch": c.batch_size, "eval_samples": c.eval_samples,
                "loss": f"mean cross-entropy of {c.types} softmaxes over counts 0..{c.saturation}, every step",
                "metric": "eval loss (nats); accuracy per head and step vs the best constant predictor"}
