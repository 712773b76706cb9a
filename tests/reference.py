"""An independent forward pass, written straight from the paper's equations (1)-(20).

The library's cells keep every gate's weights in one packed matrix and slice it
after one GEMM; here each packed matrix is first split into the paper's
separately named matrices (``W_rx``, ``W_uh``, ...), following the block order
that each cell's docstring documents, and each equation is then written as in
the paper, in the row-vector convention ``x_t @ W_x``, ``h @ W_h``. Plain NumPy
float64, explicit loops over layers and time steps, nothing from
``rnncap.cells`` or ``rnncap.autodiff``.

Only ``net.params``, ``net.cell.name``, ``net.cell.nonlinearity``,
``net.cell.b_fg``, ``net.cell.b_fg_y`` (+RNN) and ``net.depth`` are read.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


def _float64(array) -> np.ndarray:
    """A float64 NumPy copy of a NumPy or CuPy array."""
    if not isinstance(array, np.ndarray) and hasattr(array, "get"):
        array = array.get()
    return np.array(array, dtype=np.float64)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def relu(z):
    return np.maximum(z, 0.0)


def _s(z, nonlinearity: str, relu_inputs: list):
    """The nonlinearity ``s``; every ReLU input is recorded for the kink check."""
    if nonlinearity == "relu":
        relu_inputs.append(z.copy())
        return relu(z)
    if nonlinearity == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def rnn_step(p, x_t, state, cell, relu_inputs):
    """Eq. (1); the IRNN is the same cell with s = ReLU."""
    (h_prev,) = state
    h = _s(h_prev @ p["W_h"] + x_t @ p["W_x"] + p["b"], cell.nonlinearity, relu_inputs)   # (1)
    return h, (h,)


def ugrnn_step(p, x_t, state, cell, relu_inputs):
    """Eqs. (2)-(4); blocks [c, g]."""
    (h_prev,) = state
    W_cx, W_gx = np.split(p["W_x"], 2, axis=1)
    W_ch, W_gh = np.split(p["W_h"], 2, axis=1)
    b_c, b_g = np.split(p["b"], 2)
    c = _s(h_prev @ W_ch + x_t @ W_cx + b_c, cell.nonlinearity, relu_inputs)             # (2)
    g = sigmoid(h_prev @ W_gh + x_t @ W_gx + b_g + cell.b_fg)                            # (3)
    h = g * h_prev + (1.0 - g) * c                                                       # (4)
    return h, (h,)


def gru_step(p, x_t, state, cell, relu_inputs):
    """Eqs. (5)-(8); blocks [r, u, c]; the reset multiplies h_{t-1} before W_ch."""
    (h_prev,) = state
    W_rx, W_ux, W_cx = np.split(p["W_x"], 3, axis=1)
    W_rh, W_uh, W_ch = np.split(p["W_h"], 3, axis=1)
    b_r, b_u, b_c = np.split(p["b"], 3)
    r = sigmoid(h_prev @ W_rh + x_t @ W_rx + b_r)                                        # (5)
    u = sigmoid(h_prev @ W_uh + x_t @ W_ux + b_u + cell.b_fg)                            # (6)
    c = _s((r * h_prev) @ W_ch + x_t @ W_cx + b_c, cell.nonlinearity, relu_inputs)       # (7)
    h = u * h_prev + (1.0 - u) * c                                                       # (8)
    return h, (h,)


def lstm_step(p, x_t, state, cell, relu_inputs):
    """Eqs. (9)-(14); blocks [i, f, c, o]; s applies to the candidate only."""
    h_prev, c_prev = state
    W_ix, W_fx, W_cx, W_ox = np.split(p["W_x"], 4, axis=1)
    W_ih, W_fh, W_ch, W_oh = np.split(p["W_h"], 4, axis=1)
    b_i, b_f, b_c, b_o = np.split(p["b"], 4)
    i = sigmoid(h_prev @ W_ih + x_t @ W_ix + b_i)                                        # (9)
    f = sigmoid(h_prev @ W_fh + x_t @ W_fx + b_f + cell.b_fg)                            # (10)
    c_in = _s(h_prev @ W_ch + x_t @ W_cx + b_c, cell.nonlinearity, relu_inputs)          # (11)
    c = f * c_prev + i * c_in                                                            # (12)
    o = sigmoid(h_prev @ W_oh + x_t @ W_ox + b_o)                                        # (13)
    h = o * np.tanh(c)                                                                   # (14)
    return h, (h, c)


def plusrnn_step(p, x_t, state, cell, relu_inputs):
    """Eqs. (15)-(20); blocks [y, h, gy, gh]; s1 = ReLU, s2 = tanh; b_fg is b_fg_h."""
    (h_prev,) = state
    W_yx, W_hx, W_gyx, W_ghx = np.split(p["W_x"], 4, axis=1)
    W_yh, W_hh, W_gyh, W_ghh = np.split(p["W_h"], 4, axis=1)
    b_y, b_h, b_gy, b_gh = np.split(p["b"], 4)
    y_in = _s(h_prev @ W_yh + x_t @ W_yx + b_y, "relu", relu_inputs)                     # (15)
    h_in = np.tanh(h_prev @ W_hh + x_t @ W_hx + b_h)                                     # (16)
    g_y = sigmoid(h_prev @ W_gyh + x_t @ W_gyx + b_gy + cell.b_fg_y)                     # (17)
    g_h = sigmoid(h_prev @ W_ghh + x_t @ W_ghx + b_gh + cell.b_fg)                       # (18)
    y = g_y * x_t + (1.0 - g_y) * y_in                                                   # (19)
    h = g_h * h_prev + (1.0 - g_h) * h_in                                                # (20)
    return y, (h,)


STEPS = {
    "rnn": rnn_step,
    "irnn": rnn_step,
    "ugrnn": ugrnn_step,
    "gru": gru_step,
    "lstm": lstm_step,
    "plusrnn": plusrnn_step,
}


class ReferenceForward(NamedTuple):
    out: np.ndarray                  # (T, B, n_out) the readout at every step
    state: list                      # per layer, the state tuple (h,) or (h, c) after the last step, (B, N) each
    relu_preactivations: np.ndarray  # 1-D: every value that entered a ReLU anywhere (empty if none)


def reference_forward(net, x, state0=None) -> ReferenceForward:
    """The readout, final states and ReLU inputs for ``x`` (T, B, n_in).

    ``state0``, if given, holds one tuple ``(h,)`` or ``(h, c)`` of (B, N)
    arrays per layer; otherwise every layer starts from its learned ``h0``
    (and ``c0``), repeated over the batch.
    """
    cell = net.cell
    step = STEPS[cell.name]
    params = {name: _float64(value) for name, value in net.params.items()}
    x = _float64(x)                                                       # (T, B, n_in)
    T, B, _ = x.shape
    relu_inputs: list[np.ndarray] = []
    final_states = []

    layer_input = x
    if cell.name == "plusrnn":
        # the first +RNN layer sees a learned projection of the input, so dim(x) == dim(y)
        layer_input = np.empty((T, B, params["proj.W"].shape[1]))          # (T, B, N)
        for t in range(T):
            layer_input[t] = x[t] @ params["proj.W"] + params["proj.b"]

    for k in range(net.depth):
        p = {name: params[f"layer{k}.{name}"] for name in ("W_x", "W_h", "b", "h0", "c0")
             if f"layer{k}.{name}" in params}
        if state0 is None:
            learned = [p["h0"]] + ([p["c0"]] if "c0" in p else [])
            state = tuple(np.repeat(s0[None, :], B, axis=0) for s0 in learned)   # (B, N) each
        else:
            state = tuple(_float64(s0) for s0 in state0[k])
        layer_output = np.empty((T, B, p["h0"].shape[0]))                   # (T, B, N)
        for t in range(T):
            layer_output[t], state = step(p, layer_input[t], state, cell, relu_inputs)
        final_states.append(state)
        layer_input = layer_output                                          # h, or y for the +RNN

    out = np.empty((T, B, params["readout.W"].shape[1]))                    # (T, B, n_out)
    for t in range(T):
        out[t] = layer_input[t] @ params["readout.W"] + params["readout.b"]
    relu_preactivations = (np.concatenate([z.ravel() for z in relu_inputs]) if relu_inputs
                           else np.empty(0))
    return ReferenceForward(out, final_states, relu_preactivations)
