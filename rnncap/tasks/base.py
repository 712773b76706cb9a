"""What a task gives the training loop: dimensions, batches, a loss, and metrics.

A task is a small object built from a frozen config. The loop asks it for
the batch of each step, ``task.batch(step, rng)``, which is a pure function of
the step number and the generator's state (or, for minibatches on CuPy, of
its seed), so a checkpoint that saves the generator resumes the data stream
exactly. ``Batch.carry`` says that the batch continues the previous one
(truncated BPTT on text8): the loop then starts it from the previous batch's
final state.

``task.evaluate(net)`` returns a dict of metrics; ``task.objective`` names
the one that a search optimises and ``task.direction`` says whether larger
(``max``) or smaller (``min``) is better.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import numpy

from rnncap.backend import TRAIN_DTYPE, array_module, to_numpy
from rnncap.errors import RnncapError


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
    input_steps: ClassVar[int | None] = None  # every x is zero after its first input_steps steps (None: no promise)

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

    ``targets`` is (B,) class indices or (B, n_out) reals; a task built on it
    sets ``input_steps = 1``. Returns NumPy
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


class SampleGather:
    """Rows of a dataset ``a`` (T, b, ...) picked along its sample axis: ``gather(rows)`` is
    ``take(a, rows, axis=1)``, but copies only the time steps at which the samples differ.

    The capacity task's inputs are zero after step 1 and its mask is the same
    for every sample, so most of a population's minibatch needs no gathering
    at all (for one network's minibatch a plain ``take`` is as fast); an array
    alike for every sample comes back as a read-only broadcast view.
    With ``members=K`` the rows are K minibatches side by side, and the result
    is laid out member first: (K, T, B, ...).
    """

    def __init__(self, a):
        self.xp = array_module(a)
        T = a.shape[0]
        same = (a == a[:, :1]).reshape(T, -1).all(axis=1)                   # (T,) steps alike for every sample
        self.varying = self.xp.asarray(to_numpy(~same).nonzero()[0])
        self.first = a[:, :1]                                               # (T, 1, ...)
        self.a_varying = a[self.varying]                                    # (V, b, ...), copied once
        self.zero_elsewhere = not bool((self.first[self.xp.asarray(to_numpy(same).nonzero()[0])] != 0).any())

    def __call__(self, rows, members: int | None = None):
        xp = self.xp
        T, size, rest = self.first.shape[0], len(rows) // (members or 1), self.first.shape[2:]
        lead = (members,) if members else ()
        if len(self.varying) == 0:                                          # alike for every sample: a read-only view
            return xp.broadcast_to(self.first, lead + (T, size) + rest)
        out = xp.zeros(lead + (T, size) + rest, dtype=self.first.dtype)     # (K, T, B, ...)
        if not self.zero_elsewhere:
            out[...] = self.first                                           # broadcasts over K and B
        picked = xp.take(self.a_varying, rows, axis=1)                      # (V, K*B, ...)
        if members:
            picked = xp.moveaxis(picked.reshape(len(self.varying), members, size, *rest), 1, 0)   # (K, V, B, ...)
        out[(Ellipsis, self.varying, slice(None)) + (slice(None),) * len(rest)] = picked   # time: axis -2-len(rest)
        return out


class MinibatchRows:
    """``rows(step)``: the rows of each member's minibatch at ``step``, (K, size) on ``xp``; row k is
    ``size`` distinct samples of ``range(counts[k])``, drawn uniformly, as member k's generator decides.

    On NumPy each member's generator draws its rows (``rng.choice``, without
    replacement). On CuPy a loop over K generators would cost more than the
    step itself, so every member's rows come from one array program instead
    (:func:`hashed_rows`): the same law, each member's rows the same alone and
    in any population, and a pure function of the generator's seed and the
    step (not of its state, so a resumed run draws what an unbroken one draws).
    """

    def __init__(self, rngs: list, counts: list, size: int, xp=numpy):
        self.rngs, self.counts, self.size, self.xp = rngs, counts, size, xp
        if xp is not numpy:
            self.keys = xp.asarray([stream_key(rng) for rng in rngs])

    def __call__(self, step: int):
        if self.xp is numpy:
            return numpy.stack([rng.choice(n, size=self.size, replace=False)
                                for rng, n in zip(self.rngs, self.counts)])
        return hashed_rows(self.keys, step, self.size, self.counts)


# SplitMix64's output for counter c is a closed form: mix(key + c * golden), uint64 arithmetic mod 2**64
_GOLDEN, _MIX1, _MIX2 = (numpy.uint64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))
_S27, _S30, _S31, _S32 = (numpy.uint64(c) for c in (27, 30, 31, 32))


def stream_key(rng: numpy.random.Generator) -> numpy.uint64:
    """A generator's key for :func:`hashed_rows`: a pure function of the seed it was made from."""
    return rng.bit_generator.seed_seq.generate_state(1, numpy.uint64)[0]


def hashed_rows(keys, step: int, size: int, counts):
    """K minibatches' rows (K, size) as one array program on ``keys`` (K,) uint64, on their device.

    A SplitMix64 hash (Steele, Lea & Flood 2014) of (member k's key, the
    step, the sample) gives each of its ``counts[k]`` samples a random key,
    and the ``size`` smallest keys pick the rows: a uniformly random subset.
    """
    xp, counts = array_module(keys), numpy.asarray(counts, dtype=numpy.int64)      # counts: on the host
    sample = xp.arange(int(counts.max()), dtype=numpy.uint64)                     # (n,) n: the largest count
    counts = xp.asarray(counts).reshape(-1, 1)                                    # (K, 1)
    z = keys.astype(numpy.uint64)[:, None] + _GOLDEN * ((numpy.uint64(step) << _S32) + sample + numpy.uint64(1))
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    z ^= z >> _S31                                                                # (K, n) a random key per sample
    z[sample[None, :].astype(numpy.int64) >= counts] = numpy.uint64(2**64 - 1)   # past a member's own samples
    rows = xp.argpartition(z, size - 1, axis=1)[:, :size]                         # the size smallest keys
    return xp.sort(rows, axis=1)                                                  # (K, size), in a fixed order


class FixedDatasetTask(Task):
    """A task with one dataset ``(self.x, self.target, self.mask)`` of ``config.n_samples`` sequences.

    Each step trains on all of it, or on a random minibatch of
    ``config.batch_size`` sequences drawn without replacement.
    """

    fixed_dataset = True

    def whole(self) -> Batch:
        """All of the dataset, as one batch."""
        return Batch(self.x, self.target, self.mask)

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        size = self.config.batch_size
        if size is None or size >= self.config.n_samples:
            return self.whole()
        if getattr(self, "_rows", None) is None or self._rows.rngs[0] is not rng:   # one per generator
            self._rows = MinibatchRows([rng], [self.config.n_samples], size, self.xp)
        rows = self._rows(step)[0]                                                            # (size,)
        pick = lambda a: self.xp.take(a, rows, axis=1)                    # noqa: E731  (faster than a[:, rows])
        return Batch(pick(self.x), pick(self.target), pick(self.mask))


def population_whole(tasks: list) -> Batch:
    """Every member's whole dataset, stacked on a leading member axis: x (K, T, b, n_in), and so on.

    Members whose datasets are smaller than the largest, ``b``, are padded
    with sequences the mask does not count (zero inputs and targets), so each
    member's loss and gradient are those of its own dataset.
    """
    xp, K = tasks[0].xp, len(tasks)
    size = max(t.x.shape[1] for t in tasks)
    wholes = [t.whole() for t in tasks]
    stacked = []
    for i in range(3):                                                      # x, target, mask
        first = wholes[0][i]
        out = xp.zeros((K, first.shape[0], size) + first.shape[2:], dtype=first.dtype)   # (K, T, b, ...)
        for k, whole in enumerate(wholes):
            out[k, :, :whole[i].shape[1]] = whole[i]
        stacked.append(out)
    return Batch(*stacked)


def population_batches(tasks: list, rngs: list, whole_from: int | None = None):
    """``batch(step)`` for a population: member k's batch drawn from ``rngs[k]`` as ``tasks[k].batch``
    draws it, all of them stacked on a leading member axis: x (K, T, B, n_in), and so on.

    Members that sample minibatches from fixed datasets draw their rows
    together (:class:`MinibatchRows`) and are gathered at once from their
    datasets laid side by side; any other task is asked member by
    member. From step ``whole_from`` on, each member trains on its whole
    dataset (:func:`population_whole`), as ``TrainConfig.full_batch_tail`` asks.
    """
    if whole_from is not None:
        minibatch, whole = population_batches(tasks, rngs), []

        def batch(step: int) -> Batch:
            if step < whole_from:
                return minibatch(step)
            if not whole:
                whole.append(population_whole(tasks))                     # built once, when first needed
            return whole[0]
        return batch

    xp = tasks[0].xp
    sampled = all(isinstance(t, FixedDatasetTask) and t.config.batch_size is not None
                  and t.config.batch_size < t.config.n_samples for t in tasks)
    if not sampled:
        def batch(step: int) -> Batch:
            batches = [task.batch(step, rng) for task, rng in zip(tasks, rngs)]
            shapes = {tuple(b.x.shape) for b in batches}
            if len(shapes) > 1:
                raise RnncapError(f"a population's members must share the shape of their batches: got {sorted(shapes)}")
            x, target, mask = (xp.stack([b[i] for b in batches]) for i in range(3))   # (K, T, B, ...)
            return Batch(x, target, mask, batches[0].carry)
        return batch

    K, size = len(tasks), tasks[0].config.batch_size
    if any(t.config.batch_size != size for t in tasks):
        raise RnncapError("a population's members must share the batch size: "
                          f"got {sorted({t.config.batch_size for t in tasks})}")
    gathers = [SampleGather(xp.concatenate([getattr(t, name) for t in tasks], axis=1))
               for name in ("x", "target", "mask")]                                 # (T, sum of b, ...)

    counts = [t.config.n_samples for t in tasks]
    offsets = xp.asarray(numpy.cumsum([0] + counts[:-1]))[:, None]                  # (K, 1)
    draw = MinibatchRows(rngs, counts, size, xp)

    def batch(step: int) -> Batch:
        rows = (xp.asarray(draw(step)) + offsets).reshape(-1)                       # (K*B,)
        return Batch(*(gather(rows, members=K) for gather in gathers))
    return batch
