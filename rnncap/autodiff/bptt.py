"""Backpropagation through time for one layer of any cell.

This is the only code in rnncap that loops over time. Forward: one GEMM
projects the inputs of all ``T`` steps, then the loop calls ``cell.step`` once
per step (one recurrent GEMM each). Backward: the same loop reversed, carrying
the state gradient ``dstate`` from step t+1 to step t (``dhnext`` in
min-char-rnn), adding up the recurrent weight gradients with ``+=``; then one
GEMM each for the input weights, the biases and the input gradient.

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
    grads = {}
    dstate = dstate_T
    for t in reversed(range(T)):
        dx_t, dxw[..., t, :, :], dstate, step_grads = cell.step_backward(p, dys[..., t, :, :], dstate, caches[t])
        if dx_t is not None:                                                # a direct path x_t -> y_t (+RNN)
            if dx_direct is None:
                dx_direct = xp.zeros_like(x)
            dx_direct[..., t, :, :] = dx_t
        for name, g in step_grads.items():
            if name in grads:
                grads[name] += g
            else:
                grads[name] = g
    dxw_2d = dxw.reshape(*members, T * B, -1)                               # (T*B, G*N)
    xs = x[..., :S, :, :].reshape(*members, S * B, n_in)                    # (S*B, n_in)
    grads["W_x"] = xs.swapaxes(-1, -2) @ dxw_2d[..., :S * B, :]             # the steps with input, one GEMM
    grads["b"] = sum_rows(dxw_2d)                                           # all steps and sequences  (G*N,)
    dx = None
    if input_grad:
        dx = (dxw_2d @ p["W_x"].swapaxes(-1, -2)).reshape(x.shape)          # all steps, one GEMM  (T, B, n_in)
        if dx_direct is not None:
            dx += dx_direct
    return dx, dstate, grads
