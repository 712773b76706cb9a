"""The intersection RNN, +RNN (paper eqs. 15-20): gated through time and through depth.

    y_in = s1(W_yh h_{t-1} + W_yx x_t + b_y),        s1 = ReLU           (15)
    h_in = s2(W_hh h_{t-1} + W_hx x_t + b_h),        s2 = tanh           (16)
    g_y  = sigma(W_gyh h_{t-1} + W_gyx x_t + b_gy + b_fg_y)               (17)
    g_h  = sigma(W_ghh h_{t-1} + W_ghx x_t + b_gh + b_fg_h)               (18)
    y_t  = g_y * x_t + (1 - g_y) * y_in        output, passed up the stack (19)
    h_t  = g_h * h_{t-1} + (1 - g_h) * h_in    state, passed through time  (20)

``y_t`` mixes in ``x_t`` itself, so a layer's input and output have the same
size ``N``; the network gives the first layer a learned linear projection of
the raw input to ``N`` dimensions (as TensorFlow's ``IntersectionRNNCell``
does). That is also why the paper never uses the +RNN at depth 1. The
nonlinearities are fixed by the paper; ``b_fg`` is ``b_fg_h`` and ``b_fg_y``
the depth gate's own constant.

Blocks, in this order (``G = 4``): ``[y, h, gy, gh]``, so for ``N`` units

    W_x (N, 4N) = [W_yx | W_hx | W_gyx | W_ghx]
    W_h (N, 4N) = [W_yh | W_hh | W_gyh | W_ghh]
    b (4N,) = [b_y | b_h | b_gy | b_gh]     h0 (N,)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rnncap.autodiff.activations import relu, relu_grad, sigmoid, sigmoid_grad, tanh, tanh_grad
from rnncap.backend import array_module
from rnncap.cells.base import Cell


class PlusRNNCache(NamedTuple):
    x: object       # (B, N)
    h_prev: object  # (B, N)
    y_in: object    # (B, N)
    h_in: object    # (B, N)
    g_y: object     # (B, N)
    g_h: object     # (B, N)


@dataclass(frozen=True)
class PlusRNN(Cell):
    name = "plusrnn"
    title = "+RNN"
    equations = "(15)-(20)"
    gate_names = ("y", "h", "gy", "gh")
    nonlinearities = ()               # fixed: ReLU on the depth path, tanh on the time path
    default_nonlinearity = "tanh"
    carries_input = True              # (19) adds x_t to y_t, so the first layer needs a projection
    min_depth = 2                     # as in the paper

    b_fg_y: float = 1.0

    def step(self, p, x_t, xw_t, state):
        (h_prev,) = state
        n = h_prev.shape[-1]
        z = xw_t + h_prev @ p["W_h"]                                # (B, 4N)
        y_in = relu(z[..., :n])                                     # (15)  (B, N)
        h_in = tanh(z[..., n:2 * n])                                # (16)  (B, N)
        g_y = sigmoid(z[..., 2 * n:3 * n] + self.b_fg_y)            # (17)  (B, N)
        g_h = sigmoid(z[..., 3 * n:] + self.b_fg)                   # (18)  (B, N)
        y = g_y * x_t + (1.0 - g_y) * y_in                          # (19)  (B, N)
        h = g_h * h_prev + (1.0 - g_h) * h_in                       # (20)  (B, N)
        return y, (h,), PlusRNNCache(x_t, h_prev, y_in, h_in, g_y, g_h)

    def step_backward(self, p, dy, dstate, cache):
        (dh,) = dstate                                              # h_t feeds only step t+1
        x, h_prev, y_in, h_in, g_y, g_h = cache
        xp = array_module(dy)
        dg_h = dh * (h_prev - h_in)                                 # (20) d/dg_h             (B, N)
        dh_in = dh * (1.0 - g_h)                                    # (20) d/dh_in            (B, N)
        dh_prev = dh * g_h                                          # (20) d/dh_{t-1}, direct (B, N)
        dg_y = dy * (x - y_in)                                      # (19) d/dg_y             (B, N)
        dy_in = dy * (1.0 - g_y)                                    # (19) d/dy_in            (B, N)
        dx = dy * g_y                                               # (19) d/dx_t, the carry  (B, N)
        dz_gh = dg_h * sigmoid_grad(g_h)                            # (18) sigma'             (B, N)
        dz_gy = dg_y * sigmoid_grad(g_y)                            # (17) sigma'             (B, N)
        dz_h = dh_in * tanh_grad(h_in)                              # (16) tanh'              (B, N)
        dz_y = dy_in * relu_grad(y_in)                              # (15) relu'              (B, N)
        dz = xp.concatenate([dz_y, dz_h, dz_gy, dz_gh], axis=-1)    # block order [y, h, gy, gh] (B, 4N)
        dh_prev += dz @ p["W_h"].swapaxes(-1, -2)                   # (15)-(18) W_.h h_{t-1}  (B, N)
        return dx, dz, (dh_prev,)
