"""A stack of recurrent layers with a linear readout, and the equal-parameters rule.

    x (T, B, n_in) --[proj, +RNN only]--> layer0 --> layer1 --> ... --> readout --> out (T, B, n_out)

Every layer has ``n_h`` units. Layer k's input is layer k-1's output (``h``,
or ``y`` for the +RNN). The readout maps the top layer's output to the task's
outputs at every step; the loss's mask picks the steps that count.

Parameters are one flat dict of named arrays, in this order:

    proj.W (n_in, N), proj.b (N,)        +RNN only: the first layer's input projection
    layer{k}.W_x, layer{k}.W_h, layer{k}.b, layer{k}.h0 [, layer{k}.c0]
                                         k = 0 .. depth-1; layouts in each cell's docstring
    readout.W (N, n_out), readout.b (n_out,)

The paper compares architectures at an equal number of parameters:
:func:`units_for_budget` gives the largest ``n_h`` whose exact total
(:func:`count_params`) fits a budget.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import NamedTuple

import numpy

from rnncap.autodiff.bptt import layer_backward, layer_forward
from rnncap.autodiff.dense import dense_backward, dense_forward, sum_rows
from rnncap.autodiff.losses import SoftmaxCrossEntropy, at_steps, counted_steps
from rnncap.backend import TRAIN_DTYPE, array_module, to_numpy
from rnncap.cells import Cell, CellHParams, make_cell
from rnncap.errors import RnncapError

MAX_DEPTH = 8


def _as_cell(cell: str | Cell) -> Cell:
    return cell if isinstance(cell, Cell) else make_cell(cell)


def check_architecture(cell: Cell, depth: int, n_in: int, n_out: int, n_h: int | None = None) -> None:
    """Raise a one-line :class:`RnncapError` for a network that cannot be built."""
    if not 1 <= depth <= MAX_DEPTH:
        raise RnncapError(f"depth must be between 1 and {MAX_DEPTH}, got {depth}")
    if depth < cell.min_depth:
        raise RnncapError(
            f"the {cell.title} needs depth >= {cell.min_depth}: its output mixes in its own input, "
            f"and the paper excludes it at depth 1; use --depth {cell.min_depth} or more"
        )
    if n_in < 1 or n_out < 1:
        raise RnncapError(f"n_in and n_out must be >= 1, got n_in={n_in}, n_out={n_out}")
    if n_h is not None and n_h < 1:
        raise RnncapError(f"the number of units must be >= 1, got {n_h}")


class _Part(NamedTuple):
    """One part of the stack, as its parameters are laid out: ``{prefix}.{name}`` for each of its arrays."""

    prefix: str          # "proj", "layer0" .. "layer{depth-1}", "readout"
    recurrent: bool      # a layer of the cell, or a dense map (projection, readout)
    n_in: int            # the size of the part's input
    n_out: int           # the size of its output (n_h for a layer)


def _layout(cell: str | Cell, depth: int, n_in: int, n_out: int, n_h: int) -> list[_Part]:
    """The parts of the stack from input to output.

    This is the one walk over the parameter layout: :func:`param_shapes` and
    the network's initialisation both follow it.
    """
    cell = _as_cell(cell)
    check_architecture(cell, depth, n_in, n_out, n_h)
    layout = []
    layer_in = n_in
    if cell.carries_input:
        layout.append(_Part("proj", False, n_in, n_h))
        layer_in = n_h
    for k in range(depth):
        layout.append(_Part(f"layer{k}", True, layer_in, n_h))
        layer_in = n_h
    layout.append(_Part("readout", False, n_h, n_out))
    return layout


def _part_shapes(cell: Cell, part: _Part) -> dict[str, tuple[int, ...]]:
    if part.recurrent:
        return cell.param_shapes(part.n_in, part.n_out)
    return {"W": (part.n_in, part.n_out), "b": (part.n_out,)}


def param_shapes(cell: str | Cell, depth: int, n_in: int, n_out: int, n_h: int) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter array, in the network's order."""
    cell = _as_cell(cell)
    return {f"{part.prefix}.{name}": shape for part in _layout(cell, depth, n_in, n_out, n_h)
            for name, shape in _part_shapes(cell, part).items()}


def count_params(cell: str | Cell, depth: int, n_in: int, n_out: int, n_h: int) -> int:
    """Exact number of trainable numbers: projection, gates, biases, initial states, readout."""
    return sum(math.prod(shape) for shape in param_shapes(cell, depth, n_in, n_out, n_h).values())


def units_for(cell: str | Cell, depth: int, n_in: int, n_out: int, *, budget: int | None = None,
              units: int | None = None) -> int:
    """Units per layer from exactly one of a parameter ``budget`` (:func:`units_for_budget`) or ``units``."""
    if (budget is None) == (units is None):
        raise RnncapError("give exactly one of --budget and --units")
    if units is not None:
        check_architecture(_as_cell(cell), depth, n_in, n_out, units)
        return units
    return units_for_budget(cell, depth, n_in, n_out, budget)


def units_for_budget(cell: str | Cell, depth: int, n_in: int, n_out: int, max_params: int) -> int:
    """The largest ``n_h`` (same in every layer) whose total is at most ``max_params``."""
    cell = _as_cell(cell)
    check_architecture(cell, depth, n_in, n_out)
    smallest = count_params(cell, depth, n_in, n_out, 1)
    if max_params < smallest:
        raise RnncapError(
            f"a budget of {max_params} parameters is too small: a depth-{depth} {cell.title} with "
            f"n_in={n_in}, n_out={n_out} needs {smallest} parameters for one unit per layer"
        )
    low, high = 1, 2                     # count(low) <= budget; grow high until it is over
    while count_params(cell, depth, n_in, n_out, high) <= max_params:
        low, high = high, 2 * high
    while high - low > 1:                # count is increasing in n_h: bisect
        mid = (low + high) // 2
        if count_params(cell, depth, n_in, n_out, mid) <= max_params:
            low = mid
        else:
            high = mid
    return low


_FORWARD_CONSTANTS = ("nonlinearity", "b_fg", "b_fg_y")   # the CellHParams fields a cell may hold


def _cell_and_hparams(cell: str | Cell, hp: CellHParams) -> tuple[Cell, CellHParams]:
    """The network's cell, and ``hp`` with that cell's forward constants; see :class:`Network`."""
    if not isinstance(cell, Cell):
        return make_cell(cell, hp), hp
    if cell.nonlinearities and cell.nonlinearity not in cell.nonlinearities:
        raise RnncapError(f"{cell.title} does not take nonlinearity {cell.nonlinearity!r}; "
                          f"it allows only {', '.join(cell.nonlinearities)}")
    if hp.nonlinearity is not None and not cell.nonlinearities:
        raise RnncapError(f"{cell.title} does not take nonlinearity {hp.nonlinearity!r}: "
                          "its nonlinearities are fixed by the paper")
    defaults = CellHParams()
    own = {name: getattr(cell, name) for name in _FORWARD_CONSTANTS if hasattr(cell, name)}
    for name, value in own.items():
        given = getattr(hp, name)
        if given != getattr(defaults, name) and given != value:
            raise RnncapError(
                f"the {cell.title} was given {name}={value!r} but the CellHParams say {name}={given!r}: "
                "set it in one place (pass the cell by name to build it from the CellHParams)")
    if own["nonlinearity"] == cell.default_nonlinearity:
        own["nonlinearity"] = hp.nonlinearity              # None (the default) stays None
    return cell, dataclasses.replace(hp, **own)


class Forward(NamedTuple):
    out: object          # (T, B, n_out) readout at every step (or at the steps asked for)
    state: list          # per layer, the state tuple after the last step
    tape: object         # what backward needs


class Backward(NamedTuple):
    grads: dict          # same keys and shapes as Network.params
    dx: object           # (T, B, n_in), or None when not asked for
    dstate0: list        # per layer, gradient of the initial state tuple (B, N) each


class LossAndGrads(NamedTuple):
    loss: float
    grads: dict
    out: object
    state: list
    dx: object
    dstate0: list


class _Tape(NamedTuple):
    x: object
    layers: list
    top: object               # the top layer's output at the steps read out
    learned_state0: bool
    steps: object             # the steps read out (indices or a slice), or None for all
    top_shape: tuple          # the top layer's output at every step: (T, B, N)


class Network:
    """``Network(cell, depth, n_in, n_out, n_h, hp, rng)``: parameters plus a pure forward/backward.

    ``cell`` is a name or a :class:`~rnncap.cells.Cell` instance:

    - a name builds the cell from ``hp`` (``make_cell(cell, hp)``);
    - an instance is used as given, with its own forward constants
      (``nonlinearity``, ``b_fg``, and the +RNN's ``b_fg_y``). ``hp`` then
      supplies the initial scales (``weight_scale``, ``bias_scale``); a
      forward constant it sets to something other than its default must
      agree with the cell's, or the network is refused with an
      :class:`RnncapError` (a value equal to :class:`CellHParams`'s default
      counts as not set). ``self.hp`` holds the cell's constants, so that
      ``Network(cell.name, ..., net.hp)`` builds the same network.

    ``rng`` is a ``numpy.random.Generator`` (or an int seed) used once, for the
    initial parameters. ``xp`` is the array module (``numpy`` or ``cupy``, see
    :mod:`rnncap.backend`); ``dtype`` is float32 for training and float64 for
    gradient checks.
    """

    def __init__(self, cell: str | Cell, depth: int, n_in: int, n_out: int, n_h: int,
                 hp: CellHParams | None = None, rng: numpy.random.Generator | int = 0,
                 *, xp=numpy, dtype=TRAIN_DTYPE):
        self.cell, self.hp = _cell_and_hparams(cell, hp or CellHParams())
        self.depth, self.n_in, self.n_out, self.n_h = depth, n_in, n_out, n_h
        self.xp, self.dtype = xp, numpy.dtype(dtype)
        self.members: tuple[int, ...] = ()             # (K,) for a population (rnncap.population)
        rng = numpy.random.default_rng(rng) if not isinstance(rng, numpy.random.Generator) else rng
        init = self._init_params(rng)
        self.params = {name: xp.asarray(value, dtype=self.dtype) for name, value in init.items()}

    def _init_params(self, rng) -> dict[str, numpy.ndarray]:
        """Float64 NumPy parameters, drawn from ``rng`` part by part, in the layout's order."""
        params = {}
        for part in _layout(self.cell, self.depth, self.n_in, self.n_out, self.n_h):
            if part.recurrent:
                values = self.cell.init_params(rng, part.n_in, part.n_out, self.hp)
            else:
                # the projection starts like the cells' input weights; the readout at unit scale
                scale = self.hp.weight_scale if part.prefix == "proj" else 1.0
                values = {"W": rng.normal(0.0, scale / math.sqrt(part.n_in), (part.n_in, part.n_out)),
                          "b": numpy.zeros(part.n_out)}
            assert {name: v.shape for name, v in values.items()} == _part_shapes(self.cell, part)
            params.update({f"{part.prefix}.{name}": v for name, v in values.items()})
        return params

    @property
    def n_params(self) -> int:
        """Parameters of one network (of one member, in a population)."""
        return sum(int(v.size) for v in self.params.values()) // math.prod(self.members)

    def layer_params(self, k: int) -> dict:
        prefix = f"layer{k}."
        return {name[len(prefix):]: v for name, v in self.params.items() if name.startswith(prefix)}

    def initial_state(self, batch: int) -> list:
        """The learned initial state of every layer, for a batch."""
        return [self.cell.init_state(self.layer_params(k), batch) for k in range(self.depth)]

    def forward(self, x, state0: list | None = None, steps=None, input_steps: int | None = None) -> Forward:
        """Run the stack over ``x`` (T, B, n_in).

        ``state0`` (one state tuple per layer, arrays (B, N)) replaces the
        learned initial state, e.g. to carry state between the windows of
        truncated BPTT; its gradient comes back as ``Backward.dstate0``.
        ``steps`` (indices of time steps, or a slice) reads out only those steps:
        ``out`` is then (len(steps), B, n_out). ``input_steps`` S promises that
        ``x`` is zero after its first S steps (the tasks that present an input and
        then wait, :attr:`rnncap.tasks.base.Task.input_steps`): the first layer's
        input GEMMs then skip the rest.
        """
        x = self.xp.asarray(x, dtype=self.dtype)
        if x.shape[:-3] != self.members or x.ndim != 3 + len(self.members) or x.shape[-1] != self.n_in:
            expected = ", ".join(str(d) for d in (*self.members, "T", "B", self.n_in))
            raise RnncapError(f"x must have shape ({expected}), got {tuple(x.shape)}")
        learned = state0 is None
        if learned:
            state0 = self.initial_state(x.shape[-2])
        h = x
        if self.cell.carries_input:
            h = dense_forward(x, self.params["proj.W"], self.params["proj.b"])   # (T, B, N)
        states, tapes = [], []
        for k in range(self.depth):
            zero_after = input_steps if k == 0 and not self.cell.carries_input else None
            h, state, tape = layer_forward(self.cell, self.layer_params(k), h, tuple(state0[k]), zero_after)
            states.append(state)
            tapes.append(tape)
        top = h if steps is None else at_steps(h, steps, axis=-3)
        out = dense_forward(top, self.params["readout.W"], self.params["readout.b"])  # (T, B, n_out)
        return Forward(out, states, _Tape(x, tapes, top, learned, steps, h.shape))

    def backward(self, tape: _Tape, dout, dstate: list | None = None, input_grad: bool = True) -> Backward:
        """Gradients of a loss whose gradient at the readout is ``dout`` (T, B, n_out).

        ``dstate`` (optional, one tuple per layer) is the gradient reaching the
        final states from outside the sequence. With ``input_grad=False`` the
        gradient of the input is not computed (``Backward.dx`` is None), which
        saves a GEMM when training.
        """
        xp = array_module(dout)
        grads = {}
        dh, grads["readout.W"], grads["readout.b"] = dense_backward(tape.top, dout, self.params["readout.W"])
        if tape.steps is not None:                       # read out at some steps only: zero at the others
            dh_read = dh
            dh = xp.zeros(tape.top_shape, dtype=self.dtype)                  # (T, B, N)
            dh[..., tape.steps if isinstance(tape.steps, slice) else xp.asarray(tape.steps), :, :] = dh_read
        dstate0 = [None] * self.depth
        for k in reversed(range(self.depth)):
            p = self.layer_params(k)
            layer_tape = tape.layers[k]
            B = layer_tape.x.shape[-2]
            d_final = dstate[k] if dstate is not None else tuple(
                xp.zeros((*self.members, B, self.n_h), dtype=self.dtype) for _ in self.cell.state_names)
            needs_dx = k > 0 or input_grad or self.cell.carries_input
            dh, dstate0[k], layer_grads = layer_backward(self.cell, p, layer_tape, dh, tuple(d_final), needs_dx)
            for name, g in layer_grads.items():
                grads[f"layer{k}.{name}"] = g
            for name, d0 in zip(self.cell.state_names, dstate0[k]):
                # the learned initial state is shared by the batch: its gradient is the sum
                grads[f"layer{k}.{name}0"] = sum_rows(d0) if tape.learned_state0 else xp.zeros_like(p[f"{name}0"])
        dx = dh                                          # None unless input_grad
        if self.cell.carries_input:                      # with input_grad=False, no GEMM back to x
            dx, grads["proj.W"], grads["proj.b"] = dense_backward(tape.x, dh, self.params["proj.W"], input_grad)
        return Backward({name: grads[name] for name in self.params}, dx, dstate0)

    def loss_and_grads(self, x, target, mask=None, loss=None, state0: list | None = None,
                       input_grad: bool = True, input_steps: int | None = None) -> LossAndGrads:
        """Forward, loss (softmax cross-entropy unless ``loss`` says otherwise), backward.

        The readout and the loss are computed only at the time steps the mask
        counts (all of them without a mask); ``out`` holds those steps.
        ``input_steps`` is :meth:`forward`'s.
        """
        loss = loss or SoftmaxCrossEntropy()
        steps = counted_steps(mask, x.shape[-3])                            # where the loss reads the network
        fwd = self.forward(x, state0, steps, input_steps)
        if steps is not None:
            target = at_steps(self.xp.asarray(target), steps, axis=len(self.members))
            mask = at_steps(self.xp.asarray(mask), steps, axis=-2)
        value, dout = loss(fwd.out, target, mask)
        bwd = self.backward(fwd.tape, dout, input_grad=input_grad)
        value = float(value) if not self.members else value              # a population: one loss per member (K,)
        return LossAndGrads(value, bwd.grads, fwd.out, fwd.state, bwd.dx, bwd.dstate0)

    def astype(self, dtype, xp=None) -> "Network":
        """A copy with the parameters cast to ``dtype`` (and moved to ``xp``)."""
        clone = copy.copy(self)
        clone.xp = xp or self.xp
        clone.dtype = numpy.dtype(dtype)
        clone.params = {name: clone.xp.asarray(to_numpy(v) if clone.xp is numpy else v, dtype=clone.dtype)
                        for name, v in self.params.items()}
        return clone

    def __repr__(self) -> str:
        return (f"Network({self.cell.name!r}, depth={self.depth}, n_in={self.n_in}, n_out={self.n_out}, "
                f"n_h={self.n_h}, params={self.n_params})")


NETWORK_PARAM_FORMULA = ("network = sum over layers + readout (N*n_out + n_out); n_in is the task's input size "
                         "for layer 0 and N above it; the +RNN adds an input projection (n_in*N + N) and then "
                         "uses n_in = N in every layer")
