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
from rnncap.backend import CHECK_DTYPE, to_numpy
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
                            max_redraws: int = 20, population: int = 1) -> dict:
    """Gradient check of a whole network under each loss kind (what ``rnncap gradcheck`` runs).

    One case per loss: softmax, two softmax heads, and squared error with a
    passed-in initial state. If a difference quotient crosses a ReLU kink the
    data are drawn again (at most ``max_redraws`` times). Returns the largest
    relative error of every array over the three cases.

    With ``population=K``, each case is K networks (own parameters, ``b_fg``
    and data): each member is checked against central differences as above,
    and the gradients of the K stacked as one population
    (:mod:`rnncap.population`) must equal each member's own; the larger of the
    two errors is reported.
    """
    from rnncap.population import stack

    errors: dict[str, float] = {}
    redraws = 0
    for loss_name, pass_state0 in CHECK_LOSSES:
        members, case = [], len(errors)                     # arrays checked so far: each case its own draws
        for k in range(population):
            for attempt in range(max_redraws + 1):
                rng = numpy.random.default_rng([seed, attempt, case] + ([k] if population > 1 else []))
                drawn = random_check_case(cell, depth, nonlinearity=nonlinearity, n_h=n_h, T=T,
                                          loss_name=loss_name, pass_state0=pass_state0, rng=rng, xp=xp)
                result = gradcheck(*drawn, mode=mode, rng=rng)
                if not result.kinks and not result.unresolved:     # a kink, or a gradient below round-off
                    break
                redraws += 1
            else:
                raise RuntimeError(f"every draw crossed a ReLU kink or had a gradient too small to check by "
                                   f"differences ({max_redraws} redraws); try another --seed")
            for name, error in result.errors.items():
                errors[name] = max(errors.get(name, 0.0), error)
            members.append(drawn)
        if population > 1:
            for name, error in _population_errors(members, stack, xp).items():
                errors[name] = max(errors.get(name, 0.0), error)
    net = members[0][0]
    return {"cell": net.cell.name, "depth": depth, "nonlinearity": net.cell.nonlinearity if net.cell.nonlinearities
            else "relu/tanh (fixed)", "mode": mode, "seed": seed, "n_h": n_h, "T": T, "population": population,
            "errors": errors, "max_error": max(errors.values()), "redraws": redraws}


def _population_errors(members: list, stack, xp) -> dict[str, float]:
    """Largest relative difference, per array, between a stacked population's gradients and each member's."""
    nets, xs, targets, masks, losses, states = zip(*members)
    state0 = None
    if states[0] is not None:                              # per layer, per state: (K, B, N)
        state0 = [tuple(xp.stack([s[layer][i] for s in states]) for i in range(len(states[0][layer])))
                  for layer in range(len(states[0]))]
    together = stack(list(nets)).loss_and_grads(xp.stack(xs), xp.stack(targets), xp.stack(masks), losses[0], state0)
    errors = {}
    for k, (net, x, target, mask, loss, s0) in enumerate(members):
        alone = net.loss_and_grads(x, target, mask, loss, s0)
        for name, g in alone.grads.items():
            g, p = to_numpy(g), to_numpy(together.grads[name][k])
            scale = max(float(numpy.abs(g).max()), float(numpy.abs(p).max()), 1e-300)
            errors[name] = max(errors.get(name, 0.0), float(numpy.abs(g - p).max()) / scale)
    return errors
