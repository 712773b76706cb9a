"""The gated recurrent unit, GRU (paper eqs. 5-8), in the form of Cho et al. 2014.

    r_t = sigma(W_rh h_{t-1} + W_rx x_t + b_r)                            (5)
    u_t = sigma(W_uh h_{t-1} + W_ux x_t + b_u + b_fg)                     (6)
    c_t = s(W_ch (r_t * h_{t-1}) + W_cx x_t + b_c)                        (7)
    h_t = u_t * h_{t-1} + (1 - u_t) * c_t                                 (8)

The reset gate multiplies ``h_{t-1}`` *before* the matrix in (7). (PyTorch's
and cuDNN's GRU apply it after the matrix product; that is a different cell.)
So a step needs two recurrent GEMMs: one for the gates, one for the candidate,
and the gradient of ``W_h`` multiplies two different inputs
(:meth:`GRU.recurrent_inputs`).

Blocks, in this order (``G = 3``): ``[r, u, c]``, so for ``N`` units

    W_x (n_in, 3N) = [W_rx | W_ux | W_cx]   W_h (N, 3N) = [W_rh | W_uh | W_ch]
    b (3N,) = [b_r | b_u | b_c]             h0 (N,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rnncap.autodiff.activations import sigmoid, sigmoid_grad
from rnncap.backend import array_module
from rnncap.cells.base import Cell


class GRUCache(NamedTuple):
    h_prev: object  # (B, N)
    r: object       # (B, N)
    u: object       # (B, N)
    rh: object      # (B, N) r_t * h_{t-1}
    c: object       # (B, N)


@dataclass(frozen=True)
class GRU(Cell):
    name = "gru"
    title = "GRU"
    equations = "(5)-(8)"
    gate_names = ("r", "u", "c")

    def step(self, p, x_t, xw_t, state):
        (h_prev,) = state
        n = h_prev.shape[-1]
        W_h = p["W_h"]
        z_ru = xw_t[..., :2 * n] + h_prev @ W_h[..., :2 * n]        # (B, 2N)
        r = sigmoid(z_ru[..., :n])                                  # (5)  (B, N)
        u = sigmoid(z_ru[..., n:] + self.b_fg)                      # (6)  (B, N)
        rh = r * h_prev                                             # (7) reset before the matrix  (B, N)
        c = self.s.fn(xw_t[..., 2 * n:] + rh @ W_h[..., 2 * n:])    # (7)  (B, N)
        h = u * h_prev + (1.0 - u) * c                              # (8)  (B, N)
        return h, (h,), GRUCache(h_prev, r, u, rh, c)

    def step_backward(self, p, dy, dstate, cache):
        (dh_next,) = dstate
        h_prev, r, u, rh, c = cache
        n = h_prev.shape[-1]
        W_h = p["W_h"]
        xp = array_module(dy)
        dh = dy + dh_next                                           # h_t feeds the layer above and step t+1
        du = dh * (h_prev - c)                                      # (8) d/du                (B, N)
        dc = dh * (1.0 - u)                                         # (8) d/dc                (B, N)
        dh_prev = dh * u                                            # (8) d/dh_{t-1}, direct  (B, N)
        dz_c = dc * self.s.grad(c)                                  # (7) through s           (B, N)
        drh = dz_c @ W_h[..., 2 * n:].swapaxes(-1, -2)              # (7) W_ch (r*h)          (B, N)
        dr = drh * h_prev                                           # (7) r*h, d/dr           (B, N)
        dh_prev += drh * r                                          # (7) r*h, d/dh_{t-1}     (B, N)
        dz_u = du * sigmoid_grad(u)                                 # (6) sigma' = u(1-u)     (B, N)
        dz_r = dr * sigmoid_grad(r)                                 # (5) sigma' = r(1-r)     (B, N)
        dz_ru = xp.concatenate([dz_r, dz_u], axis=-1)               # (B, 2N)
        dh_prev += dz_ru @ W_h[..., :2 * n].swapaxes(-1, -2)        # (5)(6) W_.h h_{t-1}     (B, N)
        dxw = xp.concatenate([dz_ru, dz_c], axis=-1)                # block order [r, u, c]   (B, 3N)
        return None, dxw, (dh_prev,)

    def recurrent_inputs(self, cache):
        return {(0, 2): cache.h_prev, (2, 3): cache.rh}             # (5)(6) W_.h h_{t-1}; (7) W_ch (r*h)
