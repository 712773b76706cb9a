"""The long short-term memory, LSTM (paper eqs. 9-14), without peepholes.

    i_t    = sigma(W_ih h_{t-1} + W_ix x_t + b_i)                         (9)
    f_t    = sigma(W_fh h_{t-1} + W_fx x_t + b_f + b_fg)                  (10)
    cin_t  = s(W_ch h_{t-1} + W_cx x_t + b_c)                             (11)
    c_t    = f_t * c_{t-1} + i_t * cin_t                                  (12)
    o_t    = sigma(W_oh h_{t-1} + W_ox x_t + b_o)                         (13)
    h_t    = o_t * tanh(c_t)                                              (14)

``s`` (tanh or ReLU) applies to the candidate ``cin`` only; the output always
squashes the cell state with tanh.

Blocks, in this order (``G = 4``): ``[i, f, c, o]``, so for ``N`` units

    W_x (n_in, 4N) = [W_ix | W_fx | W_cx | W_ox]
    W_h (N, 4N)    = [W_ih | W_fh | W_ch | W_oh]
    b (4N,)        = [b_i | b_f | b_c | b_o]
    h0 (N,), c0 (N,)   both learned
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from rnncap.autodiff.activations import sigmoid, sigmoid_grad, tanh, tanh_grad
from rnncap.backend import array_module
from rnncap.cells.base import Cell


class LSTMCache(NamedTuple):
    h_prev: object  # (B, N)
    c_prev: object  # (B, N)
    i: object       # (B, N)
    f: object       # (B, N)
    cin: object     # (B, N)
    o: object       # (B, N)
    tanh_c: object  # (B, N)


@dataclass(frozen=True)
class LSTM(Cell):
    name = "lstm"
    title = "LSTM"
    equations = "(9)-(14)"
    gate_names = ("i", "f", "c", "o")
    state_names = ("h", "c")

    def step(self, p, x_t, xw_t, state):
        h_prev, c_prev = state
        n = h_prev.shape[-1]
        z = xw_t + h_prev @ p["W_h"]                                # (B, 4N)
        i = sigmoid(z[..., :n])                                     # (9)   (B, N)
        f = sigmoid(z[..., n:2 * n] + self.b_fg)                    # (10)  (B, N)
        cin = self.s.fn(z[..., 2 * n:3 * n])                        # (11)  (B, N)
        c = f * c_prev + i * cin                                    # (12)  (B, N)
        o = sigmoid(z[..., 3 * n:])                                 # (13)  (B, N)
        tanh_c = tanh(c)                                            # (14)  (B, N)
        h = o * tanh_c                                              # (14)  (B, N)
        return h, (h, c), LSTMCache(h_prev, c_prev, i, f, cin, o, tanh_c)

    def step_backward(self, p, dy, dstate, cache):
        dh_next, dc_next = dstate
        h_prev, c_prev, i, f, cin, o, tanh_c = cache
        xp = array_module(dy)
        dh = dy + dh_next                                           # h_t feeds the layer above and step t+1
        do = dh * tanh_c                                            # (14) d/do               (B, N)
        dc = dc_next + dh * o * tanh_grad(tanh_c)                   # (14) tanh' = 1 - tanh^2 (B, N)
        dz_o = do * sigmoid_grad(o)                                 # (13) sigma'             (B, N)
        df = dc * c_prev                                            # (12) d/df               (B, N)
        dc_prev = dc * f                                            # (12) d/dc_{t-1}         (B, N)
        di = dc * cin                                               # (12) d/di               (B, N)
        dcin = dc * i                                               # (12) d/dcin             (B, N)
        dz_c = dcin * self.s.grad(cin)                              # (11) through s          (B, N)
        dz_f = df * sigmoid_grad(f)                                 # (10) sigma'             (B, N)
        dz_i = di * sigmoid_grad(i)                                 # (9)  sigma'             (B, N)
        dz = xp.concatenate([dz_i, dz_f, dz_c, dz_o], axis=-1)      # block order [i, f, c, o] (B, 4N)
        dh_prev = dz @ p["W_h"].swapaxes(-1, -2)                    # (9)-(13) W_.h h_{t-1}    (B, N)
        return None, dz, (dh_prev, dc_prev)
