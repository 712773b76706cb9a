"""The update-gate RNN, UGRNN (paper eqs. 2-4): a vanilla RNN plus one coupled gate.

    c_t = s(W_ch h_{t-1} + W_cx x_t + b_c)                                (2)
    g_t = sigma(W_gh h_{t-1} + W_gx x_t + b_g + b_fg)                     (3)
    h_t = g_t * h_{t-1} + (1 - g_t) * c_t                                 (4)

Blocks, in this order (``G = 2``): ``[c, g]``, so for ``N`` units

    W_x (n_in, 2N) = [W_cx | W_gx]   W_h (N, 2N) = [W_ch | W_gh]
    b (2N,) = [b_c | b_g]            h0 (N,)

``b_fg`` is a constant (not learned) added to the gate: a large ``b_fg`` opens
the gate toward keeping ``h_{t-1}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rnncap.autodiff.activations import sigmoid, sigmoid_grad
from rnncap.backend import array_module
from rnncap.cells.base import Cell


class UGRNNCache(NamedTuple):
    h_prev: object  # (B, N)
    c: object       # (B, N)
    g: object       # (B, N)


@dataclass(frozen=True)
class UGRNN(Cell):
    name = "ugrnn"
    title = "UGRNN"
    equations = "(2)-(4)"
    gate_names = ("c", "g")

    def step(self, p, x_t, xw_t, state):
        (h_prev,) = state
        n = h_prev.shape[-1]
        z = xw_t + h_prev @ p["W_h"]                                # (B, 2N)
        c = self.s.fn(z[..., :n])                                   # (2)  (B, N)
        g = sigmoid(z[..., n:] + self.b_fg)                         # (3)  (B, N)
        h = g * h_prev + (1.0 - g) * c                              # (4)  (B, N)
        return h, (h,), UGRNNCache(h_prev, c, g)

    def step_backward(self, p, dy, dstate, cache):
        (dh_next,) = dstate
        h_prev, c, g = cache
        xp = array_module(dy)
        dh = dy + dh_next                                           # h_t feeds the layer above and step t+1
        dg = dh * (h_prev - c)                                      # (4) d/dg               (B, N)
        dc = dh * (1.0 - g)                                         # (4) d/dc               (B, N)
        dh_prev = dh * g                                            # (4) d/dh_{t-1}, direct (B, N)
        dz_g = dg * sigmoid_grad(g)                                 # (3) sigma' = g(1-g)    (B, N)
        dz_c = dc * self.s.grad(c)                                  # (2) through s          (B, N)
        dz = xp.concatenate([dz_c, dz_g], axis=-1)                  # block order [c, g]     (B, 2N)
        dh_prev += dz @ p["W_h"].swapaxes(-1, -2)                   # (2)(3) W_.h h_{t-1}     (B, N)
        return None, dz, (dh_prev,)
