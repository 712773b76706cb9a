"""First-order optimisers, learning-rate decay, gradient clipping and the L2 penalty.

Each optimiser keeps its state in a dict of arrays keyed like the parameters
(so a checkpoint can save it with ``numpy.savez``), and updates the parameter
arrays in place:

    state = opt.init(params)
    opt.update(params, grads, state, lr)

- ``sgd``: SGD with (heavy-ball) momentum ``mu``: ``v = mu v - lr g; θ += v``.
- ``rmsprop``: ``s = rho s + (1 - rho) g^2; θ -= lr g / (sqrt(s) + eps)``.
- ``adam``: Kingma & Ba, with bias correction.

Full-batch L-BFGS lives in :mod:`rnncap.train`, since SciPy drives its loop.

In a population (:mod:`rnncap.population`) every parameter has a leading
member axis, and the numbers that members may differ in (the learning rate,
momentum, the clipping threshold, the L2 weight) are arrays (K,), one per
member; :func:`per_member` shapes such an array to multiply a parameter.
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


@dataclass(frozen=True)
class SGD:
    momentum: float = 0.9

    def init(self, params: dict) -> dict:
        xp = array_module(*params.values())
        return {f"v.{k}": xp.zeros_like(p) for k, p in params.items()}

    def update(self, params: dict, grads: dict, state: dict, lr: float) -> None:
        for k, p in params.items():
            v = state[f"v.{k}"]
            v *= per_member(self.momentum, v)
            v -= per_member(lr, p) * grads[k]
            p += v


@dataclass(frozen=True)
class RMSProp:
    rho: float = 0.9
    eps: float = 1e-8

    def init(self, params: dict) -> dict:
        xp = array_module(*params.values())
        return {f"s.{k}": xp.zeros_like(p) for k, p in params.items()}

    def update(self, params: dict, grads: dict, state: dict, lr: float) -> None:
        xp = array_module(*params.values())
        for k, p in params.items():
            g, s = grads[k], state[f"s.{k}"]
            s *= self.rho
            s += (1.0 - self.rho) * g * g
            p -= per_member(lr, p) * g / (xp.sqrt(s) + self.eps)


@dataclass(frozen=True)
class Adam:
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def init(self, params: dict) -> dict:
        xp = array_module(*params.values())
        state = {"t": xp.zeros((), dtype="int64")}
        for k, p in params.items():
            state[f"m.{k}"] = xp.zeros_like(p)
            state[f"v.{k}"] = xp.zeros_like(p)
        return state

    def update(self, params: dict, grads: dict, state: dict, lr: float) -> None:
        xp = array_module(*params.values())
        state["t"] += 1
        t = int(state["t"])
        step = lr * math.sqrt(1.0 - self.beta2 ** t) / (1.0 - self.beta1 ** t)   # bias correction
        for k, p in params.items():
            g, m, v = grads[k], state[f"m.{k}"], state[f"v.{k}"]
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            v *= self.beta2
            v += (1.0 - self.beta2) * g * g
            p -= per_member(step, p) * m / (xp.sqrt(v) + self.eps)


def make_optimizer(name: str, momentum: float = 0.9):
    if name == "adam":
        return Adam()
    if name == "rmsprop":
        return RMSProp()
    if name == "sgd":
        return SGD(momentum)
    raise RnncapError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")


def learning_rate(lr: float, decay: float, step: int, total_steps: int) -> float:
    """Exponential decay from ``lr`` at step 0 to ``lr * decay`` at the last step."""
    return lr * decay ** (step / max(1, total_steps))


def is_weight(name: str) -> bool:
    """The L2 penalty applies to weight matrices, not to biases or initial states."""
    return name.rsplit(".", 1)[-1].startswith("W")


def l2_penalty(params: dict, l2, members: int = 0):
    """``l2/2 * sum ||W||^2`` over the weight matrices (per member: ``l2`` and the result (K,))."""
    if not members and l2 == 0.0:
        return 0.0
    return 0.5 * l2 * member_sums([p * p for k, p in params.items() if is_weight(k)], members)


def add_l2(params: dict, grads: dict, l2, members: int = 0):
    """Add the L2 penalty's gradient to ``grads`` in place; return the penalty."""
    if members or l2 != 0.0:
        for k, p in params.items():
            if is_weight(k):
                grads[k] += per_member(l2, p) * p
    return l2_penalty(params, l2, members)


def global_norm(grads: dict) -> float:
    return math.sqrt(float(sum((g * g).sum() for g in grads.values())))


def clip_by_global_norm(grads: dict, max_norm: float | None) -> float:
    """Scale all gradients together so their joint norm is at most ``max_norm``; return the norm before."""
    norm = global_norm(grads)
    if max_norm is not None and norm > max_norm and math.isfinite(norm):
        scale = max_norm / norm
        for g in grads.values():
            g *= scale
    return norm


def clip_members_by_norm(grads: dict, max_norms):
    """:func:`clip_by_global_norm` for each member of a population: ``max_norms`` (K,), inf for none."""
    members = len(max_norms)
    norms = numpy.sqrt(to_numpy(member_sums([g * g for g in grads.values()], members)).astype(numpy.float64))
    clipped = numpy.isfinite(norms) & (norms > max_norms)
    if clipped.any():
        scale = numpy.where(clipped, max_norms / numpy.where(clipped, norms, 1.0), 1.0)     # (K,)
        for g in grads.values():
            g *= per_member(scale, g)
    return norms
