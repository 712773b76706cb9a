"""What every cell shares: its parameter layout, its initialisation, its state.

A cell is a small frozen dataclass holding only the constants of its forward
pass (the nonlinearity ``s`` and the forget-gate bias ``b_fg``). It owns no
arrays and no step counter. The parameters live in a dict that the network
passes in; the cell's two methods are pure functions of their arguments:

    step(p, x_t, xw_t, state)              -> (y_t, state_t, cache)
    step_backward(p, dy_t, dstate_t, cache) -> (dx_t, dxw_t, dstate_prev)

``xw_t = x_t @ W_x + b`` is the input projection for step t, which the BPTT
driver computes for all steps in one GEMM before the time loop; the step adds
the recurrent GEMM ``h_prev @ W_h``. ``y_t`` is what the layer above (or the
readout) sees: ``h_t`` for every cell but the +RNN, whose ``y_t`` is separate.
``dx_t`` is the gradient reaching ``x_t`` *other* than through ``xw_t`` (only
the +RNN has such a path; the others return None). ``dxw_t`` is the gradient
of the pre-activations ``xw_t + h_prev @ W_h``, so the weight gradients are
products of it with what the weights multiplied: the driver computes them
after the loop, one GEMM over all steps each, ``W_x``'s with the inputs and
``W_h``'s with :meth:`Cell.recurrent_inputs` (``h_{t-1}`` for every block,
but for the GRU's candidate).

Parameter layout, shared by every cell (``G`` = ``cell.gates``, ``N`` = units):

    W_x  (n_in, G*N)   input weights of all G blocks side by side
    W_h  (N,    G*N)   recurrent weights, same block order
    b    (G*N,)        learned biases, same block order
    h0   (N,)          learned initial hidden state
    c0   (N,)          learned initial cell state (LSTM only)

Each cell's docstring names its blocks in order.

**Populations.** The shapes above are one network's. A *population* of K
networks of one shape, trained in lockstep (:mod:`rnncap.population`), puts
a member axis in front of every array: ``W_h`` (K, N, G*N), ``h0`` (K, N),
states (K, B, N), and ``b_fg`` an array (K, 1, 1) when members differ in it.
The cells are written over the trailing axes (``z[..., :n]``, ``swapaxes(-1,
-2)`` for a transpose, ``@`` as a stacked matmul), so the same lines compute
one network or K of them; the shape comments give one member's shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy

from rnncap.autodiff.activations import NONLINEARITIES, Nonlinearity
from rnncap.errors import RnncapError


@dataclass(frozen=True)
class CellHParams:
    """The hyperparameters of a cell: its forward constants and its initial scales.

    ``nonlinearity`` None means the cell's own default (tanh, or ReLU for the
    IRNN). ``b_fg`` is added, as a constant, to the pre-activation of the gate
    that keeps the old state (UGRNN ``g``, GRU ``u``, LSTM ``f``, +RNN ``g_h``);
    ``b_fg_y`` is the +RNN's separate constant for its depth gate ``g_y``.
    Weights start as ``N(0, weight_scale^2 / fan_in)``, biases as
    ``N(0, bias_scale^2)``; learned initial states start at zero.
    """

    nonlinearity: str | None = None
    b_fg: float = 1.0
    b_fg_y: float = 1.0
    weight_scale: float = 1.0
    bias_scale: float = 0.0

    def __post_init__(self):
        if self.nonlinearity is not None and self.nonlinearity not in NONLINEARITIES:
            raise RnncapError(
                f"unknown nonlinearity {self.nonlinearity!r}: choose one of {', '.join(NONLINEARITIES)}"
            )
        for name in ("b_fg", "b_fg_y", "weight_scale", "bias_scale"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise RnncapError(f"{name} must be a finite number, got {value}")
        if self.weight_scale < 0 or self.bias_scale < 0:
            raise RnncapError("weight_scale and bias_scale must be >= 0")


@dataclass(frozen=True)
class Cell:
    """Base class: parameter shapes, initialisation and initial state."""

    name: ClassVar[str]
    title: ClassVar[str]                # how the paper writes the name
    equations: ClassVar[str]            # the paper's equation numbers
    gate_names: ClassVar[tuple[str, ...]]
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    nonlinearities: ClassVar[tuple[str, ...]] = ("tanh", "relu")
    default_nonlinearity: ClassVar[str] = "tanh"
    carries_input: ClassVar[bool] = False   # y_t mixes in x_t itself, so dim(x) must equal N
    min_depth: ClassVar[int] = 1

    nonlinearity: str = "tanh"
    b_fg: float = 1.0

    @property
    def gates(self) -> int:
        """Number of blocks side by side in ``W_x``, ``W_h`` and ``b``."""
        return len(self.gate_names)

    @property
    def s(self) -> Nonlinearity:
        return NONLINEARITIES[self.nonlinearity]

    def param_shapes(self, n_in: int, n_h: int) -> dict[str, tuple[int, ...]]:
        shapes = {
            "W_x": (n_in, self.gates * n_h),
            "W_h": (n_h, self.gates * n_h),
            "b": (self.gates * n_h,),
        }
        for state in self.state_names:
            shapes[f"{state}0"] = (n_h,)
        return shapes

    def param_formula(self) -> str:
        """:meth:`param_shapes` counted, in words: e.g. ``3N(n_in + N + 1) + N`` for the GRU."""
        G, S = self.gates, len(self.state_names)
        gates = f"{G}N(n_in + N + 1)" if G > 1 else "N(n_in + N + 1)"
        return f"{gates} + {S}N" if S > 1 else f"{gates} + N"

    def init_params(self, rng: numpy.random.Generator, n_in: int, n_h: int,
                    hp: CellHParams) -> dict[str, numpy.ndarray]:
        """Float64 NumPy parameters; the network casts and moves them."""
        G = self.gates
        return {
            "W_x": rng.normal(0.0, hp.weight_scale / math.sqrt(n_in), (n_in, G * n_h)),
            "W_h": rng.normal(0.0, hp.weight_scale / math.sqrt(n_h), (n_h, G * n_h)),
            "b": rng.normal(0.0, hp.bias_scale, G * n_h) if hp.bias_scale > 0 else numpy.zeros(G * n_h),
            **{f"{state}0": numpy.zeros(n_h) for state in self.state_names},
        }

    def recurrent_inputs(self, cache) -> dict:
        """What ``W_h`` multiplied at a step, by its blocks: ``{(first, end): (B, N) input}``.

        Blocks ``first`` to ``end - 1`` of ``W_h`` multiplied that input, so
        their gradient is ``input^T dxw_t`` summed over the steps. Every cell
        but the GRU multiplies all of ``W_h`` by ``h_{t-1}``.
        """
        return {(0, self.gates): cache.h_prev}

    def init_state(self, p: dict, batch: int) -> tuple:
        """The learned initial state, repeated for every sequence in the batch."""
        # (N,) -> (B, N), a real copy rather than a broadcast view
        return tuple(p[f"{state}0"][..., None, :].repeat(batch, axis=-2) for state in self.state_names)
