"""A linear map applied at every time step: the readout, and the +RNN's input projection.

    out_t = x_t W + b        (row vectors: x (T, B, n), W (n, m), b (m,))
"""

from __future__ import annotations


def dense_forward(x, W, b):
    T, B, n = x.shape
    return (x.reshape(T * B, n) @ W + b).reshape(T, B, -1)                  # (T, B, m)


def dense_backward(x, dout, W):
    """Returns ``(dx, dW, db)`` for ``out = x W + b``."""
    T, B, n = x.shape
    dout_2d = dout.reshape(T * B, -1)                                       # (T*B, m)
    dW = x.reshape(T * B, n).T @ dout_2d                                    # (n, m)
    db = dout_2d.sum(axis=0)                                                # (m,)
    dx = (dout_2d @ W.T).reshape(T, B, n)                                   # (T, B, n)
    return dx, dW, db
