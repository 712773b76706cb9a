"""Backpropagation through time for one layer of any cell.

This is the only code in rnncap that loops over time. Forward: one GEMM
projects the inputs of all ``T`` steps, then the loop calls ``cell.step`` once
per step (one recurrent GEMM each). Backward: the same loop reversed, carrying
the state gradient ``dstate`` from step t+1 to step t (``dhnext`` in
min-char-rnn) and keeping each step's pre-activation gradient ``dxw_t``; then
one GEMM over all steps each for the recurrent weights, the input weights,
the biases and the input gradient.

Shapes are one network's, ``x`` (T, B, n_in). A population of K networks
(:mod:`rnncap.population`) adds a leading member axis to every array,
``x`` (K, T, B, n_in), and the same lines run: time is always axis -3, so a
step is ``x[..., t, :, :]``, and each GEMM is a stacked matmul, one per member.

Tasks that present an input and then wait (capacity, memory) have ``x`` zero
after its first ``input_steps`` steps. Given that number, the input GEMMs run
over those steps only (``x W_x`` is zero elsewhere, and so is its share of
``W_x``'s gradient), which removes most of their arithmetic at T = 5;
``tests/test_network.py`` checks that the results equal the full GEMMs'.
"""

from __future__ import annotations

from typing import NamedTuple

from rnncap.autodiff.dense import sum_rows
from rnncap.backend import array_module


class LayerTape(NamedTuple):
    """What a layer's backward pass needs from its forward pass."""

    x: object        # (T, B, n_in) the layer's input
    caches: list     # one cell cache per step
    input_steps: int  # x is zero after its first input_steps steps (T: no such promise)


def layer_forward(cell, p: dict, x, state0: tuple, input_steps: int | None = None):
    """Run one layer over a sequence.

    Returns ``(ys, state_T, tape)``: the outputs ``ys`` (T, B, N) that the
    layer above sees, the state after the last step, and the tape.
    ``input_steps`` S says that ``x`` is zero after its first S steps.
    """
    xp = array_module(x)
    *members, T, B, n_in = x.shape
    S = T if input_steps is None else min(input_steps, T)
    xs = x[..., :S, :, :].reshape(*members, S * B, n_in)                    # (S*B, n_in)
    bias = p["b"][..., None, :]
    if S == T:
        xw = (xs @ p["W_x"] + bias).reshape(*members, T, B, -1)             # all steps, one GEMM  (T, B, G*N)
    else:                                                                   # x W_x is zero after step S
        xw = xp.empty((*members, T, B, p["b"].shape[-1]), dtype=x.dtype)   # (T, B, G*N)
        xw[..., :S, :, :] = (xs @ p["W_x"] + bias).reshape(*members, S, B, -1)
        xw[..., S:, :, :] = bias[..., None, :, :]
    n = p["h0"].shape[-1]
    ys = xp.empty((*members, T, B, n), dtype=xw.dtype)                      # (T, B, N)
    caches = []
    state = state0
    for t in range(T):
        ys[..., t, :, :], state, cache = cell.step(p, x[..., t, :, :], xw[..., t, :, :], state)
        caches.append(cache)
    return ys, state, LayerTape(x, caches, S)


def layer_backward(cell, p: dict, tape: LayerTape, dys, dstate_T: tuple, input_grad: bool = True):
    """Backpropagate through one layer, from the last step to the first.

    ``dys`` (T, B, N) is dLoss/dys from above; ``dstate_T`` the gradient of the
    final state (zeros unless a later window of truncated BPTT used it).
    Returns ``(dx, dstate_0, grads)`` with ``grads`` keyed like ``p`` (without
    the initial states, whose gradient the caller derives from ``dstate_0``);
    ``dx`` is None when ``input_grad`` is False (the network's raw input).
    """
    xp = array_module(dys)
    x, caches, S = tape
    *members, T, B, n_in = x.shape
    dxw = xp.empty((*members, T, B, p["b"].shape[-1]), dtype=dys.dtype)     # (T, B, G*N)
    dx_direct = None                                                        # (T, B, n_in), +RNN only
    dstate = dstate_T
    q = {**p, "W_h": rows_of_transpose(p["W_h"])}                          # the same values, faster to read back
    for t in reversed(range(T)):
        dx_t, dxw[..., t, :, :], dstate = cell.step_backward(q, dys[..., t, :, :], dstate, caches[t])
        if dx_t is not None:                                                # a direct path x_t -> y_t (+RNN)
            if dx_direct is None:
                dx_direct = xp.zeros_like(x)
            dx_direct[..., t, :, :] = dx_t
    dxw_2d = dxw.reshape(*members, T * B, -1)                               # (T*B, G*N)
    grads = {"W_h": _recurrent_weight_grad(cell, caches, dxw_2d)}
    xs = x[..., :S, :, :].reshape(*members, S * B, n_in)                    # (S*B, n_in)
    grads["W_x"] = xs.swapaxes(-1, -2) @ dxw_2d[..., :S * B, :]             # the steps with input, one GEMM
    grads["b"] = sum_rows(dxw_2d)                                           # all steps and sequences  (G*N,)
    dx = None
    if input_grad:
        dx = (dxw_2d @ p["W_x"].swapaxes(-1, -2)).reshape(x.shape)          # all steps, one GEMM  (T, B, n_in)
        if dx_direct is not None:
            dx += dx_direct
    return dx, dstate, grads


def rows_of_transpose(W):
    """``W`` (N, G*N) with its transpose laid out row by row: equal to ``W`` everywhere, but
    ``W.swapaxes(-1, -2)`` is then C-contiguous.

    Every backward step multiplies by ``W_h^T`` (``dz @ W_h.swapaxes(-1, -2)``);
    BLAS reads a C-contiguous right-hand side faster than a transposed one (at
    the text8 shape, (32, 1024) @ (1024, 256): 162 µs against 234 µs on 2
    cores). One copy per backward pass buys that at every step.
    """
    xp = array_module(W)
    return xp.ascontiguousarray(W.swapaxes(-1, -2)).swapaxes(-1, -2)


def _recurrent_weight_grad(cell, caches: list, dxw_2d):
    """``W_h``'s gradient: what it multiplied at every step, against ``dxw``, one GEMM per input.

    ``dxw_2d`` (T*B, G*N) holds the pre-activation gradients of all steps;
    block by block, ``dW_h = sum_t input_t^T dxw_t``, one GEMM over all steps
    at once (a (T*B)-long product keeps BLAS far busier than T short ones).
    """
    xp = array_module(dxw_2d)
    inputs = [cell.recurrent_inputs(cache) for cache in caches]             # per step {(first, end): (B, N)}
    n = next(iter(inputs[0].values())).shape[-1]
    *members, TB, GN = dxw_2d.shape
    dW_h = xp.empty((*members, n, GN), dtype=dxw_2d.dtype)                  # (N, G*N)
    for first, end in inputs[0]:
        seq = xp.stack([step[first, end] for step in inputs], axis=-3).reshape(*members, TB, n)   # (T*B, N)
        cols = slice(first * n, end * n)
        dW_h[..., cols] = seq.swapaxes(-1, -2) @ dxw_2d[..., cols]
    return dW_h
