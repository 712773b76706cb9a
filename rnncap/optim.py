"""First-order optimisers, learning-rate decay, gradient clipping and the L2 penalty.

Each optimiser keeps its state in a dict of arrays (so a checkpoint can save
it with ``numpy.savez``) and updates the parameter arrays in place:

    state = opt.init(params)
    opt.update(params, grads, state, lr)

The state holds every parameter laid end to end in one vector
(:func:`flatten`), so a step is a handful of whole-vector operations however
many arrays the network has; ``grads`` is a dict keyed like ``params``, or
already flattened (as the training loop does, to clip it in one pass).

- ``sgd``: SGD with (heavy-ball) momentum ``mu``: ``v = mu v - lr g; θ += v``.
- ``rmsprop``: ``s = rho s + (1 - rho) g^2; θ -= lr g / (sqrt(s) + eps)``.
- ``adam``: Kingma & Ba, with bias correction.

Full-batch L-BFGS lives in :mod:`rnncap.train`, since SciPy drives its loop.

In a population (:mod:`rnncap.population`) every parameter has a leading
member axis, and the numbers that members may differ in (the learning rate,
momentum, the clipping threshold, the L2 weight) are arrays (K,), one per
member; :func:`per_member` shapes such an array to multiply a parameter, and
the state vectors are (K, P), one row per member (``opt.init(params, members=1)``).
Plain numbers work as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from rnncap.backend import array_module, to_numpy
from rnncap.errors import RnncapError

OPTIMIZERS = ("adam", "rmsprop", "sgd", "lbfgs")


def per_member(value, like):
    """``value`` ready to multiply ``like``: a number as it is; an array (K,) cast to ``like``'s
    dtype and array module and shaped (K, 1, ..., 1), one entry per member."""
    if getattr(value, "ndim", 0) == 0:
        return value
    xp = array_module(like)
    return xp.asarray(value, dtype=like.dtype).reshape(value.shape + (1,) * (like.ndim - value.ndim))


def member_sums(arrays, members: int):
    """``sum`` of every entry of ``arrays``, member by member: (K,) when ``members`` is K, a float when 0."""
    if not members:
        return float(sum(a.sum() for a in arrays))
    return sum(a.reshape(members, -1).sum(axis=1) for a in arrays)


def flatten(arrays: dict, members: int = 0):
    """The arrays laid end to end: one vector (P,), or one per member (K, P) when ``members`` is 1.

    The optimisers keep their state this way and update it in a few
    whole-vector operations, however many parameter arrays a network has.
    """
    xp = array_module(*arrays.values())
    return xp.concatenate([a.reshape(*a.shape[:members], -1) for a in arrays.values()], axis=-1)


def _subtract(params: dict, delta) -> None:
    """``p -= `` its piece of ``delta`` (flattened like :func:`flatten`), for every parameter, in place."""
    start = 0
    for p in params.values():
        size = p.size // math.prod(delta.shape[:-1])
        p -= delta[..., start:start + size].reshape(p.shape)
        start += size


def _vector(params: dict, grads, like):
    """``grads`` laid out like the state vector ``like``: a dict keyed like ``params`` is flattened."""
    if isinstance(grads, dict):
        return flatten({k: grads[k] for k in params}, like.ndim - 1)
    return grads


def _zeros(params: dict, members: int):
    xp = array_module(*params.values())
    return xp.zeros_like(flatten(params, members))


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.9

    def init(self, params: dict, members: int = 0) -> dict:
        return {"v": _zeros(params, members)}

    def update(self, params: dict, grads, state: dict, lr) -> None:
        v = state["v"]
        g = _vector(params, grads, v)
        v *= per_member(self.momentum, v)
        v -= per_member(lr, v) * g
        _subtract(params, -v)


@dataclass(frozen=True)
class RMSProp:
    rho: float = 0.9
    eps: float = 1e-8

    def init(self, params: dict, members: int = 0) -> dict:
        return {"s": _zeros(params, members)}

    def update(self, params: dict, grads, state: dict, lr) -> None:
        xp = array_module(state["s"])
        s = state["s"]
        g = _vector(params, grads, s)
        s *= self.rho
        s += (1.0 - self.rho) * g * g
        _subtract(params, per_member(lr, s) * g / (xp.sqrt(s) + self.eps))


@dataclass(frozen=True)
class Adam:
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, params: dict, members: int = 0) -> dict:
        xp = array_module(*params.values())
        return {"t": xp.zeros((), dtype="int64"), "m": _zeros(params, members), "v": _zeros(params, members)}

    def update(self, params: dict, grads, state: dict, lr) -> None:
        xp = array_module(state["m"])
        g = _vector(params, grads, state["m"])
        state["t"] += 1
        t = int(state["t"])
        step = lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)   # bias correction
        m, v = state["m"], state["v"]
        m *= self.beta1
        m += (1.0 - self.beta1) * g
        v *= self.beta2
        v += (1.0 - self.beta2) * g * g
        _subtract(params, per_member(step, m) * m / (xp.sqrt(v) + self.eps))


def make_optimizer(name: str, momentum: float = 0.9):
    if name == "adam":
        return Adam()
    if name == "rmsprop":
        return RMSProp()
    if name == "sgd":
        return SGD(momentum)
    raise RnncapError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


LR_SCHEDULES = ("exponential", "linear", "cosine")


def learning_rate(lr, decay, step: int, total_steps: int, schedule: str = "exponential"):
    """The rate at ``step``: from ``lr`` at step 0 to ``lr * decay`` at the last step, along ``schedule``.

    With ``f = step / total_steps`` and ``d = decay``:

        exponential   lr * d^f
        linear        lr * (1 - (1 - d) f)
        cosine        lr * (d + (1 - d) (1 + cos(pi f)) / 2)

    On the capacity task (1000-parameter RNN, REPRODUCTION.md) the linear
    schedule to ``lr/1000`` stored 0.24 bits per parameter more than the
    exponential tenfold decay in 60000 steps (in 20000: 0.2-0.28 on one set
    of seeds, nothing on another): the capacity searches train with it.
    ``lr`` and ``decay`` may be arrays (K,), one per member.
    """
    f = step / max(1, total_steps)
    if schedule == "exponential":
        return lr * decay ** f
    if schedule == "linear":
        return lr * (1.0 - (1.0 - decay) * f)
    if schedule == "cosine":
        return lr * (decay + (1.0 - decay) * 0.5 * (1.0 + math.cos(math.pi * f)))
    raise RnncapError(f"unknown learning-rate schedule {schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")


def is_weight(name: str) -> bool:
    """The L2 penalty applies to weight matrices, not to biases or initial states."""
    return name.rsplit(".", 1)[-1].startswith("W")


def l2_penalty(params: dict, l2, members: int = 0):
    """``l2/2 * sum ||W||^2`` over the weight matrices (per member: ``l2`` and the result (K,))."""
    if not numpy.any(l2):
        return numpy.zeros(members) if members else 0.0
    return 0.5 * l2 * member_sums([p * p for k, p in params.items() if is_weight(k)], members)


def add_l2(params: dict, grads: dict, l2, members: int = 0):
    """Add the L2 penalty's gradient to ``grads`` in place; return the penalty."""
    if numpy.any(l2):
        for k, p in params.items():
            if is_weight(k):
                grads[k] += per_member(l2, p) * p
    return l2_penalty(params, l2, members)


def clip_by_norm(g, max_norm):
    """Scale the gradient vector ``g`` (:func:`flatten`) so that its norm is at most ``max_norm``; return
    the norm before, as a float.

    In a population ``g`` is (K, P) and ``max_norm`` an array (K,), inf for no
    clipping: each member is clipped alone, and the norms come back as (K,).
    ``max_norm`` None never clips.
    """
    xp = array_module(g)
    norms = numpy.sqrt(to_numpy((g * g).sum(axis=-1)).astype(numpy.float64))          # () or (K,)
    limit = math.inf if max_norm is None else numpy.asarray(max_norm, dtype=numpy.float64)
    clipped = numpy.isfinite(norms) & (norms > limit)
    if clipped.any():
        scale = numpy.where(clipped, limit / numpy.where(clipped, norms, 1.0), 1.0)
        g *= per_member(scale, g) if scale.ndim else xp.asarray(scale, dtype=g.dtype)
    return norms if norms.ndim else float(norms)
