"""Check hand-written gradients against central differences.

The gradient under test is the network's own, computed in float64 (on NumPy or
CuPy). The central differences it is compared with are evaluated on a NumPy
copy of the network in extended precision (``numpy.longdouble``: a 64-bit
mantissa on x86-64 Linux; plain float64 where the platform has nothing wider).
Why: a difference quotient loses about ``eps_mach * |f| / ε`` to round-off, so
in float64 an array whose gradient is 1e-5 of the loss cannot be checked to
1e-6; three more decimal digits make the reference sharp enough for every
array. On a GPU this also makes the reference independent of the device.

Two modes, both giving one relative error per array:

- ``entries``: every entry ``i`` of every array, perturbed along ``e_i``;
  the error of an array is ``‖g - g_fd‖ / max(‖g‖, ‖g_fd‖)``. For tiny shapes.
- ``directions``: for a few random directions ``v ~ N(0, I)`` per array, the
  directional derivative ``g·v`` against the difference quotient along ``v``
  (six forward passes per direction, whatever the array's size); the error is
  ``|g·v - fd| / max(‖g‖, |fd|)``. Since ``(g - g_true)·v`` has standard
  deviation ``‖g - g_true‖``, this estimates the same quantity as ``entries``
  mode without touching every entry, so it scales to larger shapes.

The difference quotient along a direction ``d`` is the fourth-order central
difference

    (8 [f(θ + εd) - f(θ - εd)] - [f(θ + 2εd) - f(θ - 2εd)]) / 12ε

whose truncation error is O(ε^4) rather than the O(ε^2) of the two-point
form, so the step can be large enough to keep round-off (about
``eps_mach |f| / ε``) small. It is taken at ε and ε/2 and extrapolated
(Richardson: ``q(ε/2) + (q(ε/2) - q(ε)) / 15``), which cancels the ε^4 term:
a loss strongly curved along a direction (a three-layer tanh stack, seen
drawn) left ``1.9e-6`` of truncation error at ε = 1e-4 without it, and
``2e-10`` at ε = 1e-5, the signature of truncation, not of a wrong gradient. The step is ``ε = 1e-4``, and larger for an array
whose gradient is so small next to the loss that round-off would exceed 1e-9
of it: ``ε = eps_mach |f| / (1e-9 ‖g‖)``, at most 1e-3. An array whose
gradient is smaller still (about 1e-11 of the loss: vanished through
saturated gates), so that even that step leaves a round-off above a tenth of
the tolerance, cannot be checked by differences at all; it is reported in
``unresolved`` rather than with an error, and callers draw other data.

Arrays checked: every parameter, the input ``x``, and, when an initial state
is passed in, that state (``state0.layer{k}.h`` and ``.c``).

A ReLU makes the loss non-differentiable where a pre-activation is 0. If a
perturbation switches a ReLU on or off, a difference quotient across the kink
means nothing; we detect it (the set of exact zeros in the forward caches
changes: only a ReLU makes exact zeros) and report that array in ``kinks``
rather than an error. Callers then draw other data; the tests avoid kinks by
construction.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy

from rnncap.autodiff.losses import SoftmaxCrossEntropy
from rnncap.backend import CHECK_DTYPE, to_numpy

DEFAULT_EPS = 1e-4        # truncation error ~ ε^4, round-off ~ eps_mach / ε
MAX_EPS = 1e-3
ROUND_OFF_TARGET = 1e-9   # relative round-off allowed in a difference quotient
TOLERANCE = 1e-6
REFERENCE_DTYPE = numpy.longdouble


class GradcheckResult(NamedTuple):
    errors: dict          # array name -> relative error
    kinks: list           # array names whose difference quotient crossed a ReLU kink
    unresolved: list = [] # array names whose gradient is too small next to the loss for a difference quotient

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)

    def passed(self, tolerance: float = TOLERANCE) -> bool:
        return not self.kinks and not self.unresolved and self.max_error <= tolerance


def _relative_error(a, b) -> float:
    scale = max(float(numpy.linalg.norm(a)), float(numpy.linalg.norm(b)))
    return 0.0 if scale == 0.0 else float(numpy.linalg.norm(a - b)) / scale


def _zero_pattern(tape):
    """Where the forward caches hold exact zeros: which ReLUs are off."""
    fields = [field for layer in tape.layers for cache in layer.caches for field in cache]
    return numpy.concatenate([to_numpy(field == 0).ravel() for field in fields])


def gradcheck(net, x, target, mask=None, loss=None, state0=None, *, mode: str = "entries",
              eps: float = DEFAULT_EPS, directions: int = 3, rng=None) -> GradcheckResult:
    """Compare ``net``'s float64 gradients with central differences; see the module docstring."""
    if net.dtype != CHECK_DTYPE:
        raise ValueError("gradient checks need a float64 network (Network(..., dtype=numpy.float64))")
    if mode not in ("entries", "directions"):
        raise ValueError(f"mode must be 'entries' or 'directions', got {mode!r}")
    rng = rng if rng is not None else numpy.random.default_rng(0)
    loss = loss or SoftmaxCrossEntropy()

    analytic = net.loss_and_grads(x, target, mask, loss, state0)
    eps_mach = float(numpy.finfo(REFERENCE_DTYPE).eps)
    expected = {name: to_numpy(g) for name, g in analytic.grads.items()}
    expected["x"] = to_numpy(analytic.dx)

    # the reference: a NumPy copy in extended precision, whose arrays we perturb in place
    ref = net.astype(REFERENCE_DTYPE, xp=numpy)
    x_ref = to_numpy(x).astype(REFERENCE_DTYPE)
    target, mask = to_numpy(target), None if mask is None else to_numpy(mask)
    state_ref = None
    arrays = dict(ref.params)
    arrays["x"] = x_ref
    if state0 is not None:
        state_ref = [tuple(to_numpy(s).astype(REFERENCE_DTYPE) for s in layer) for layer in state0]
        for k, (layer, dlayer) in enumerate(zip(state_ref, analytic.dstate0)):
            for name, s, ds in zip(net.cell.state_names, layer, dlayer):
                arrays[f"state0.layer{k}.{name}"], expected[f"state0.layer{k}.{name}"] = s, to_numpy(ds)

    base_pattern = _zero_pattern(ref.forward(x_ref, state_ref).tape)

    def f():
        fwd = ref.forward(x_ref, state_ref)
        value, _ = loss(fwd.out, target, mask)
        return value, not numpy.array_equal(_zero_pattern(fwd.tape), base_pattern)

    def difference(array, direction, h):
        """The central difference along ``direction`` (fourth order at steps h and h/2, extrapolated), and
        whether a ReLU switched."""
        original = array.copy()
        values, crossed = {}, False
        for k in (4, 2, 1, -1, -2, -4):                  # in steps of h/2
            array[...] = original + (k * h / 2) * direction
            values[k], kink = f()
            crossed |= kink
        array[...] = original
        at_h = (8 * (values[2] - values[-2]) - (values[4] - values[-4])) / (12 * h)
        at_half = (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (6 * h)
        return float(at_half + (at_half - at_h) / 15), crossed     # Richardson: the h^4 terms cancel

    errors, kinks, unresolved = {}, [], []
    for name, array in arrays.items():
        g = expected[name].astype(numpy.float64)
        g_norm = float(numpy.linalg.norm(g))
        h = eps if g_norm == 0 else min(max(eps, eps_mach * abs(analytic.loss) / (ROUND_OFF_TARGET * g_norm)),
                                         max(eps, MAX_EPS))
        if g_norm > 0 and eps_mach * abs(float(analytic.loss)) / (h * g_norm) > TOLERANCE / 10:
            unresolved.append(name)                      # round-off alone would be near the tolerance
            continue
        crossed = False
        if mode == "entries":
            fd = numpy.zeros(array.shape)
            for i in numpy.ndindex(*array.shape):
                unit = numpy.zeros(array.shape, dtype=REFERENCE_DTYPE)
                unit[i] = 1
                fd[i], kink = difference(array, unit, h)
                crossed |= kink
            error = _relative_error(g, fd)
        else:
            error = 0.0
            for _ in range(directions):
                v = rng.normal(size=array.shape)
                fd, kink = difference(array, v.astype(REFERENCE_DTYPE), h)
                crossed |= kink
                scale = max(g_norm, abs(fd))
                error = max(error, 0.0 if scale == 0.0 else abs(float((g * v).sum()) - fd) / scale)
        if crossed:
            kinks.append(name)
        else:
            errors[name] = error
    return GradcheckResult(errors, kinks, unresolved)
