"""Losses over a sequence, with a mask saying which (step, sequence) pairs count.

Each loss is called as ``loss(out, target, mask) -> (value, dout)``, where
``out`` (T, B, n_out) is the readout at every step, ``mask`` (T, B) holds 1
where the step counts and 0 where it does not (or None: every step counts),
``value`` is the mean over the counted positions, in nats for the
cross-entropies (a 0-d array in ``out``'s dtype, so that a gradient check in
extended precision keeps every digit), and ``dout`` = d value / d out.

- :class:`SoftmaxCrossEntropy`: one softmax over ``n_out`` classes; integer
  targets (T, B).
- :class:`MultiSoftmaxCrossEntropy`: ``heads`` independent softmaxes of
  ``n_out / heads`` classes each (the parentheses task: one per bracket type);
  integer targets (T, B, heads); the value is also averaged over the heads.
- :class:`SquaredError`: ``sum_d (out_d - target_d)^2``; real targets
  (T, B, n_out).
"""

from __future__ import annotations

from dataclasses import dataclass

from rnncap.backend import array_module
from rnncap.errors import RnncapError


def _mask_and_count(xp, mask, shape, dtype):
    if mask is None:
        mask = xp.ones(shape, dtype=dtype)
    mask = xp.asarray(mask, dtype=dtype)                                    # (T, B)
    count = float(mask.sum())
    if count <= 0:
        raise RnncapError("the loss mask selects no step: at least one entry must be nonzero")
    return mask, count


def log_softmax(z, axis=-1):
    xp = array_module(z)
    z = z - z.max(axis=axis, keepdims=True)                                 # stable: largest logit is 0
    return z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))


def _softmax_xent(logits, target, mask):
    """Cross-entropy of softmaxes over the last axis; ``logits`` (..., K), ``target`` (...)."""
    xp = array_module(logits)
    logp = log_softmax(logits)                                              # (..., K)
    nll = -xp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]     # (...)
    value = (nll * mask).sum()
    onehot = xp.arange(logits.shape[-1]) == target[..., None]               # (..., K)
    dlogits = (xp.exp(logp) - onehot) * mask[..., None]                     # softmax - onehot  (..., K)
    return value, dlogits


@dataclass(frozen=True)
class SoftmaxCrossEntropy:
    name = "softmax"

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        mask, count = _mask_and_count(xp, mask, out.shape[:2], out.dtype)
        value, dout = _softmax_xent(out, xp.asarray(target), mask)
        return value / count, dout / count


@dataclass(frozen=True)
class MultiSoftmaxCrossEntropy:
    heads: int
    name = "multi_softmax"

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        T, B, n_out = out.shape
        if n_out % self.heads:
            raise RnncapError(f"{n_out} outputs do not split into {self.heads} equal softmax heads")
        mask, count = _mask_and_count(xp, mask, (T, B), out.dtype)
        logits = out.reshape(T, B, self.heads, n_out // self.heads)         # (T, B, H, K)
        head_mask = xp.broadcast_to(mask[:, :, None], (T, B, self.heads))   # (T, B, H)
        value, dlogits = _softmax_xent(logits, xp.asarray(target), head_mask)
        scale = count * self.heads
        return value / scale, dlogits.reshape(T, B, n_out) / scale


@dataclass(frozen=True)
class SquaredError:
    name = "squared"

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        mask, count = _mask_and_count(xp, mask, out.shape[:2], out.dtype)
        diff = out - xp.asarray(target, dtype=out.dtype)                    # (T, B, D)
        value = ((diff * diff).sum(axis=-1) * mask).sum()
        return value / count, 2.0 * diff * mask[:, :, None] / count


def make_loss(name: str, heads: int = 1):
    """A loss by name: ``softmax``, ``multi_softmax`` (with ``heads``) or ``squared``."""
    if name == "softmax":
        return SoftmaxCrossEntropy()
    if name == "multi_softmax":
        return MultiSoftmaxCrossEntropy(heads)
    if name == "squared":
        return SquaredError()
    raise RnncapError(f"unknown loss {name!r}: choose softmax, multi_softmax or squared")
