"""The forward pass of every cell and of the stack, against the paper's equations.

Three kinds of check:

- tiny cases worked by hand (scalar ``math``, one equation per line), one per cell;
- Hypothesis: random shapes, depths, nonlinearities, ``b_fg`` and parameters,
  the library against ``reference_forward`` (an independent loop-over-time
  version in ``tests/reference.py``);
- invariants: the IRNN's start, saturated gates, one step against the
  reference, and truncated-BPTT windows that chain into the whole sequence.

A saturated gate is saturated only relative to what the draw can feed it:
``b_fg`` is chosen per draw from a bound on every pre-activation (the triangle
inequality on the network's actual arrays), and the assertion's tolerance is
derived from the same bound and float64 rounding, so both hold for every draw.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import reference_forward
from rnncap.cells import CellHParams
from rnncap.network import Network

CELLS = ("rnn", "irnn", "ugrnn", "gru", "lstm", "plusrnn")
CELL_NONLINEARITIES = (
    ("rnn", "tanh"), ("rnn", "relu"), ("irnn", None),
    ("ugrnn", "tanh"), ("ugrnn", "relu"), ("gru", "tanh"), ("gru", "relu"),
    ("lstm", "tanh"), ("lstm", "relu"), ("plusrnn", None),
)
MIN_DEPTH = {"plusrnn": 2}
RTOL_HAND = 1e-12
RTOL_REFERENCE, ATOL_REFERENCE = 1e-10, 1e-12   # the library and reference.py sum in different orders
EPS = float(np.finfo(np.float64).eps)
MARGIN = 40.0                  # a gate driven 40 past its bound is within e^-40 = 4e-18 (< EPS / 50) of 0 or 1


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def relu(z: float) -> float:
    return max(z, 0.0)


def network_by_hand(cell, params, *, n_h=1, depth=1, n_in=1, n_out=1, nonlinearity=None,
                    b_fg=1.0, b_fg_y=1.0) -> Network:
    """A float64 network whose every parameter is given in ``params``."""
    hp = CellHParams(nonlinearity=nonlinearity, b_fg=b_fg, b_fg_y=b_fg_y)
    net = Network(cell, depth, n_in, n_out, n_h, hp, rng=0, dtype=np.float64)
    assert set(params) == set(net.params), "set every parameter by hand"
    for name, value in params.items():
        value = np.array(value, dtype=np.float64)
        assert value.shape == net.params[name].shape, name
        net.params[name] = value
    return net


def perturbed_network(cell, nonlinearity, depth, n_in, n_out, n_h, b_fg, b_fg_y, rng) -> Network:
    """The network's own initialisation plus N(0, 0.5^2) on every array, so no bias or h0 is zero."""
    hp = CellHParams(nonlinearity=nonlinearity, b_fg=b_fg, b_fg_y=b_fg_y)
    net = Network(cell, depth, n_in, n_out, n_h, hp, rng, dtype=np.float64)
    for name, value in net.params.items():
        net.params[name] = value + rng.normal(0.0, 0.5, value.shape)
    return net


def random_state(net: Network, batch: int, rng) -> list:
    return [tuple(rng.normal(0.0, 0.5, (batch, net.n_h)) for _ in net.cell.state_names)
            for _ in range(net.depth)]


def preactivation_bound(layer: dict, input_bound, h_bound):
    """A bound on every block's ``x W_x + h W_h + b`` (B, G*N), given ``|x| <= input_bound``, ``|h| <= h_bound``.

    The triangle inequality entry by entry, ``|sum_i a_i W_ij| <= sum_i |a_i| |W_ij|``, on the layer's
    actual arrays. (The constants ``b_fg``, ``b_fg_y`` are not in it.)
    """
    return input_bound @ np.abs(layer["W_x"]) + h_bound @ np.abs(layer["W_h"]) + np.abs(layer["b"])


class StackBound(NamedTuple):
    preactivation: float     # no pre-activation of any block, layer or step exceeds this in magnitude
    signal: np.ndarray       # (B, N): bounds the top layer's output (+RNN: every layer's input and y too)


def stack_bound(net: Network, x_bound, h_bounds) -> StackBound:
    """Bounds for a whole stack, from ``|x_t| <= x_bound`` (B, n_in) and ``|h_{t-1}| <= h_bounds[k]``.

    ``h_bounds[k]`` (B or 1, N) must hold at every step of layer k. Each layer's output is bounded by
    the mixture it is: h = g h_prev + (1 - g) c with |c| <= 1 (a tanh), or the LSTM's o tanh(c); the
    +RNN's y = g_y x + (1 - g_y) y_in (19) with 0 <= y_in = ReLU(z) <= the bound on z (15), which
    grows with the input: a fixed b_fg cannot saturate the gates of the layer above it. (The float64
    pre-activation exceeds its exact value by a few EPS of the bound at most, far inside MARGIN.)
    """
    p = net.params
    signal = x_bound
    if net.cell.carries_input:
        signal = x_bound @ np.abs(p["proj.W"]) + np.abs(p["proj.b"])                # (B, N)
    largest = 0.0
    for k in range(net.depth):
        z = preactivation_bound(net.layer_params(k), signal, h_bounds[k])            # (B, G*N)
        largest = max(largest, float(z.max()))
        if net.cell.carries_input:
            signal = np.maximum(signal, z.max(axis=1, keepdims=True))                # (19)  (B, N)
        else:
            signal = np.maximum(h_bounds[k], 1.0)                                    # (B or 1, N)
    return StackBound(largest, signal)


def kept_tolerance(kept, steps: int = 1):
    """How far ``steps`` saturated steps may move a kept state ``kept`` (h, or the LSTM's c), entry by entry.

    A step computes ``g * kept + (1 - g) * candidate`` (or the LSTM's ``f * c + i * c_in``) with the
    leak ``1 - g`` (or ``i``) at most e^-MARGIN and a tanh candidate, |candidate| <= 1. So it moves
    ``kept`` by at most ``e^-MARGIN (|kept| + 1)``, plus rounding: the float64 gate is within EPS of
    the exact one, and the product and the sum round by EPS / 2 of their size each: below
    ``2 EPS (|kept| + 1)``, and we allow twice that. Over the steps |kept| grows by far less than 1.
    """
    return steps * (math.exp(-MARGIN) + 4 * EPS) * (np.abs(kept) + 2.0)


def assert_within(actual, desired, tolerance):
    """``|actual - desired| <= tolerance`` entry by entry, for a tolerance derived from a bound."""
    error = np.abs(np.asarray(actual) - desired)
    tolerance = np.broadcast_to(tolerance, error.shape)
    worst = np.unravel_index(np.argmax(error - tolerance), error.shape)
    assert (error <= tolerance).all(), f"|error| {error[worst]:.3g} > bound {tolerance[worst]:.3g} at {worst}"


# ---------------------------------------------------------------------------
# Tiny cases worked by hand
# ---------------------------------------------------------------------------

def test_rnn_one_unit_by_hand():
    W_x, W_h, b, h0 = 0.5, -0.8, 0.1, 0.3
    W_out, b_out = 1.5, -0.2
    net = network_by_hand("rnn", {
        "layer0.W_x": [[W_x]], "layer0.W_h": [[W_h]], "layer0.b": [b], "layer0.h0": [h0],
        "readout.W": [[W_out]], "readout.b": [b_out],
    }, nonlinearity="tanh")
    x = [1.0, -2.0]
    h1 = math.tanh(W_h * h0 + W_x * x[0] + b)                                  # (1)
    h2 = math.tanh(W_h * h1 + W_x * x[1] + b)                                  # (1)

    fwd = net.forward(np.array(x).reshape(2, 1, 1))
    np.testing.assert_allclose(fwd.state[0][0], [[h2]], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[:, 0, 0], [W_out * h1 + b_out, W_out * h2 + b_out], rtol=RTOL_HAND)


def test_rnn_two_units_by_hand_row_vector_convention():
    # Non-symmetric matrices: (h @ W)_j = sum_i h_i W_ij, never W @ h.
    W_x = [[0.5, -0.3], [0.2, 0.4]]
    W_h = [[0.1, 0.6], [-0.7, 0.2]]
    b = [0.05, -0.1]
    h0 = [0.3, -0.5]
    W_out = [[1.0, 0.5], [-2.0, 0.25]]
    b_out = [0.1, 0.2]
    net = network_by_hand("rnn", {
        "layer0.W_x": W_x, "layer0.W_h": W_h, "layer0.b": b, "layer0.h0": h0,
        "readout.W": W_out, "readout.b": b_out,
    }, n_h=2, n_in=2, n_out=2, nonlinearity="tanh")
    x = [1.0, 2.0]
    h1 = [math.tanh(h0[0] * W_h[0][j] + h0[1] * W_h[1][j]
                    + x[0] * W_x[0][j] + x[1] * W_x[1][j] + b[j]) for j in range(2)]   # (1)
    out = [h1[0] * W_out[0][j] + h1[1] * W_out[1][j] + b_out[j] for j in range(2)]

    fwd = net.forward(np.array(x).reshape(1, 1, 2))
    np.testing.assert_allclose(fwd.state[0][0], [h1], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[0], [out], rtol=RTOL_HAND)


def test_irnn_by_hand_relu_both_sides_of_the_kink():
    W_x, W_h, b, h0 = 1.0, 0.9, -0.5, 0.4
    W_out, b_out = 1.5, 0.25
    net = network_by_hand("irnn", {
        "layer0.W_x": [[W_x]], "layer0.W_h": [[W_h]], "layer0.b": [b], "layer0.h0": [h0],
        "readout.W": [[W_out]], "readout.b": [b_out],
    })
    x = [1.0, -3.0]
    h1 = relu(W_h * h0 + W_x * x[0] + b)                                       # (1), s = ReLU: 0.86
    h2 = relu(W_h * h1 + W_x * x[1] + b)                                       # (1), s = ReLU: 0
    assert h1 > 0 and h2 == 0

    fwd = net.forward(np.array(x).reshape(2, 1, 1))
    np.testing.assert_allclose(fwd.state[0][0], [[h2]], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[:, 0, 0], [W_out * h1 + b_out, W_out * h2 + b_out], rtol=RTOL_HAND)


def test_ugrnn_by_hand():
    W_cx, W_gx = 0.7, -0.4
    W_ch, W_gh = 0.5, 0.3
    b_c, b_g = 0.1, -0.6
    h0, b_fg = 0.2, 2.0
    W_out, b_out = -1.0, 0.5
    net = network_by_hand("ugrnn", {
        "layer0.W_x": [[W_cx, W_gx]], "layer0.W_h": [[W_ch, W_gh]], "layer0.b": [b_c, b_g],
        "layer0.h0": [h0], "readout.W": [[W_out]], "readout.b": [b_out],
    }, nonlinearity="tanh", b_fg=b_fg)
    x = [0.5, -1.0]
    h = h0
    outs = []
    for x_t in x:
        c = math.tanh(W_ch * h + W_cx * x_t + b_c)                             # (2)
        g = sigmoid(W_gh * h + W_gx * x_t + b_g + b_fg)                        # (3)
        h = g * h + (1.0 - g) * c                                              # (4)
        outs.append(W_out * h + b_out)

    fwd = net.forward(np.array(x).reshape(2, 1, 1))
    np.testing.assert_allclose(fwd.state[0][0], [[h]], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[:, 0, 0], outs, rtol=RTOL_HAND)


def test_gru_two_units_by_hand_reset_before_the_matrix():
    # With two units and a full W_ch, W_ch (r * h) differs from r * (W_ch h) (PyTorch's form).
    W_rx, W_ux, W_cx = [0.5, -0.5], [0.2, 0.1], [1.0, -1.0]
    W_rh = [[0.1, 0.2], [0.3, 0.4]]
    W_uh = [[-0.2, 0.1], [0.0, 0.3]]
    W_ch = [[0.5, -0.6], [0.7, 0.2]]
    b_r, b_u, b_c = [0.1, -0.1], [0.0, 0.2], [0.05, -0.05]
    h0, b_fg = [0.4, -0.3], -1.0
    W_out, b_out = [[1.0], [2.0]], [0.5]
    net = network_by_hand("gru", {
        "layer0.W_x": [W_rx + W_ux + W_cx],
        "layer0.W_h": [W_rh[i] + W_uh[i] + W_ch[i] for i in range(2)],
        "layer0.b": b_r + b_u + b_c,
        "layer0.h0": h0, "readout.W": W_out, "readout.b": b_out,
    }, n_h=2, nonlinearity="tanh", b_fg=b_fg)
    x = 0.8
    r = [sigmoid(h0[0] * W_rh[0][j] + h0[1] * W_rh[1][j] + x * W_rx[j] + b_r[j])
         for j in range(2)]                                                    # (5)
    u = [sigmoid(h0[0] * W_uh[0][j] + h0[1] * W_uh[1][j] + x * W_ux[j] + b_u[j] + b_fg)
         for j in range(2)]                                                    # (6)
    rh = [r[0] * h0[0], r[1] * h0[1]]
    c = [math.tanh(rh[0] * W_ch[0][j] + rh[1] * W_ch[1][j] + x * W_cx[j] + b_c[j])
         for j in range(2)]                                                    # (7)
    h = [u[j] * h0[j] + (1.0 - u[j]) * c[j] for j in range(2)]                 # (8)
    out = h[0] * W_out[0][0] + h[1] * W_out[1][0] + b_out[0]

    fwd = net.forward(np.full((1, 1, 1), x))
    np.testing.assert_allclose(fwd.state[0][0], [h], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[0], [[out]], rtol=RTOL_HAND)


def test_lstm_by_hand_relu_candidate_tanh_output():
    W_ix, W_fx, W_cx, W_ox = 0.3, -0.2, 1.2, 0.4
    W_ih, W_fh, W_ch, W_oh = 0.1, 0.5, -0.3, 0.2
    b_i, b_f, b_c, b_o = 0.0, 0.25, 0.4, -0.1
    h0, c0, b_fg = 0.1, 0.6, 1.0
    W_out, b_out = 2.0, 0.5
    net = network_by_hand("lstm", {
        "layer0.W_x": [[W_ix, W_fx, W_cx, W_ox]], "layer0.W_h": [[W_ih, W_fh, W_ch, W_oh]],
        "layer0.b": [b_i, b_f, b_c, b_o], "layer0.h0": [h0], "layer0.c0": [c0],
        "readout.W": [[W_out]], "readout.b": [b_out],
    }, nonlinearity="relu", b_fg=b_fg)
    x = [1.0, -2.0]
    h, c = h0, c0
    outs, candidates = [], []
    for x_t in x:
        i = sigmoid(W_ih * h + W_ix * x_t + b_i)                               # (9)
        f = sigmoid(W_fh * h + W_fx * x_t + b_f + b_fg)                        # (10)
        c_in = relu(W_ch * h + W_cx * x_t + b_c)                               # (11), s = ReLU
        c = f * c + i * c_in                                                   # (12)
        o = sigmoid(W_oh * h + W_ox * x_t + b_o)                               # (13)
        h = o * math.tanh(c)                                                   # (14), always tanh
        outs.append(W_out * h + b_out)
        candidates.append(c_in)
    assert candidates[0] > 0 and candidates[1] == 0 and c > 1   # ReLU both sides; tanh(c) != c

    fwd = net.forward(np.array(x).reshape(2, 1, 1))
    h_T, c_T = fwd.state[0]
    np.testing.assert_allclose(h_T, [[h]], rtol=RTOL_HAND)
    np.testing.assert_allclose(c_T, [[c]], rtol=RTOL_HAND)
    np.testing.assert_allclose(fwd.out[:, 0, 0], outs, rtol=RTOL_HAND)


PLUSRNN_LAYERS = (
    # W_x = [W_yx, W_hx, W_gyx, W_ghx], W_h = [W_yh, W_hh, W_gyh, W_ghh], b = [b_y, b_h, b_gy, b_gh], h0
    ([0.6, -0.4, 0.3, 0.2], [0.5, 0.7, -0.2, 0.1], [0.1, 0.0, 0.2, -0.3], 0.3),
    ([-0.5, 0.8, 0.1, -0.2], [0.4, -0.6, 0.3, 0.5], [0.2, 0.1, -0.1, 0.0], -0.2),
)
PLUSRNN_PROJ = (2.0, -0.5)     # proj.W, proj.b


def plusrnn_by_hand(x, b_fg_h, b_fg_y):
    """Depth-2, one-unit +RNN: (top y at every step, final h of each layer)."""
    proj_W, proj_b = PLUSRNN_PROJ
    layer_input = [proj_W * x_t + proj_b for x_t in x]       # the first layer's projected input
    final_h = []
    for (W_yx, W_hx, W_gyx, W_ghx), (W_yh, W_hh, W_gyh, W_ghh), (b_y, b_h, b_gy, b_gh), h0 in PLUSRNN_LAYERS:
        h = h0
        ys = []
        for x_t in layer_input:
            y_in = relu(W_yh * h + W_yx * x_t + b_y)                           # (15)
            h_in = math.tanh(W_hh * h + W_hx * x_t + b_h)                      # (16)
            g_y = sigmoid(W_gyh * h + W_gyx * x_t + b_gy + b_fg_y)             # (17)
            g_h = sigmoid(W_ghh * h + W_ghx * x_t + b_gh + b_fg_h)             # (18)
            ys.append(g_y * x_t + (1.0 - g_y) * y_in)                          # (19)
            h = g_h * h + (1.0 - g_h) * h_in                                   # (20)
        final_h.append(h)
        layer_input = ys                                      # y, not h, goes up the stack
    return layer_input, final_h


def test_plusrnn_depth_two_by_hand():
    b_fg_h, b_fg_y = 2.0, -1.0
    params = {"proj.W": [[PLUSRNN_PROJ[0]]], "proj.b": [PLUSRNN_PROJ[1]]}
    for k, (W_x, W_h, b, h0) in enumerate(PLUSRNN_LAYERS):
        params.update({f"layer{k}.W_x": [W_x], f"layer{k}.W_h": [W_h], f"layer{k}.b": b,
                       f"layer{k}.h0": [h0]})
    params.update({"readout.W": [[1.0]], "readout.b": [0.0]})   # out = top y
    net = network_by_hand("plusrnn", params, depth=2, b_fg=b_fg_h, b_fg_y=b_fg_y)
    x = [1.0, -0.5]
    y_top, final_h = plusrnn_by_hand(x, b_fg_h, b_fg_y)

    fwd = net.forward(np.array(x).reshape(2, 1, 1))
    np.testing.assert_allclose(fwd.out[:, 0, 0], y_top, rtol=RTOL_HAND)
    for k in range(2):
        np.testing.assert_allclose(fwd.state[k][0], [[final_h[k]]], rtol=RTOL_HAND)
    # The case tells g_y from g_h: swapping their constants changes y and h well beyond rtol.
    y_swapped, h_swapped = plusrnn_by_hand(x, b_fg_y, b_fg_h)
    assert not np.allclose(fwd.out[:, 0, 0], y_swapped, rtol=1e-6, atol=0)
    assert not np.allclose([fwd.state[k][0][0, 0] for k in range(2)], h_swapped, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------
# Against the reference, for random networks
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("cell, nonlinearity", CELL_NONLINEARITIES)
@settings(deadline=None, max_examples=examples(60))
@given(data=st.data())
def test_forward_matches_reference(cell, nonlinearity, data):
    depth = data.draw(st.integers(MIN_DEPTH.get(cell, 1), 3), label="depth")
    T = data.draw(st.integers(1, 5), label="T")
    B = data.draw(st.integers(1, 3), label="B")
    n_in = data.draw(st.integers(1, 4), label="n_in")
    n_h = data.draw(st.integers(1, 4), label="n_h")
    n_out = data.draw(st.integers(1, 3), label="n_out")
    b_fg = data.draw(st.floats(-2.0, 3.0), label="b_fg")
    b_fg_y = data.draw(st.floats(-2.0, 3.0), label="b_fg_y")
    pass_state0 = data.draw(st.booleans(), label="pass_state0")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))

    net = perturbed_network(cell, nonlinearity, depth, n_in, n_out, n_h, b_fg, b_fg_y, rng)
    x = rng.normal(0.0, 1.0, (T, B, n_in))
    state0 = random_state(net, B, rng) if pass_state0 else None

    fwd = net.forward(x, state0)
    expected = reference_forward(net, x, state0)
    assert fwd.out.shape == (T, B, n_out)
    np.testing.assert_allclose(fwd.out, expected.out, rtol=RTOL_REFERENCE, atol=ATOL_REFERENCE)
    for k in range(depth):
        for got, want in zip(fwd.state[k], expected.state[k], strict=True):
            np.testing.assert_allclose(got, want, rtol=RTOL_REFERENCE, atol=ATOL_REFERENCE)
    uses_relu = cell in ("irnn", "plusrnn") or nonlinearity == "relu"
    assert expected.relu_preactivations.shape == ((depth * T * B * n_h,) if uses_relu else (0,))


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------

def test_irnn_starts_from_identity_and_zero_bias():
    # bias_scale > 0 would give every other cell random biases
    net = Network("irnn", 2, 3, 2, 4, CellHParams(bias_scale=0.5), rng=1, dtype=np.float64)
    for k in range(2):
        np.testing.assert_array_equal(net.params[f"layer{k}.W_h"], np.eye(4))
        np.testing.assert_array_equal(net.params[f"layer{k}.b"], np.zeros(4))


@pytest.mark.parametrize("cell", ["ugrnn", "gru", "plusrnn"])
@settings(deadline=None, max_examples=examples(15))
@given(seed=st.integers(0, 2**32 - 1), input_scale=st.floats(0.0, 5.0), pass_state0=st.booleans())
def test_saturated_keep_gate_keeps_h(cell, seed, input_scale, pass_state0):
    # b_fg (b_fg_h for the +RNN) beyond every pre-activation opens the keep gate (3), (6), (18):
    # h_t = h_{t-1}. A fixed 60 was not enough: with seed=2487760, input_scale=3.0 the +RNN's
    # second layer, fed y = ReLU(...) (15), (19), had a g_h pre-activation of -50.
    rng = np.random.default_rng(seed)
    net = perturbed_network(cell, None, 2, 3, 2, 3, 0.0, 0.5, rng)      # b_fg is set below, from the draw
    assert net.cell.nonlinearity == "tanh"                               # the candidate is in [-1, 1]
    x = rng.normal(0.0, input_scale, (1, 2, 3))
    state0 = random_state(net, 2, rng) if pass_state0 else None
    h_prev = [state0[k][0] if pass_state0 else net.params[f"layer{k}.h0"][None, :]   # (B or 1, N)
              for k in range(2)]
    bound = stack_bound(net, np.abs(x[0]), [np.abs(h) for h in h_prev])
    net.cell = dataclasses.replace(net.cell, b_fg=bound.preactivation + MARGIN)      # a constant, not a parameter
    state = net.forward(x, state0).state
    for k in range(2):
        kept = np.broadcast_to(h_prev[k], (2, 3))
        assert_within(state[k][0], kept, kept_tolerance(kept))


@settings(deadline=None, max_examples=examples(15))
@given(seed=st.integers(0, 2**32 - 1), T=st.integers(1, 3), input_scale=st.floats(0.0, 5.0))
def test_lstm_closed_input_gate_and_open_forget_gate_keep_c(seed, T, input_scale):
    # f = sigma(z_f + b_fg) = 1 (10) and i = sigma(z_i + b_i) = 0 (9), with b_fg and -b_i beyond every
    # pre-activation: c_t = c_{t-1} (12)
    rng = np.random.default_rng(seed)
    net = perturbed_network("lstm", "tanh", 2, 3, 2, 3, 0.0, 1.0, rng)  # b_fg is set below, from the draw
    state0 = random_state(net, 2, rng)
    x = rng.normal(0.0, input_scale, (T, 2, 3))
    # h_t = o tanh(c_t) (14), so |h| <= max(|h_0|, 1) at every step; the bound counts the i block's own bias
    bound = stack_bound(net, np.abs(x).max(axis=0), [np.maximum(np.abs(h), 1.0) for h, _ in state0])
    saturating = bound.preactivation + MARGIN
    net.cell = dataclasses.replace(net.cell, b_fg=saturating)
    for k in range(2):
        net.params[f"layer{k}.b"][:3] = -saturating                      # the i block of [i, f, c, o]
    state = net.forward(x, state0).state
    for k in range(2):
        c0 = state0[k][1]
        assert_within(state[k][1], c0, kept_tolerance(c0, steps=T))


@settings(deadline=None, max_examples=examples(15))
@given(seed=st.integers(0, 2**32 - 1), input_scale=st.floats(0.0, 5.0))
def test_plusrnn_saturated_depth_gate_carries_input(seed, input_scale):
    # b_fg_y beyond every pre-activation opens g_y (17): y_t = x_t (19) in every layer, so out = readout(proj(x))
    rng = np.random.default_rng(seed)
    depth, n_in, n_h = 3, 2, 3
    net = perturbed_network("plusrnn", None, depth, n_in, 2, n_h, 0.5, 0.0, rng)   # b_fg_y is set below
    x = rng.normal(0.0, input_scale, (2, 2, n_in))
    p = net.params
    # h_t = g_h h_{t-1} + (1 - g_h) tanh(...) (20), so |h| <= max(|h0|, 1) at every step
    bound = stack_bound(net, np.abs(x).max(axis=0), [np.maximum(np.abs(p[f"layer{k}.h0"]), 1.0)[None, :]
                                                     for k in range(depth)])
    net.cell = dataclasses.replace(net.cell, b_fg_y=bound.preactivation + MARGIN)
    expected = (x @ p["proj.W"] + p["proj.b"]) @ p["readout.W"] + p["readout.b"]

    # The tolerance, from the bound S (B, N) on |proj(x)|, every y_in and every y: each layer moves its
    # input by at most (1 - g_y)(|x| + y_in) plus rounding, <= (e^-MARGIN + 4 EPS) 2 S (as in
    # kept_tolerance). proj and the readout are rounded by the library and by this test alike: a sum of
    # k products plus a bias is within about (k + 1) EPS / 2 of exact, relative to the sum of |terms|;
    # we allow twice that on each side.
    S = bound.signal
    W_out, b_out = np.abs(p["readout.W"]), np.abs(p["readout.b"])
    leak = depth * (math.exp(-MARGIN) + 4 * EPS) * 2 * S                 # |y_top - proj(x)|       (B, N)
    proj_rounding = 2 * (n_in + 1) * EPS * S                              # both sides' proj(x)     (B, N)
    readout_rounding = 2 * (n_h + 1) * EPS * (S @ W_out + b_out)          # both sides' readout     (B, n_out)
    assert_within(net.forward(x).out, expected, (leak + proj_rounding) @ W_out + readout_rounding)


@pytest.mark.parametrize("cell", CELLS)
@settings(deadline=None, max_examples=examples(10))
@given(seed=st.integers(0, 2**32 - 1), B=st.integers(1, 3))
def test_one_step_matches_the_paper_equations(cell, seed, B):
    # One step from a passed-in state, against reference.py's equations (1)-(20), which share no code
    # with rnncap.cells: the readout and every state array, the LSTM's c included.
    depth = MIN_DEPTH.get(cell, 1)
    rng = np.random.default_rng(seed)
    net = perturbed_network(cell, None, depth, 3, 2, 4, 1.5, -0.5, rng)
    x = rng.normal(0.0, 1.0, (1, B, 3))
    state0 = random_state(net, B, rng)

    fwd = net.forward(x, state0)
    expected = reference_forward(net, x, state0)
    np.testing.assert_allclose(fwd.out, expected.out, rtol=RTOL_REFERENCE, atol=ATOL_REFERENCE)
    for k in range(depth):
        for got, want in zip(fwd.state[k], expected.state[k], strict=True):
            np.testing.assert_allclose(got, want, rtol=RTOL_REFERENCE, atol=ATOL_REFERENCE)


@pytest.mark.parametrize("cell", CELLS)
@settings(deadline=None, max_examples=examples(10))
@given(data=st.data())
def test_split_sequence_chains_through_state(cell, data):
    # Truncated BPTT: the first window's final state, passed as state0, continues the sequence.
    T = data.draw(st.integers(2, 6), label="T")
    split = data.draw(st.integers(1, T - 1), label="split")
    B = data.draw(st.integers(1, 3), label="B")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    net = perturbed_network(cell, None, 2, 3, 2, 3, 1.0, 1.0, rng)
    x = rng.normal(0.0, 1.0, (T, B, 3))

    whole = net.forward(x)
    first = net.forward(x[:split])
    second = net.forward(x[split:], first.state)
    np.testing.assert_allclose(np.concatenate([first.out, second.out]), whole.out, rtol=1e-12, atol=1e-14)
    for k in range(2):
        for got, want in zip(second.state[k], whole.state[k], strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
