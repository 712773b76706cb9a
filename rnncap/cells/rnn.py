"""The vanilla RNN (paper eq. 1) and the IRNN (Le et al. 2015).

    h_t = s(W_h h_{t-1} + W_x x_t + b_h)                                  (1)

with ``s`` = tanh or ReLU. Row-vector form, one block (``G = 1``):

    W_x (n_in, N)   W_h (N, N)   b (N,)   h0 (N,)

The IRNN is the same cell with ``s = ReLU`` fixed and a different start:
``W_h = I`` and ``b = 0`` (so that, at initialisation, the state is copied
forward and only the input moves it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy

from rnncap.cells.base import Cell, CellHParams


class RNNCache(NamedTuple):
    h_prev: object  # (B, N)
    h: object       # (B, N)


@dataclass(frozen=True)
class RNN(Cell):
    name = "rnn"
    title = "RNN"
    equations = "(1)"
    gate_names = ("h",)

    def step(self, p, x_t, xw_t, state):
        (h_prev,) = state
        h = self.s.fn(xw_t + h_prev @ p["W_h"])                     # (1)  (B, N)
        return h, (h,), RNNCache(h_prev, h)

    def step_backward(self, p, dy, dstate, cache):
        (dh_next,) = dstate
        h_prev, h = cache
        dh = dy + dh_next                                           # h_t feeds the layer above and step t+1
        dz = dh * self.s.grad(h)                                    # (1) through s      (B, N)
        dh_prev = dz @ p["W_h"].swapaxes(-1, -2)                    # (1) W_h h_{t-1}    (B, N)
        return None, dz, (dh_prev,)


@dataclass(frozen=True)
class IRNN(RNN):
    name = "irnn"
    title = "IRNN"
    nonlinearities = ("relu",)
    default_nonlinearity = "relu"

    nonlinearity: str = "relu"

    def init_params(self, rng: numpy.random.Generator, n_in: int, n_h: int,
                    hp: CellHParams) -> dict[str, numpy.ndarray]:
        params = super().init_params(rng, n_in, n_h, hp)
        params["W_h"] = numpy.eye(n_h)                              # identity recurrence
        params["b"] = numpy.zeros(n_h)                              # zero bias
        return params
