"""What a task gives the training loop: dimensions, batches, a loss, and metrics.

A task is a small object built from a frozen config. The loop asks it for
the batch of each step, ``task.batch(step, rng)``, which is a pure function of
the step number and the generator's state, so a checkpoint that saves the
generator resumes the data stream exactly. ``Batch.carry`` says that the
batch continues the previous one (truncated BPTT on text8): the loop then
starts it from the previous batch's final state.

``task.evaluate(net)`` returns a dict of metrics; ``task.objective`` names
the one that a search optimises and ``task.direction`` says whether larger
(``max``) or smaller (``min``) is better.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy

from rnncap.backend import TRAIN_DTYPE


class Batch(NamedTuple):
    x: object              # (T, B, n_in)
    target: object         # (T, B) class indices, (T, B, H) head indices, or (T, B, n_out) reals
    mask: object           # (T, B): 1 where the loss counts
    carry: bool = False    # start from the previous batch's final state


class Task:
    """Base class; subclasses set the class variables and implement ``batch`` and ``evaluate``."""

    name: ClassVar[str]
    objective: ClassVar[str]
    direction: ClassVar[str]          # "max" or "min"
    select_best: ClassVar[bool] = False  # report the best evaluation during training, not the last
    fixed_dataset: ClassVar[bool] = False  # one dataset, trained on whole (L-BFGS can be used)

    n_in: int
    n_out: int
    loss: object

    def __init__(self, xp=numpy, dtype=TRAIN_DTYPE):
        self.xp, self.dtype = xp, numpy.dtype(dtype)

    def to_device(self, array, dtype=None):
        return self.xp.asarray(array, dtype=dtype or self.dtype)

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        raise NotImplementedError

    def evaluate(self, net) -> dict:
        raise NotImplementedError

    def describe(self) -> dict:
        """Dimensions and settings, as ``rnncap tasks`` prints them."""
        raise NotImplementedError

    def better(self, a: float, b: float) -> bool:
        """Is objective value ``a`` better than ``b``?"""
        return a > b if self.direction == "max" else a < b


def present_then_read(inputs, targets, T: int):
    """Sequences that show ``inputs`` (B, n_in) at step 1 only and ask for ``targets`` at step T.

    ``targets`` is (B,) class indices or (B, n_out) reals. Returns NumPy
    ``(x (T, B, n_in), target (T, B[, n_out]), mask (T, B))`` with zeros
    everywhere but step 1 of ``x`` and step T of ``target`` and ``mask``.
    """
    B = inputs.shape[0]
    x = numpy.zeros((T, B) + inputs.shape[1:])                               # (T, B, n_in)
    x[0] = inputs
    target = numpy.zeros((T,) + targets.shape, dtype=targets.dtype)          # (T, B[, n_out])
    target[T - 1] = targets
    mask = numpy.zeros((T, B))                                               # (T, B)
    mask[T - 1] = 1.0
    return x, target, mask


class FixedDatasetTask(Task):
    """A task with one dataset ``(self.x, self.target, self.mask)`` of ``config.n_samples`` sequences.

    Each step trains on all of it, or on a random minibatch of
    ``config.batch_size`` sequences drawn without replacement.
    """

    fixed_dataset = True

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        size = self.config.batch_size
        if size is None or size >= self.config.n_samples:
            return Batch(self.x, self.target, self.mask)
        rows = self.xp.asarray(rng.choice(self.config.n_samples, size=size, replace=False))   # (size,)
        pick = lambda a: self.xp.take(a, rows, axis=1)                    # noqa: E731  (faster than a[:, rows])
        return Batch(pick(self.x), pick(self.target), pick(self.mask))
