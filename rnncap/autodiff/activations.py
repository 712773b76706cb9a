"""Nonlinearities and their derivatives, written in terms of the *output*.

Every derivative here is a function of the activation's output ``y`` rather
than its input ``z``, so a cell's cache keeps only what the forward pass
already computed:

    sigmoid' = y (1 - y)      tanh' = 1 - y^2      relu' = [y > 0]

(``y > 0`` is the same set as ``z > 0`` for the ReLU.) The functions take the
array module from their argument, so they serve NumPy and CuPy alike.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from rnncap.backend import array_module


def sigmoid(z):
    # 1 / (1 + e^-z) overflows in e^-z for very negative z; this form cannot.
    xp = array_module(z)
    return 0.5 * (1.0 + xp.tanh(0.5 * z))


def sigmoid_grad(y):
    return y * (1.0 - y)


def tanh(z):
    return array_module(z).tanh(z)


def tanh_grad(y):
    return 1.0 - y * y


def relu(z):
    return array_module(z).maximum(z, 0.0)


def relu_grad(y):
    return (y > 0).astype(y.dtype)


class Nonlinearity(NamedTuple):
    """A nonlinearity ``s`` and its derivative as a function of ``s``'s output."""

    name: str
    fn: Callable
    grad: Callable


NONLINEARITIES: dict[str, Nonlinearity] = {
    "tanh": Nonlinearity("tanh", tanh, tanh_grad),
    "relu": Nonlinearity("relu", relu, relu_grad),
}
