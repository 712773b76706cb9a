"""Gradient checks of whole networks: random cases, and the check ``rnncap gradcheck`` runs.

:func:`rnncap.autodiff.gradcheck.gradcheck` compares any float64 network's
gradients with central differences; this module builds the networks and data
it is run on. It lives above ``autodiff/`` (which never imports the network)
because it builds :class:`~rnncap.network.Network` objects.
"""

from __future__ import annotations

import numpy

from rnncap.autodiff.gradcheck import gradcheck
from rnncap.autodiff.losses import make_loss
from rnncap.backend import CHECK_DTYPE
from rnncap.cells import CellHParams
from rnncap.network import Network


def random_check_case(cell: str, depth: int, *, nonlinearity: str | None = None, n_in: int = 3,
                      n_h: int = 3, n_out: int = 4, T: int = 4, B: int = 3, loss_name: str = "softmax",
                      heads: int = 2, pass_state0: bool = False, rng: numpy.random.Generator, xp=numpy):
    """A float64 network with random nonzero parameters, and random data for one loss.

    ``heads`` is the number of softmax heads for ``loss_name="multi_softmax"``
    (``n_out`` must be a multiple of it). Returns ``(net, x, target, mask,
    loss, state0)`` ready for :func:`gradcheck`.
    """
    hp = CellHParams(nonlinearity=nonlinearity, b_fg=float(rng.uniform(-1, 2)),
                     b_fg_y=float(rng.uniform(-1, 2)), bias_scale=0.5)
    net = Network(cell, depth, n_in, n_out, n_h, hp, rng, xp=xp, dtype=CHECK_DTYPE)
    for name, value in net.params.items():                                  # nonzero biases and h0, c0
        net.params[name] = value + xp.asarray(rng.normal(0.0, 0.3, value.shape))
    loss = make_loss(loss_name, heads)
    x = rng.normal(size=(T, B, n_in))
    if loss_name == "squared":
        target = rng.normal(size=(T, B, n_out))
    elif loss_name == "multi_softmax":
        target = rng.integers(0, n_out // heads, size=(T, B, heads))
    else:
        target = rng.integers(0, n_out, size=(T, B))
    mask = (rng.random((T, B)) < 0.7).astype(numpy.float64)
    mask[rng.integers(T), rng.integers(B)] = 1.0                            # at least one step counts
    state0 = None
    if pass_state0:
        state0 = [tuple(xp.asarray(rng.normal(size=(B, n_h))) for _ in net.cell.state_names)
                  for _ in range(depth)]
    return net, xp.asarray(x), xp.asarray(target), xp.asarray(mask), loss, state0


CHECK_LOSSES = (("softmax", False), ("multi_softmax", False), ("squared", True))


def check_network_gradients(cell: str, depth: int, *, nonlinearity: str | None = None, seed: int = 0,
                            mode: str = "entries", n_h: int = 3, T: int = 4, xp=numpy,
                            max_redraws: int = 20) -> dict:
    """Gradient check of a whole network under each loss kind (what ``rnncap gradcheck`` runs).

    One case per loss: softmax, two softmax heads, and squared error with a
    passed-in initial state. If a difference quotient crosses a ReLU kink the
    data are drawn again (at most ``max_redraws`` times). Returns the largest
    relative error of every array over the three cases.
    """
    errors: dict[str, float] = {}
    redraws = 0
    net = None
    for loss_name, pass_state0 in CHECK_LOSSES:
        for attempt in range(max_redraws + 1):
            rng = numpy.random.default_rng([seed, attempt, len(errors)])
            net, x, target, mask, loss, state0 = random_check_case(
                cell, depth, nonlinearity=nonlinearity, n_h=n_h, T=T, loss_name=loss_name,
                pass_state0=pass_state0, rng=rng, xp=xp)
            result = gradcheck(net, x, target, mask, loss, state0, mode=mode, rng=rng)
            if not result.kinks:
                break
            redraws += 1
        else:
            raise RuntimeError(f"every draw crossed a ReLU kink ({max_redraws} redraws); try another --seed")
        for name, error in result.errors.items():
            errors[name] = max(errors.get(name, 0.0), error)
    return {"cell": net.cell.name, "depth": depth, "nonlinearity": net.cell.nonlinearity if net.cell.nonlinearities
            else "relu/tanh (fixed)", "mode": mode, "seed": seed, "n_h": n_h, "T": T,
            "errors": errors, "max_error": max(errors.values()), "redraws": redraws}
