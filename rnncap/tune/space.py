"""Every tuned hyperparameter and its range, in one place.

The paper tunes, for every (task, cell, depth, size), "the scales of matrices
and biases, the nonlinearity (tanh or ReLU), ``b_fg``, the optimiser and its
learning-rate schedule, gradient clipping and L2 regularisation", and for the
capacity task the number of samples ``b``. Its appendix with the ranges is not
available to us, so **every range below is ours**, chosen as follows:

==============  =====================  ==============================================
name            range                  why
==============  =====================  ==============================================
lr              1e-4 .. 1e-1, log      Adam/RMSProp on small RNNs train between ~1e-3
                                       and ~3e-2; a decade either side lets the tuner
                                       find the edge of divergence (infeasible runs
                                       are cheap: they stop early).
optimizer       adam, rmsprop, sgd     the three the paper cites (SGD with momentum).
momentum        0 .. 0.99              only with ``sgd``; 0 is plain SGD, 0.99 the
                                       usual upper end (``TrainConfig`` needs < 1).
lr_decay        0.01 .. 1, log         the factor the rate has fallen by at the last
                                       step: from "no decay" to a hundredfold.
clip            0.1 .. 100, log        global-norm threshold; 100 is "almost never
                                       clips" for these losses, 0.1 clips every step.
l2              1e-8 .. 1e-2, log      "zero or tiny" is 1e-8: at ``l2/2 ||W||^2``
                                       it changes no run we train, so no separate
                                       "off" switch is needed; 1e-2 already pulls
                                       memorisation down hard.
weight_scale    0.1 .. 3, log          weights start as N(0, scale^2 / fan_in): from
                                       nearly silent to clearly chaotic for tanh.
bias_scale      0 .. 1                 biases start as N(0, scale^2); not for the
                                       IRNN, whose biases start at zero by definition.
b_fg            -1 .. 5                keep-gate bias of UGRNN, GRU, LSTM, +RNN (the
                                       paper: "typically -1 to 5"); sigma(5) = 0.993.
b_fg_y          -1 .. 5                +RNN only: its depth gate's bias, same reason.
nonlinearity    tanh, relu             only for cells that allow both (RNN, UGRNN,
                                       GRU, LSTM); the IRNN is ReLU, the +RNN fixed.
b_per_param     1 .. 12, log           capacity task only: samples per parameter,
                                       ``b = round(b_per_param * P)``. Stored bits
                                       are at most ``b``, so ``b < P`` caps a run
                                       below 1 bit per parameter, far under the
                                       paper's 3-6; 12 leaves room above its best.
==============  =====================  ==============================================

A search space is declarative: a tuple of :class:`Real` and
:class:`Categorical` parameters, each optionally *conditional* on another
categorical's value (``momentum`` exists only when ``optimizer == "sgd"``).
The optimisers work in the unit cube; the space maps both ways:

    to_unit(hparams)   -> u in [0, 1]^dim   reals: (x - low) / (high - low), or in
                                            log x for log ranges; a categorical
                                            with k choices: k one-hot coordinates;
                                            an inactive conditional: 0.5 (a fixed
                                            value, so every vector has length dim)
    from_unit(u)       -> hparams           the inverse; one-hot blocks by argmax,
                                            inactive conditionals left out

A uniform point of the cube maps to a draw of :meth:`SearchSpace.sample`
(log-uniform where the range is log, each choice equally likely), so random
search in the cube *is* sampling the space. Values are plain ``float`` and
``str``: JSON-able as they come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy

from rnncap.cells import CELLS, canonical_cell_name
from rnncap.errors import RnncapError

INACTIVE = 0.5                          # where an inactive conditional sits in the unit cube
KEEP_GATE_CELLS = ("ugrnn", "gru", "lstm", "plusrnn")
TASK_HPARAMS = ("b_per_param",)         # tuned, but given to the task, not to the cell or the trainer


@dataclass(frozen=True)
class Real:
    """A real number in ``[low, high]``, uniform in ``x`` or (``log=True``) in ``log x``.

    ``condition = (parent, value)``: the parameter exists only when the
    categorical ``parent`` takes ``value``.
    """

    name: str
    low: float
    high: float
    log: bool = False
    condition: tuple[str, str] | None = None

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise RnncapError(f"{self.name}: need finite low < high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise RnncapError(f"{self.name}: a log range needs low > 0, got {self.low}")

    width = 1                           # coordinates in the unit cube

    def _warp(self, x):
        return numpy.log(x) if self.log else x

    def _unwarp(self, w):
        return numpy.exp(w) if self.log else w

    def to_unit(self, value: float) -> numpy.ndarray:
        low, high = self._warp(self.low), self._warp(self.high)
        u = (self._warp(float(value)) - low) / (high - low)
        return numpy.array([min(1.0, max(0.0, u))])                  # (1,)

    def from_unit(self, u: numpy.ndarray) -> float:
        low, high = self._warp(self.low), self._warp(self.high)
        value = float(self._unwarp(low + float(u[0]) * (high - low)))
        return min(self.high, max(self.low, value))                  # exp(log x) may round past a bound

    def contains(self, value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Categorical:
    """One of ``choices``, each equally likely; one-hot in the unit cube."""

    name: str
    choices: tuple[str, ...]
    condition: tuple[str, str] | None = None

    def __post_init__(self):
        if len(self.choices) < 2 or len(set(self.choices)) != len(self.choices):
            raise RnncapError(f"{self.name}: need two or more distinct choices, got {self.choices}")

    @property
    def width(self) -> int:
        return len(self.choices)

    def to_unit(self, value: str) -> numpy.ndarray:
        one_hot = numpy.zeros(self.width)                            # (k,)
        one_hot[self.choices.index(value)] = 1.0
        return one_hot

    def from_unit(self, u: numpy.ndarray) -> str:
        return self.choices[int(numpy.argmax(u))]                    # ties go to the first choice

    def contains(self, value) -> bool:
        return isinstance(value, str) and value in self.choices


Parameter = Real | Categorical


class SearchSpace:
    """An ordered tuple of parameters and the maps between hparams dicts and the unit cube."""

    def __init__(self, params: tuple[Parameter, ...]):
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise RnncapError(f"duplicate parameter names in {names}")
        seen: dict[str, Parameter] = {}
        for p in params:
            if p.condition is not None:
                parent = seen.get(p.condition[0])
                # parents come first, so one pass in order decides every parameter's activity
                if not isinstance(parent, Categorical) or p.condition[1] not in parent.choices:
                    raise RnncapError(f"{p.name}: condition {p.condition} needs an earlier categorical "
                                      f"with that choice")
            seen[p.name] = p
        self.params = tuple(params)
        starts = numpy.cumsum([0] + [p.width for p in params])
        self.slices = {p.name: slice(int(a), int(b)) for p, a, b in zip(params, starts[:-1], starts[1:])}
        self.dim = int(starts[-1])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def __repr__(self):
        return f"SearchSpace({', '.join(self.names)}; dim={self.dim})"

    def _active(self, p: Parameter, values: dict) -> bool:
        return p.condition is None or values.get(p.condition[0]) == p.condition[1]

    def sample(self, rng: numpy.random.Generator) -> dict:
        """One random draw: log-uniform on log ranges, uniform otherwise; only active parameters."""
        return self.from_unit(rng.random(self.dim))                  # (dim,) uniform in the cube

    def to_unit(self, hparams: dict) -> numpy.ndarray:
        """The point of ``[0, 1]^dim`` for ``hparams``; keys outside the space are ignored.

        Ignoring them lets a caller pass a trial's full hparams (with fixed
        settings such as ``steps``); a missing active parameter is an error.
        """
        u = numpy.full(self.dim, INACTIVE)                            # (dim,)
        for p in self.params:
            if not self._active(p, hparams):
                continue
            if p.name not in hparams:
                raise RnncapError(f"hparams lack {p.name!r}, which this space tunes")
            u[self.slices[p.name]] = p.to_unit(hparams[p.name])
        return u

    def from_unit(self, u) -> dict:
        """The hparams of a point of the cube (clipped into it first); inactive parameters are left out."""
        u = numpy.clip(numpy.asarray(u, dtype=float), 0.0, 1.0)       # (dim,)
        if u.shape != (self.dim,):
            raise RnncapError(f"expected a point of shape ({self.dim},), got {u.shape}")
        hparams: dict = {}
        for p in self.params:
            if self._active(p, hparams):
                hparams[p.name] = p.from_unit(u[self.slices[p.name]])
        return hparams

    def project(self, U) -> numpy.ndarray:
        """Rows of ``U`` moved to the points that will actually run: ``to_unit(from_unit(u))``, vectorised.

        One-hot blocks become exact one-hot vectors, inactive conditionals
        0.5, reals are clipped to the cube. An optimiser evaluates its
        acquisition here, so it scores what will be trained.
        """
        U = numpy.clip(numpy.atleast_2d(numpy.asarray(U, dtype=float)), 0.0, 1.0).copy()   # (m, dim)
        chosen: dict[str, numpy.ndarray] = {}                         # categorical name -> (m,) choice index
        for p in self.params:
            block = U[:, self.slices[p.name]]                         # (m, width)
            if isinstance(p, Categorical):
                index = numpy.argmax(block, axis=1)                   # (m,)
                block = numpy.eye(p.width)[index]                     # (m, k)
                chosen[p.name] = index
            if p.condition is not None:
                parent, value = p.condition
                parent_choices = self._param(parent).choices
                active = chosen[parent] == parent_choices.index(value)  # (m,)
                block = numpy.where(active[:, None], block, INACTIVE)
                if isinstance(p, Categorical):
                    chosen[p.name] = numpy.where(active, chosen[p.name], -1)
            U[:, self.slices[p.name]] = block
        return U

    def _param(self, name: str) -> Parameter:
        return next(p for p in self.params if p.name == name)

    def contains(self, hparams: dict) -> bool:
        """Whether ``hparams`` holds exactly the active parameters, each inside its range."""
        try:
            self.validate(hparams)
        except RnncapError:
            return False
        return True

    def validate(self, hparams: dict) -> None:
        """Raise unless ``hparams`` holds exactly the active parameters, each inside its range."""
        expected = {p.name for p in self.params if self._active(p, hparams)}
        tuned = {k for k in hparams if k in self.names}
        if tuned != expected:
            raise RnncapError(f"active parameters {sorted(expected)}, got {sorted(tuned)}")
        for p in self.params:
            if p.name in expected and not p.contains(hparams[p.name]):
                raise RnncapError(f"{p.name}={hparams[p.name]!r} is outside {p}")


def search_space(cell: str, task: str, exclude=()) -> SearchSpace:
    """The hyperparameters tuned for ``cell`` on ``task``; ranges and reasons in the module docstring.

    ``exclude`` names parameters a study holds fixed (``nonlinearity`` for the
    ReLU-only experiment, say); they leave the space, and so does any
    parameter conditional on one of them.
    """
    cell = canonical_cell_name(cell)
    params: list[Parameter] = [
        Real("lr", 1e-4, 1e-1, log=True),
        Categorical("optimizer", ("adam", "rmsprop", "sgd")),
        Real("momentum", 0.0, 0.99, condition=("optimizer", "sgd")),
        Real("lr_decay", 0.01, 1.0, log=True),
        Real("clip", 0.1, 100.0, log=True),
        Real("l2", 1e-8, 1e-2, log=True),
        Real("weight_scale", 0.1, 3.0, log=True),
    ]
    if cell != "irnn":                   # the IRNN's biases start at zero whatever the scale
        params.append(Real("bias_scale", 0.0, 1.0))
    if cell in KEEP_GATE_CELLS:
        params.append(Real("b_fg", -1.0, 5.0))
    if cell == "plusrnn":
        params.append(Real("b_fg_y", -1.0, 5.0))
    if len(CELLS[cell].nonlinearities) > 1:
        params.append(Categorical("nonlinearity", tuple(CELLS[cell].nonlinearities)))
    if task == "capacity":
        params.append(Real("b_per_param", 1.0, 12.0, log=True))
    kept = [p for p in params if p.name not in exclude and (p.condition is None or p.condition[0] not in exclude)]
    return SearchSpace(tuple(kept))


def quick_search_space(cell: str, task: str | None = None, exclude=()) -> SearchSpace:
    """The few hyperparameters of the quick searches (``rnncap capacity``, ``memory``, quick presets).

    Narrower than :func:`search_space`: they start from settings that already
    train (Adam, the learning rate decaying tenfold; for the capacity task,
    falling to a thousandth) and look only nearby, since
    they run a handful of trials instead of hundreds: lr 3e-3 .. 3e-2 (log),
    ``b_fg`` 0 .. 3 (keep-gate cells), weight_scale 0.3 .. 2 (log), the
    nonlinearity where the cell allows a choice, and for the capacity task
    ``b_per_param`` 2 .. 10 (log; our 1000-parameter networks store the most
    near 5-6) with ``b_fg`` -1 .. 1 instead (in five steps, gates that keep
    less store more: GRU and UGRNN 0.3 bits per parameter more at 0 than at 1,
    0.4-0.7 less at 2).
    """
    cell = canonical_cell_name(cell)
    params: list[Parameter] = [Real("lr", 3e-3, 3e-2, log=True), Real("weight_scale", 0.3, 2.0, log=True)]
    if cell in KEEP_GATE_CELLS:
        params.append(Real("b_fg", -1.0, 1.0) if task == "capacity" else Real("b_fg", 0.0, 3.0))
    if len(CELLS[cell].nonlinearities) > 1:
        params.append(Categorical("nonlinearity", tuple(CELLS[cell].nonlinearities)))
    if task == "capacity":
        params.append(Real("b_per_param", 2.0, 10.0, log=True))
    return SearchSpace(tuple(p for p in params if p.name not in exclude))


def split_task_hparams(hparams: dict) -> tuple[dict, dict]:
    """``(trial hparams, task hparams)``: ``b_per_param`` goes to the task, the rest to the trial.

    The caller turns ``b_per_param`` into the task's ``n_samples`` with
    :func:`samples_for`, once it knows the parameter count.
    """
    trial = {k: v for k, v in hparams.items() if k not in TASK_HPARAMS}
    task = {k: v for k, v in hparams.items() if k in TASK_HPARAMS}
    return trial, task


def samples_for(b_per_param: float, n_params: int) -> int:
    """The capacity task's sample count ``b = round(b_per_param * P)``, at least 2."""
    return max(2, int(round(b_per_param * n_params)))


# settings known to train: what the quick searches hold fixed, and where they start ------------

KNOWN_TO_TRAIN = {
    # tasks read out once (memory, rcf): Adam, rate decaying tenfold, loose clipping
    "memorise": {"optimizer": "adam", "lr_decay": 0.1, "clip": 10.0},
    # sequence tasks (a loss at every step, long unrolls): the same with tighter clipping
    "sequence": {"optimizer": "adam", "lr_decay": 0.1, "clip": 1.0},
}
# the capacity task: as "memorise", the rate falling in a straight line to a thousandth (REPRODUCTION.md, "Longer
# training, to a rate near zero": RNNs of 1000 parameters stored 0.24 bits per parameter more in 60000 steps than
# with the tenfold exponential decay), clipped at 1 (REPRODUCTION.md, "The +RNN's failing seed": at 1000 parameters
# it rescued a +RNN seed that stored 0.98 bits per parameter at 10, gained the LSTM 0.25 and cost no cell anything)
KNOWN_TO_TRAIN["capacity"] = {**KNOWN_TO_TRAIN["memorise"], "lr_decay": 1e-3, "lr_schedule": "linear", "clip": 1.0}
QUICK_START = {"lr": 1e-2, "weight_scale": 1.0, "b_fg": 1.0, "b_fg_y": 1.0, "nonlinearity": "tanh",
               "b_per_param": 4.0}
CAPACITY_START = {          # where capacity searches start instead (REPRODUCTION.md, "What limits the bits"):
    "lr": 2e-2,             # 1000-parameter RNNs stored 0.2 bits per parameter more than at 1e-2
    "b_fg": 0.0,            # a gate that keeps half the state at first: GRU +0.29, UGRNN +0.28 over b_fg = 1
}
CAPACITY_LR = {             # and the rate where a cell stored clearly more at 1000 parameters than at 2e-2
    "irnn": 1e-2,           # +0.19 bits per parameter (5e-3: -0.24)
    "lstm": 3e-2,           # +0.30 (1e-2: -0.57, 4.5e-2: +0.15)
}
CAPACITY_LR_PARAMS = 1000   # the size those rates were measured at; larger networks start lower


def capacity_lr(cell: str, n_params: int | None = None) -> float:
    """Adam's start rate for the capacity task: the cell's rate at 1000 parameters
    (:data:`CAPACITY_START`, :data:`CAPACITY_LR`), falling as ``P^(-1/3)`` above.

    At 10000 parameters (b = 4P, one seed per rate) the 1000-parameter rate
    did not train the RNN and cost the GRU and UGRNN half a bit per
    parameter; the best rates tried there were 0.35 (RNN), 0.6 (GRU) and at
    least 0.6 (LSTM, IRNN) times the cell's 1000-parameter rate, and
    ``P^(-1/3)`` gives 0.46 (REPRODUCTION.md, "A start rate that falls with
    size"). Smaller networks keep the 1000-parameter rate: at 100
    parameters faster was worse.
    """
    lr = CAPACITY_LR.get(canonical_cell_name(cell), CAPACITY_START["lr"])
    if n_params is not None and n_params > CAPACITY_LR_PARAMS:
        lr *= (CAPACITY_LR_PARAMS / n_params) ** (1 / 3)
    return lr


def start_point(space: SearchSpace, cell: str | None = None, n_params: int | None = None) -> dict:
    """The first point a quick search tries: :data:`QUICK_START` on the parameters ``space`` tunes.

    Measured on the RNN and GRU at a 1000-parameter budget (capacity task):
    Adam at 1e-2 decaying tenfold, unit weight scale and ``b_fg = 1`` train;
    the quick searches look around it. The capacity task (a space with
    ``b_per_param``) starts from :data:`CAPACITY_START` instead: a faster
    rate, and keep gates that start half open, which store more in five
    steps than gates biased to keep; and, given the ``cell``, at its rate
    (:func:`capacity_lr`, lower for networks of more than 1000 parameters
    ``n_params``). A categorical without a listed value takes its first
    choice; a number outside its range, the nearer end.
    """
    start = QUICK_START
    if "b_per_param" in space.names:
        start = {**QUICK_START, **CAPACITY_START}
        if cell is not None:
            start["lr"] = capacity_lr(cell, n_params)
    point = {}
    for p in space.params:
        if p.condition is None or point.get(p.condition[0]) == p.condition[1]:
            value = start.get(p.name)
            if isinstance(p, Categorical) and value not in p.choices:
                value = p.choices[0]
            elif isinstance(p, Real) and value is not None:
                value = min(max(value, p.low), p.high)
            point[p.name] = value if value is not None else p.from_unit(numpy.full(p.width, 0.5))
    space.validate(point)
    return point
