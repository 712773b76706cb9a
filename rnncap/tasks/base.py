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
