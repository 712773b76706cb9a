"""Arithmetic: add (or subtract) two integers written one character per step.

After the public Google reimplementation of the paper's arithmetic task (a
2017 Sonnet ``Addition`` data generator, "character by character arithmetic"). With
``d = digits`` (8 by default), two integers ``a`` and ``b`` are drawn
uniformly from the open interval ``(-10^d, 10^d)``. Each is written as a sign
character (``-`` if negative, a space otherwise) followed by exactly ``d``
digits, zero-padded on the left. Then the input reads, one character per step,

    a (1 + d chars)   op (1 char)   b (1 + d chars)   = ... = (d + 2 chars)

with ``op`` = ``+``, or ``-`` with ``subtraction=True`` (then the answer is
``a - b``). While the ``=`` symbols come in, the answer is emitted, one
character per step: its sign character and ``d + 1`` zero-padded digits, most
significant first (``|a ± b| < 2 * 10^d`` needs ``d + 1`` digits). For
``d = 8``: 9 + 1 + 9 + 10 = 29 steps, of which the last 10 are answer steps::

    input   ' 01234567+-00000042=========='   (one '=' per answer step)
    target                     ' 001234525'  on the last 10 steps

Input vocabulary (14, one-hot): ``0123456789+-= ``; output vocabulary (12,
softmax): ``0123456789- ``. The loss is the softmax cross-entropy on the
answer steps only (the mask is 1 exactly there).

Choices that are ours, where the paper and the reference are silent or
differ:

- zero padding (the reference pads with spaces and writes the sign next to
  the first digit): every digit position then has the same place value in
  every sample, and the sign sits at a fixed step, so the task is addition
  and not also finding where a number starts;
- the first answer character is emitted on the step of the first ``=``
  (the reference waits one more ``=``): the network has one recurrent step
  after the last digit of ``b`` to decide the sign;
- the operands range over ``(-10^d, 10^d)`` so that both fit in ``d``
  digits (the reference draws from ``[-10^7, 10^7)`` with width 9).

Training batches are fresh operands from the generator the loop passes in.
Metrics on a fixed evaluation set of ``eval_samples`` problems drawn from
``seed``: ``loss`` (mean cross-entropy per answer character, nats),
``char_accuracy`` (fraction of answer characters right) and ``accuracy``
(fraction of problems whose whole answer is right).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy

from rnncap.autodiff.losses import SoftmaxCrossEntropy
from rnncap.backend import TRAIN_DTYPE, to_numpy
from rnncap.errors import RnncapError
from rnncap.resources import Footprint
from rnncap.tasks.base import Batch, Task

INPUT_VOCAB = "0123456789+-= "    # ids 0-9 digits, 10 '+', 11 '-', 12 '=', 13 ' '
OUTPUT_VOCAB = "0123456789- "     # ids 0-9 digits, 10 '-', 11 ' '
MAX_DIGITS = 18                   # |a ± b| < 2 * 10^18 still fits in int64


class Problems(NamedTuple):
    inputs: numpy.ndarray         # (T, B) input symbol ids
    targets: numpy.ndarray        # (T, B) output symbol ids (0 outside the answer)
    mask: numpy.ndarray           # (T, B) 1 on the answer steps


def sequence_length(digits: int) -> int:
    """Steps per problem: two operands, the operator, and one '=' per answer character."""
    return (1 + digits) + 1 + (1 + digits) + answer_length(digits)


def answer_length(digits: int) -> int:
    return 1 + (digits + 1)        # sign-or-space, then digits + 1 digits


def _write(values: numpy.ndarray, width: int, vocab: str) -> numpy.ndarray:
    """Ids of each value written as sign-or-space + ``width`` zero-padded digits: (B,) -> (1 + width, B)."""
    magnitude = numpy.abs(values)                                             # (B,)
    place = 10 ** numpy.arange(width - 1, -1, -1, dtype=numpy.int64)          # (width,) most significant first
    digits = (magnitude[None, :] // place[:, None]) % 10                      # (width, B), id of digit = digit
    sign = numpy.where(values < 0, vocab.index("-"), vocab.index(" "))        # (B,)
    return numpy.concatenate([sign[None, :], digits])                         # (1 + width, B)


def encode_problems(a: numpy.ndarray, b: numpy.ndarray, digits: int, subtraction: bool = False) -> Problems:
    """Inputs, targets and mask for operands ``a``, ``b`` (B,) with ``|a|, |b| < 10^digits``."""
    a, b = numpy.asarray(a, dtype=numpy.int64), numpy.asarray(b, dtype=numpy.int64)
    B, n_answer = a.shape[0], answer_length(digits)
    operator = numpy.full((1, B), INPUT_VOCAB.index("-" if subtraction else "+"))   # (1, B)
    equals = numpy.full((n_answer, B), INPUT_VOCAB.index("="))                # (n_answer, B)
    inputs = numpy.concatenate([_write(a, digits, INPUT_VOCAB), operator,
                                _write(b, digits, INPUT_VOCAB), equals])      # (T, B)
    answer = a - b if subtraction else a + b                                  # (B,)
    T = inputs.shape[0]
    targets = numpy.zeros((T, B), dtype=numpy.int64)                          # (T, B)
    targets[T - n_answer:] = _write(answer, digits + 1, OUTPUT_VOCAB)         # emitted from the first '='
    mask = numpy.zeros((T, B))                                                # (T, B)
    mask[T - n_answer:] = 1.0
    return Problems(inputs, targets, mask)


def decode_number(ids, vocab: str = OUTPUT_VOCAB) -> int | None:
    """The integer that a sign-or-space + digits sequence of ids spells, or None if it is malformed.

    Works for an answer (output ids, e.g. a target or a network's argmax over
    the answer steps) and, with ``vocab=INPUT_VOCAB``, for an operand.
    """
    text = "".join(vocab[int(i)] for i in ids)
    sign, body = text[:1], text[1:]
    if sign not in ("-", " ") or not body.isdigit():
        return None
    return -int(body) if sign == "-" else int(body)


@dataclass(frozen=True)
class ArithConfig:
    digits: int = 8               # d: operands in (-10^d, 10^d)
    subtraction: bool = False     # the answer is a - b (operator '-') instead of a + b
    batch_size: int = 64
    eval_samples: int = 1024      # problems in the fixed evaluation set
    seed: int = 0                 # the evaluation set's seed

    def __post_init__(self):
        if not 1 <= self.digits <= MAX_DIGITS:
            raise RnncapError(f"arith task: digits must be between 1 and {MAX_DIGITS}, got {self.digits}")
        for name in ("batch_size", "eval_samples"):
            if getattr(self, name) < 1:
                raise RnncapError(f"arith task: {name} must be >= 1, got {getattr(self, name)}")

    def footprint(self) -> Footprint:
        return Footprint(steps=sequence_length(self.digits), batch=self.batch_size, evaluated=self.eval_samples,
                         held=self.eval_samples, n_in=len(INPUT_VOCAB), n_out=len(OUTPUT_VOCAB))


class ArithTask(Task):
    name = "arith"
    objective = "loss"
    direction = "min"

    def __init__(self, config: ArithConfig = ArithConfig(), xp=numpy, dtype=TRAIN_DTYPE):
        super().__init__(xp, dtype)
        self.config = config
        self.n_in, self.n_out = len(INPUT_VOCAB), len(OUTPUT_VOCAB)
        self.T = sequence_length(config.digits)
        self.loss = SoftmaxCrossEntropy()
        self.eval_problems = self.draw_problems(numpy.random.default_rng([config.seed, 1]), config.eval_samples)
        self.eval_batch = self._make_batch(self.eval_problems)

    def draw_operands(self, rng: numpy.random.Generator, size: int) -> tuple[numpy.ndarray, numpy.ndarray]:
        """Two (size,) arrays of integers uniform in (-10^d, 10^d)."""
        bound = 10 ** self.config.digits
        return (rng.integers(-bound + 1, bound, size=size, dtype=numpy.int64),
                rng.integers(-bound + 1, bound, size=size, dtype=numpy.int64))

    def draw_problems(self, rng: numpy.random.Generator, size: int) -> Problems:
        a, b = self.draw_operands(rng, size)
        return encode_problems(a, b, self.config.digits, self.config.subtraction)

    def _make_batch(self, problems: Problems) -> Batch:
        x = numpy.eye(self.n_in)[problems.inputs]                             # one-hot (T, B, 14)
        return Batch(self.to_device(x), self.xp.asarray(problems.targets), self.to_device(problems.mask))

    def batch(self, step: int, rng: numpy.random.Generator) -> Batch:
        return self._make_batch(self.draw_problems(rng, self.config.batch_size))

    def evaluate(self, net) -> dict:
        out = net.forward(self.eval_batch.x).out                              # (T, E, 12)
        loss, _ = self.loss(out, self.eval_batch.target, self.eval_batch.mask)
        n_answer = answer_length(self.config.digits)
        predicted = to_numpy(out[-n_answer:].argmax(axis=-1))                # (n_answer, E)
        right = predicted == self.eval_problems.targets[-n_answer:]           # (n_answer, E)
        return {"loss": float(loss), "char_accuracy": float(right.mean()),
                "accuracy": float(right.all(axis=0).mean())}

    def describe(self) -> dict:
        c = self.config
        return {"task": self.name, "n_in": self.n_in, "n_out": self.n_out, "T": self.T, "digits": c.digits,
                "operation": "a - b" if c.subtraction else "a + b", "answer_steps": answer_length(c.digits),
                "batch": c.batch_size, "eval_samples": c.eval_samples,
                "loss": "softmax over 12 characters on the answer steps",
                "metric": "eval loss (nats/char); char_accuracy; accuracy = whole answer right"}
