"""Losses over a sequence, with a mask saying which (step, sequence) pairs count.

Each loss is called as ``loss(out, target, mask) -> (value, dout)``, where
``out`` (T, B, n_out) is the readout at every step, ``mask`` (T, B) holds 1
where the step counts and 0 where it does not (or None: every step counts),
``value`` is the mean over the counted positions, in nats for the
cross-entropies (a 0-d array in ``out``'s dtype, so that a gradient check in
extended precision keeps every digit), and ``dout`` = d value / d out.

- :class:`SoftmaxCrossEntropy`: one softmax over ``n_out`` classes; integer
  targets (T, B); optionally of labels that are random with probability
  ``noise`` (the capacity task's loss near capacity).
- :class:`MultiSoftmaxCrossEntropy`: ``heads`` independent softmaxes of
  ``n_out / heads`` classes each (the parentheses task: one per bracket type);
  integer targets (T, B, heads); the value is also averaged over the heads.
- :class:`SquaredError`: ``sum_d (out_d - target_d)^2``; real targets
  (T, B, n_out).

In a population (:mod:`rnncap.population`) every array has a leading member
axis (``out`` (K, T, B, n_out); the mask (K, T, B) or one (T, B) for all) and
``value`` is a vector (K,): each member's own mean, so that the gradient of
their sum is each member's gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnncap.backend import array_module, to_numpy
from rnncap.errors import RnncapError


def _mask_and_count(xp, mask, out):
    """The mask in ``out``'s dtype, and how many positions it counts (per member in a population)."""
    if mask is None:
        mask = xp.ones(out.shape[-3:-1], dtype=out.dtype)                  # (T, B)
    mask = xp.asarray(mask, dtype=out.dtype)                                # (T, B)
    count = mask.sum(axis=(-2, -1))                                         # () or (K,)
    if bool((count <= 0).any()):
        raise RnncapError("the loss mask selects no step: at least one entry must be nonzero")
    return mask, count


def _per_position(count):
    """``count`` shaped to divide a (T, B, n_out) gradient, member by member."""
    return count[..., None, None, None]


def _over_classes(pairwise, reduce, a):
    """``reduce(a, axis=-1)``, taken slice by slice when the class axis is short.

    NumPy reduces a short last axis slowly (about 10 µs for (256, 2) float32,
    against 1 µs for one ``maximum`` of its two columns), and the capacity
    task's softmax has 2 classes. ``pairwise`` is the matching ufunc
    (``maximum`` for ``max``, ``add`` for ``sum``).
    """
    classes = a.shape[-1]
    if classes > 8:
        return reduce(a, axis=-1)
    out = a[..., 0]
    for c in range(1, classes):
        out = pairwise(out, a[..., c])
    return out


def _softmax_xent(logits, target, mask, noise: float = 0.0):
    """Masked cross-entropy of softmaxes over the last axis, per position; ``logits`` (..., K), ``target`` (...).

    With ``noise`` > 0 the likelihood is that of labels that are right with
    probability ``1 - noise`` and uniformly random otherwise:
    ``p = (1 - noise) q + noise / K`` for the softmax's probability ``q`` of the
    target. Its gradient is the cross-entropy's weighted by
    ``w = (1 - noise) q / p``, which falls to 0 for a label the network gives
    up on (``q -> 0``) and is about 1 for one it fits.
    """
    xp = array_module(logits)
    z = logits - _over_classes(xp.maximum, xp.max, logits)[..., None]      # stable: largest logit is 0  (..., K)
    e = xp.exp(z)
    onehot = xp.arange(logits.shape[-1]) == target[..., None]               # (..., K)
    z_target = _over_classes(xp.add, xp.sum, z * onehot)                    # 0 where the target's logit is largest
    others = _over_classes(xp.add, xp.sum, xp.where(onehot, 0.0, e))        # the other classes' terms  (...)
    total = xp.exp(z_target) + others                                       # the softmax's denominator  (...)
    # -log q, q = softmax at the target, is log(total) - z_target; where the target is largest, total = 1 + others,
    # and log1p(others) keeps every digit of a small loss that log(1 + tiny) would round away
    nll = xp.where(z_target == 0, xp.log1p(others), xp.log(total) - z_target)   # (...)
    weight = mask
    if noise:
        fit = (1.0 - noise) * xp.exp(-nll)                                  # (1 - noise) q
        p = fit + noise / logits.shape[-1]
        # where p is near 1, -log p as -log1p(-(1 - p)) with 1 - q = -expm1(-nll), to keep every digit
        near_one = (1.0 - noise) * xp.expm1(-nll) - noise * (1.0 - 1.0 / logits.shape[-1])   # p - 1
        nll = xp.where(p > 0.5, -xp.log1p(xp.maximum(near_one, -0.5)), -xp.log(p))
        weight = mask * (fit / p)                                           # w
    dlogits = (e / total[..., None] - onehot) * weight[..., None]           # (softmax - onehot) w  (..., K)
    return nll * mask, dlogits


@dataclass(frozen=True)
class SoftmaxCrossEntropy:
    """Cross-entropy of one softmax; ``noise`` > 0: of labels that are random with that probability (see
    ``_softmax_xent``; the capacity task's ``label_noise``)."""

    noise: float = 0.0
    name = "softmax"

    def __post_init__(self):
        if not 0.0 <= self.noise < 1.0:
            raise RnncapError(f"the label noise must be in [0, 1), got {self.noise}")

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        mask, count = _mask_and_count(xp, mask, out)
        nll, dout = _softmax_xent(out, xp.asarray(target), mask, self.noise)   # (T, B), (T, B, n_out)
        return nll.sum(axis=(-2, -1)) / count, dout / _per_position(count)


@dataclass(frozen=True)
class MultiSoftmaxCrossEntropy:
    heads: int
    name = "multi_softmax"

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        *lead, n_out = out.shape
        if n_out % self.heads:
            raise RnncapError(f"{n_out} outputs do not split into {self.heads} equal softmax heads")
        mask, count = _mask_and_count(xp, mask, out)
        logits = out.reshape(*lead, self.heads, n_out // self.heads)       # (T, B, H, K)
        head_mask = xp.broadcast_to(mask[..., None], (*lead, self.heads))  # (T, B, H)
        nll, dlogits = _softmax_xent(logits, xp.asarray(target), head_mask)
        scale = count * self.heads
        return nll.sum(axis=(-3, -2, -1)) / scale, dlogits.reshape(out.shape) / _per_position(scale)


@dataclass(frozen=True)
class SquaredError:
    name = "squared"

    def __call__(self, out, target, mask=None):
        xp = array_module(out)
        mask, count = _mask_and_count(xp, mask, out)
        diff = out - xp.asarray(target, dtype=out.dtype)                    # (T, B, D)
        value = ((diff * diff).sum(axis=-1) * mask).sum(axis=(-2, -1))
        return value / count, 2.0 * diff * mask[..., None] / _per_position(count)


def counted_steps(mask, T: int):
    """The time steps at which ``mask`` (T, B) counts anything: a slice when they are consecutive, else
    indices; None when it is all of them.

    The capacity and memory tasks read their output at one step of ``T``: the
    network then computes its readout and the loss only there
    (:meth:`rnncap.network.Network.loss_and_grads`).
    """
    if mask is None:
        return None
    xp = array_module(mask)
    mask = xp.asarray(mask)
    time_axis = mask.ndim - 2
    counts = (mask != 0).any(axis=tuple(a for a in range(mask.ndim) if a != time_axis))     # (T,)
    steps = to_numpy(counts).nonzero()[0]
    if len(steps) in (0, T):
        return None
    if steps[-1] - steps[0] == len(steps) - 1:
        return slice(int(steps[0]), int(steps[-1]) + 1)
    return steps


def at_steps(a, steps, axis: int):
    """``a`` at the time ``steps`` (:func:`counted_steps`) along ``axis``: a view for a slice, else a copy."""
    axis %= a.ndim
    if isinstance(steps, slice):
        return a[(slice(None),) * axis + (steps,)]
    xp = array_module(a)
    return xp.take(a, xp.asarray(steps), axis=axis)


def make_loss(name: str, heads: int = 1):
    """A loss by name: ``softmax``, ``multi_softmax`` (with ``heads``) or ``squared``."""
    if name == "softmax":
        return SoftmaxCrossEntropy()
    if name == "multi_softmax":
        return MultiSoftmaxCrossEntropy(heads)
    if name == "squared":
        return SquaredError()
    raise RnncapError(f"unknown loss {name!r}: choose softmax, multi_softmax or squared")
