"""Backpropagation through time for one layer of any cell.

This is the only code in rnncap that loops over time. Forward: one GEMM
projects the inputs of all ``T`` steps, then the loop calls ``cell.step`` once
per step (one recurrent GEMM each). Backward: the same loop reversed, carrying
the state gradient ``dstate`` from step t+1 to step t (``dhnext`` in
min-char-rnn), adding up the recurrent weight gradients with ``+=``; then one
GEMM each for the input weights, the biases and the input gradient.
"""

from __future__ import annotations

from typing import NamedTuple

from rnncap.backend import array_module


class LayerTape(NamedTuple):
    """What a layer's backward pass needs from its forward pass."""

    x: object        # (T, B, n_in) the layer's input
    caches: list     # one cell cache per step


def layer_forward(cell, p: dict, x, state0: tuple):
    """Run one layer over a sequence.

    Returns ``(ys, state_T, tape)``: the outputs ``ys`` (T, B, N) that the
    layer above sees, the state after the last step, and the tape.
    """
    xp = array_module(x)
    T, B, n_in = x.shape
    xw = (x.reshape(T * B, n_in) @ p["W_x"] + p["b"]).reshape(T, B, -1)   # all steps, one GEMM  (T, B, G*N)
    n = p["h0"].shape[0]
    ys = xp.empty((T, B, n), dtype=xw.dtype)                                # (T, B, N)
    caches = []
    state = state0
    for t in range(T):
        ys[t], state, cache = cell.step(p, x[t], xw[t], state)
        caches.append(cache)
    return ys, state, LayerTape(x, caches)


def layer_backward(cell, p: dict, tape: LayerTape, dys, dstate_T: tuple, input_grad: bool = True):
    """Backpropagate through one layer, from the last step to the first.

    ``dys`` (T, B, N) is dLoss/dys from above; ``dstate_T`` the gradient of the
    final state (zeros unless a later window of truncated BPTT used it).
    Returns ``(dx, dstate_0, grads)`` with ``grads`` keyed like ``p`` (without
    the initial states, whose gradient the caller derives from ``dstate_0``);
    ``dx`` is None when ``input_grad`` is False (the network's raw input).
    """
    xp = array_module(dys)
    x, caches = tape
    T, B, n_in = x.shape
    dxw = xp.empty((T, B, p["b"].shape[0]), dtype=dys.dtype)               # (T, B, G*N)
    dx_direct = None                                                        # (T, B, n_in), +RNN only
    grads = {}
    dstate = dstate_T
    for t in reversed(range(T)):
        dx_t, dxw[t], dstate, step_grads = cell.step_backward(p, dys[t], dstate, caches[t])
        if dx_t is not None:                                                # a direct path x_t -> y_t (+RNN)
            if dx_direct is None:
                dx_direct = xp.zeros_like(x)
            dx_direct[t] = dx_t
        for name, g in step_grads.items():
            if name in grads:
                grads[name] += g
            else:
                grads[name] = g
    dxw_2d = dxw.reshape(T * B, -1)                                         # (T*B, G*N)
    grads["W_x"] = x.reshape(T * B, n_in).T @ dxw_2d                        # all steps, one GEMM  (n_in, G*N)
    grads["b"] = dxw_2d.sum(axis=0)                                         # (G*N,)
    dx = None
    if input_grad:
        dx = (dxw_2d @ p["W_x"].T).reshape(T, B, n_in)                      # all steps, one GEMM  (T, B, n_in)
        if dx_direct is not None:
            dx += dx_direct
    return dx, dstate, grads
