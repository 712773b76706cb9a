"""The stack: parameter counting, the equal-parameters rule, truncated BPTT, losses."""

from __future__ import annotations

import hashlib
import math

import numpy
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncap.autodiff.losses import MultiSoftmaxCrossEntropy, SoftmaxCrossEntropy, SquaredError
from rnncap.backend import to_numpy
from rnncap.cells import CELLS, GRU, IRNN, LSTM, CellHParams, PlusRNN, make_cell
from rnncap.errors import RnncapError
from rnncap.network import MAX_DEPTH, Network, count_params, param_shapes, units_for_budget
from rnncap.population import stack
from rnncap.tasks import TASKS, make_task

cell_names = st.sampled_from(sorted(CELLS))


@st.composite
def architectures(draw):
    cell = draw(cell_names)
    depth = draw(st.integers(CELLS[cell].min_depth, MAX_DEPTH))
    return cell, depth, draw(st.integers(1, 70)), draw(st.integers(1, 30))


@settings(max_examples=examples(60))
@given(arch=architectures(), n_h=st.integers(1, 40))
def test_count_params_equals_the_arrays(arch, n_h):
    cell, depth, n_in, n_out = arch
    net = Network(cell, depth, n_in, n_out, n_h, rng=0)
    assert count_params(cell, depth, n_in, n_out, n_h) == sum(v.size for v in net.params.values())
    assert {k: v.shape for k, v in net.params.items()} == param_shapes(cell, depth, n_in, n_out, n_h)


@pytest.mark.parametrize("cell,per_layer", [
    ("rnn", lambda i, n: n * (i + n + 1) + n),
    ("irnn", lambda i, n: n * (i + n + 1) + n),
    ("ugrnn", lambda i, n: 2 * n * (i + n + 1) + n),
    ("gru", lambda i, n: 3 * n * (i + n + 1) + n),
    ("lstm", lambda i, n: 4 * n * (i + n + 1) + 2 * n),
    ("plusrnn", lambda i, n: 4 * n * (i + n + 1) + n),
])
def test_count_params_closed_form(cell, per_layer):
    """The formula ``rnncap cells`` prints, written out independently."""
    n_in, n_out, n, depth = 7, 3, 5, 2
    projection = n_in * n + n if cell == "plusrnn" else 0
    first_in = n if cell == "plusrnn" else n_in
    expected = projection + per_layer(first_in, n) + per_layer(n, n) + n * n_out + n_out
    assert count_params(cell, depth, n_in, n_out, n) == expected


@settings(max_examples=examples(60))
@given(arch=architectures(), budget=st.integers(1, 200_000))
def test_units_for_budget_is_the_largest_that_fits(arch, budget):
    cell, depth, n_in, n_out = arch
    smallest = count_params(cell, depth, n_in, n_out, 1)
    if budget < smallest:
        with pytest.raises(RnncapError, match="too small"):
            units_for_budget(cell, depth, n_in, n_out, budget)
        return
    n_h = units_for_budget(cell, depth, n_in, n_out, budget)
    assert count_params(cell, depth, n_in, n_out, n_h) <= budget < count_params(cell, depth, n_in, n_out, n_h + 1)


def test_lstm_budget_example_from_the_issue():
    n_h = units_for_budget("lstm", 2, 64, 2, 10_000)
    assert count_params("lstm", 2, 64, 2, n_h) <= 10_000 < count_params("lstm", 2, 64, 2, n_h + 1)


@pytest.mark.parametrize("bad,match", [
    (dict(cell="plusrnn", depth=1), "needs depth >= 2"),
    (dict(cell="gru", depth=0), "depth must be between 1 and 8"),
    (dict(cell="gru", depth=9), "depth must be between 1 and 8"),
    (dict(cell="transformer", depth=1), "unknown cell"),
    (dict(cell="gru", depth=1, n_h=0), "units must be >= 1"),
])
def test_impossible_networks_are_refused(bad, match):
    args = dict(cell="gru", depth=1, n_in=3, n_out=2, n_h=4) | bad
    with pytest.raises(RnncapError, match=match):
        Network(args["cell"], args["depth"], args["n_in"], args["n_out"], args["n_h"], rng=0)


@pytest.mark.parametrize("cell,nonlinearity", [("irnn", "tanh"), ("plusrnn", "relu")])
def test_fixed_nonlinearities_are_refused(cell, nonlinearity):
    with pytest.raises(RnncapError, match="does not take nonlinearity"):
        Network(cell, 2, 3, 2, 4, CellHParams(nonlinearity=nonlinearity), rng=0)


def test_same_seed_same_parameters_and_float32_by_default():
    a, b = Network("lstm", 2, 5, 3, 7, rng=11), Network("lstm", 2, 5, 3, 7, rng=numpy.random.default_rng(11))
    for name in a.params:
        assert a.params[name].dtype == numpy.float32
        numpy.testing.assert_array_equal(a.params[name], b.params[name])


# sha256 (first 16 hex digits) of every initial parameter, name and float64 bytes in order, computed
# before the parameter layout was walked once for both shapes and initialisation (issue 9). The
# values depend on numpy.random.Generator.normal's stream, which NumPy keeps across its releases
# except where a release note says otherwise.
INITIAL_PARAMS_SHA256 = {
    ("gru", 1, 0, 1.0, 0.0): "994eb1bec079990e", ("gru", 1, 0, 0.7, 0.3): "ef1479b12c377e86",
    ("gru", 3, 7, 1.0, 0.0): "e6d154c29fa2e229", ("gru", 3, 7, 0.7, 0.3): "e63f4df061d31f76",
    ("irnn", 1, 0, 1.0, 0.0): "59f0399f628a55be", ("irnn", 1, 0, 0.7, 0.3): "f25d1262e6ba7975",
    ("irnn", 3, 7, 1.0, 0.0): "de2641731a598fbb", ("irnn", 3, 7, 0.7, 0.3): "3885f51851c7e31f",
    ("lstm", 1, 0, 1.0, 0.0): "ac281696c161a7f8", ("lstm", 1, 0, 0.7, 0.3): "75e0cb9964b21905",
    ("lstm", 3, 7, 1.0, 0.0): "8a15cdb0d00414c8", ("lstm", 3, 7, 0.7, 0.3): "d3da21c56fb467c4",
    ("plusrnn", 2, 0, 1.0, 0.0): "5bb36f3be2d1d9f0", ("plusrnn", 2, 0, 0.7, 0.3): "b0adc3dbff250ac0",
    ("plusrnn", 3, 7, 1.0, 0.0): "19af1f0e422e0e7e", ("plusrnn", 3, 7, 0.7, 0.3): "b7c28b10b322a25d",
    ("rnn", 1, 0, 1.0, 0.0): "f9da87c5aec4f59d", ("rnn", 1, 0, 0.7, 0.3): "4260b83157461c3a",
    ("rnn", 3, 7, 1.0, 0.0): "b3ac2e184ceb34d5", ("rnn", 3, 7, 0.7, 0.3): "0cf891639fc91c7a",
    ("ugrnn", 1, 0, 1.0, 0.0): "ed81ad5421e14501", ("ugrnn", 1, 0, 0.7, 0.3): "f1183df1f0a3a871",
    ("ugrnn", 3, 7, 1.0, 0.0): "b922d14449018a9e", ("ugrnn", 3, 7, 0.7, 0.3): "2d4d2084588aa590",
}


@pytest.mark.parametrize("case", sorted(INITIAL_PARAMS_SHA256))
def test_same_seed_gives_the_same_initial_parameters_as_before(case):
    cell, depth, seed, weight_scale, bias_scale = case
    net = Network(cell, depth, 5, 3, 4, CellHParams(weight_scale=weight_scale, bias_scale=bias_scale), seed,
                  dtype=numpy.float64)
    digest = hashlib.sha256()
    for name, value in net.params.items():
        digest.update(name.encode())
        digest.update(numpy.ascontiguousarray(value).tobytes())
    assert digest.hexdigest()[:16] == INITIAL_PARAMS_SHA256[case]


def test_a_cell_instance_is_used_as_given():
    """``GRU(b_fg=3.0, nonlinearity="relu")`` keeps both: the same network as the name with those hparams."""
    cell = GRU(b_fg=3.0, nonlinearity="relu")
    scales = CellHParams(weight_scale=0.8, bias_scale=0.2)                  # initial scales still apply
    net = Network(cell, 2, 3, 2, 4, scales, 5, dtype=numpy.float64)
    assert net.cell == cell
    by_name = Network("gru", 2, 3, 2, 4, CellHParams(nonlinearity="relu", b_fg=3.0, weight_scale=0.8,
                                                      bias_scale=0.2), 5, dtype=numpy.float64)
    default = Network("gru", 2, 3, 2, 4, scales, 5, dtype=numpy.float64)
    for name in net.params:
        numpy.testing.assert_array_equal(net.params[name], by_name.params[name])
    x = numpy.random.default_rng(0).normal(size=(5, 3, 3))
    numpy.testing.assert_array_equal(net.forward(x).out, by_name.forward(x).out)
    assert not numpy.allclose(net.forward(x).out, default.forward(x).out)
    assert make_cell(net.cell.name, net.hp) == cell                         # net.hp names the cell it runs


@pytest.mark.parametrize("cell,hp", [
    (PlusRNN(b_fg=-0.5, b_fg_y=2.5), CellHParams(bias_scale=0.3)),
    (PlusRNN(b_fg=-0.5, b_fg_y=2.5), CellHParams(b_fg=-0.5, b_fg_y=2.5)),  # agreeing: accepted
    (LSTM(nonlinearity="relu", b_fg=0.0), CellHParams(nonlinearity="relu")),
    (IRNN(), CellHParams(weight_scale=0.5)),
])
def test_a_cell_instance_and_agreeing_hparams(cell, hp):
    net = Network(cell, 2, 3, 2, 4, hp, 0)
    assert net.cell == cell
    assert make_cell(net.cell.name, net.hp) == cell
    assert (net.hp.weight_scale, net.hp.bias_scale) == (hp.weight_scale, hp.bias_scale)


@pytest.mark.parametrize("cell,hp,match", [
    (GRU(b_fg=3.0), CellHParams(b_fg=2.0), "b_fg=3.0 but the CellHParams say b_fg=2.0"),
    (GRU(nonlinearity="relu"), CellHParams(nonlinearity="tanh"), "nonlinearity='relu' but"),
    (PlusRNN(b_fg_y=2.0), CellHParams(b_fg_y=0.5), "b_fg_y=2.0 but"),
    (PlusRNN(), CellHParams(nonlinearity="relu"), "does not take nonlinearity"),
    (IRNN(nonlinearity="tanh"), None, "does not take nonlinearity"),
])
def test_a_cell_instance_and_disagreeing_hparams_are_refused(cell, hp, match):
    with pytest.raises(RnncapError, match=match):
        Network(cell, 2, 3, 2, 4, hp, 0)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_grad_false_skips_the_input_gradient_only(cell):
    """Same gradients, bit for bit; no input gradient (the +RNN's too: no GEMM back through its projection)."""
    depth = CELLS[cell].min_depth + 1
    rng = numpy.random.default_rng(3)
    net = Network(cell, depth, 3, 4, 5, CellHParams(bias_scale=0.3), rng, dtype=numpy.float64)
    x = rng.normal(size=(6, 2, 3))
    target = rng.integers(0, 4, size=(6, 2))
    with_dx = net.loss_and_grads(x, target)
    without = net.loss_and_grads(x, target, input_grad=False)
    assert with_dx.dx.shape == x.shape and without.dx is None
    assert without.loss == with_dx.loss
    for name in net.params:
        numpy.testing.assert_array_equal(without.grads[name], with_dx.grads[name], err_msg=name)


@settings(max_examples=examples(40), deadline=None)
@given(cell=cell_names, extra_depth=st.integers(0, 2), T=st.integers(1, 6), S=st.integers(1, 7),
       members=st.sampled_from([(), (3,)]), seed=st.integers(0, 2**32 - 1))
def test_input_steps_equals_the_full_input_gemms(cell, extra_depth, T, S, members, seed):
    """The fast path for inputs that are zero after S steps gives the full GEMMs' loss, outputs and gradients."""
    depth = CELLS[cell].min_depth + extra_depth
    rng = numpy.random.default_rng(seed)
    net = Network(cell, depth, 3, 4, 5, CellHParams(bias_scale=0.3), rng, dtype=numpy.float64)
    if members:
        net = stack([Network(cell, depth, 3, 4, 5, CellHParams(bias_scale=0.3), rng, dtype=numpy.float64)
                     for _ in range(members[0])])
    x = rng.normal(size=(*members, T, 2, 3))
    x[..., S:, :, :] = 0.0                                    # the promise that input_steps makes
    target = rng.integers(0, 4, size=(*members, T, 2))
    full = net.loss_and_grads(x, target)
    fast = net.loss_and_grads(x, target, input_steps=S)
    numpy.testing.assert_allclose(fast.loss, full.loss, rtol=1e-12)
    numpy.testing.assert_allclose(fast.out, full.out, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(fast.dx, full.dx, rtol=1e-12, atol=1e-14)
    for name in net.params:
        numpy.testing.assert_allclose(fast.grads[name], full.grads[name], rtol=1e-12, atol=1e-14, err_msg=name)


@settings(max_examples=examples(30), deadline=None)
@given(cell=cell_names, members=st.sampled_from([(), (3,)]), seed=st.integers(0, 2**32 - 1))
def test_the_transposed_recurrent_weights_change_nothing_but_speed(cell, members, seed):
    """The backward pass reads W_h from a copy laid out as its transpose: same values, same gradients."""
    from rnncap.autodiff import bptt

    W = numpy.random.default_rng(seed).normal(size=(*members, 4, 12))
    rows = bptt.rows_of_transpose(W)
    numpy.testing.assert_array_equal(rows, W)
    assert rows.swapaxes(-1, -2).flags.c_contiguous and not W.swapaxes(-1, -2).flags.c_contiguous
    rng = numpy.random.default_rng(seed)
    make = lambda: Network(cell, CELLS[cell].min_depth + 1, 3, 4, 6, CellHParams(bias_scale=0.3), rng,  # noqa: E731
                           dtype=numpy.float64)
    net = stack([make() for _ in range(members[0])]) if members else make()
    x, target = rng.normal(size=(*members, 4, 2, 3)), rng.integers(0, 4, size=(*members, 4, 2))
    fast = net.loss_and_grads(x, target)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bptt, "rows_of_transpose", lambda W: W)
        plain = net.loss_and_grads(x, target)
    for name in net.params:
        numpy.testing.assert_allclose(fast.grads[name], plain.grads[name], rtol=1e-12, atol=1e-14, err_msg=name)
    numpy.testing.assert_allclose(fast.dx, plain.dx, rtol=1e-12, atol=1e-14)


def test_tasks_keep_their_input_steps_promise():
    """A task that declares ``input_steps`` gives batches (and evaluation data) that are zero after them."""
    declared = [name for name, (cls, _) in TASKS.items() if cls.input_steps is not None]
    assert {"capacity", "memory", "rcf"} <= set(declared)
    for name in declared:
        task = make_task(name, {"unroll": 4})
        rng = numpy.random.default_rng(0)
        for step in range(3):
            x = to_numpy(task.batch(step, rng).x)
            assert x[:task.input_steps].any() and not x[task.input_steps:].any(), name


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_truncated_bptt_two_windows_equal_one_sequence(xp, cell):
    """Gradients of a sequence = gradients of its two halves, state and dstate carried across."""
    depth = CELLS[cell].min_depth + 1
    rng = numpy.random.default_rng(5)
    net = Network(cell, depth, 3, 4, 5, CellHParams(bias_scale=0.3), rng, xp=xp, dtype=numpy.float64)
    x = xp.asarray(rng.normal(size=(6, 2, 3)))
    target = xp.asarray(rng.normal(size=(6, 2, 4)))
    loss = SquaredError()
    whole = net.forward(x)
    _, dout = loss(whole.out, target)
    whole_grads = net.backward(whole.tape, dout).grads

    first = net.forward(x[:3])
    second = net.forward(x[3:], state0=first.state)
    numpy.testing.assert_allclose(to_numpy(xp.concatenate([first.out, second.out])), to_numpy(whole.out),
                                  rtol=1e-12, atol=1e-14)
    back2 = net.backward(second.tape, dout[3:])
    back1 = net.backward(first.tape, dout[:3], dstate=back2.dstate0)
    for name in net.params:
        summed = back1.grads[name] + back2.grads[name]   # window 2 used a passed-in state: its h0 grad is 0
        numpy.testing.assert_allclose(to_numpy(summed), to_numpy(whole_grads[name]), rtol=1e-10, atol=1e-13,
                                      err_msg=name)


def test_passed_in_state_is_honoured_and_learned_state_gets_no_gradient():
    rng = numpy.random.default_rng(2)
    net = Network("lstm", 2, 3, 2, 4, rng=rng, dtype=numpy.float64)
    x = rng.normal(size=(3, 2, 3))
    state0 = [(rng.normal(size=(2, 4)), rng.normal(size=(2, 4))) for _ in range(2)]
    learned, passed = net.forward(x), net.forward(x, state0)
    assert not numpy.allclose(learned.out, passed.out)
    result = net.loss_and_grads(x, numpy.zeros((3, 2), dtype=int), loss=SoftmaxCrossEntropy(), state0=state0)
    assert not result.grads["layer0.h0"].any() and not result.grads["layer1.c0"].any()
    assert all(numpy.abs(d).sum() > 0 for layer in result.dstate0 for d in layer)


@settings(max_examples=examples(60), deadline=None)
@given(classes=st.integers(2, 20), heads=st.sampled_from([1, 2]), scale=st.sampled_from([1.0, 30.0, 300.0]),
       seed=st.integers(0, 2**32 - 1))
def test_softmax_losses_match_scipy(classes, heads, scale, seed):
    """The cross-entropies (the short-class-axis path and the reduction path) against SciPy's logsumexp and
    softmax, to 1e-12 of the loss even where it is tiny (a well-fitted target)."""
    from scipy.special import softmax
    rng = numpy.random.default_rng(seed)
    out = scale * rng.normal(size=(3, 4, heads * classes))
    target = rng.integers(0, classes, size=(3, 4, heads))
    mask = (rng.random((3, 4)) < 0.7).astype(float)
    mask[0, 0] = 1.0
    logits = out.reshape(3, 4, heads, classes)
    nll = _exact_nll(logits, target)
    expected = (nll * mask[..., None]).sum() / (mask.sum() * heads)
    dlogits = (softmax(logits, axis=-1) - numpy.eye(classes)[target]) * mask[..., None, None] / (mask.sum() * heads)
    loss = MultiSoftmaxCrossEntropy(heads) if heads > 1 else SoftmaxCrossEntropy()
    value, dout = loss(out, target if heads > 1 else target[..., 0], mask)
    numpy.testing.assert_allclose(value, expected, rtol=1e-12)
    numpy.testing.assert_allclose(dout, dlogits.reshape(out.shape), rtol=1e-9, atol=1e-15)


def _exact_nll(logits, target):
    """-log softmax at the target, to the last digit: ``logsumexp - z_t`` where that is large, and where the
    target is the largest logit ``log1p`` of the others' terms (a difference of two nearly equal numbers
    would keep only about 1e-16 / loss of its digits)."""
    from scipy.special import logsumexp
    z_t = numpy.take_along_axis(logits, target[..., None], axis=-1)[..., 0]
    with numpy.errstate(over="ignore"):                      # where the target is not the largest: not used
        others = numpy.exp(logits - z_t[..., None])
        numpy.put_along_axis(others, target[..., None], 0.0, axis=-1)
        top = logits.max(axis=-1) == z_t
        return numpy.where(top, numpy.log1p(others.sum(axis=-1)), logsumexp(logits, axis=-1) - z_t)


@settings(max_examples=examples(40), deadline=None)
@given(classes=st.integers(2, 6), noise=st.floats(0.0, 0.5), scale=st.sampled_from([1.0, 10.0, 100.0]),
       seed=st.integers(0, 2**32 - 1))
def test_the_label_noise_loss_and_its_gradient(classes, noise, scale, seed):
    """-log((1 - noise) q + noise / K) by the formula, and its gradient against central differences (float64);
    noise 0 is the cross-entropy exactly."""
    rng = numpy.random.default_rng(seed)
    out = scale * rng.normal(size=(3, 4, classes))
    target = rng.integers(0, classes, size=(3, 4))
    mask = (rng.random((3, 4)) < 0.7).astype(float)
    mask[0, 0] = 1.0
    loss = SoftmaxCrossEntropy(noise)

    def formula(o):
        nll = _exact_nll(o, target)
        p = (1 - noise) * numpy.exp(-nll) + noise / classes
        with numpy.errstate(divide="ignore", invalid="ignore"):
            near_one = -numpy.log1p(-(1 - noise) * -numpy.expm1(-nll) - noise * (1 - 1 / classes))   # p near 1
        return (numpy.where(p > 0.5, near_one, -numpy.log(p)) * mask).sum() / mask.sum()

    value, dout = loss(out, target, mask)
    numpy.testing.assert_allclose(value, formula(out), rtol=1e-10)
    h, numeric = 1e-4, numpy.zeros_like(out)         # round-off |loss| 1e-16 / h stays below 1e-10; truncation h^2 too
    for i in numpy.ndindex(out.shape):
        step = numpy.zeros_like(out)
        step[i] = h
        numeric[i] = (float(loss(out + step, target, mask)[0]) - float(loss(out - step, target, mask)[0])) / (2 * h)
    numpy.testing.assert_allclose(dout, numeric, rtol=1e-5, atol=1e-8)
    if noise == 0.0:
        plain = SoftmaxCrossEntropy()(out, target, mask)
        assert float(value) == float(plain[0]) and numpy.array_equal(dout, plain[1])


def test_label_noise_out_of_range_is_refused():
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(RnncapError, match="label noise"):
            SoftmaxCrossEntropy(bad)


def test_losses_known_values():
    out = numpy.zeros((1, 2, 4))                                            # uniform softmax over 4
    value, dout = SoftmaxCrossEntropy()(out, numpy.array([[0, 3]]))
    assert math.isclose(float(value), math.log(4))
    numpy.testing.assert_allclose(dout[0, 0], [-0.375, 0.125, 0.125, 0.125])   # (p - onehot) / 2 positions
    value, _ = MultiSoftmaxCrossEntropy(heads=2)(out, numpy.zeros((1, 2, 2), dtype=int))
    assert math.isclose(float(value), math.log(2))
    value, dout = SquaredError()(numpy.ones((1, 2, 3)), numpy.zeros((1, 2, 3)), numpy.array([[1.0, 0.0]]))
    assert float(value) == 3.0 and dout[0, 1].sum() == 0 and dout[0, 0].tolist() == [2.0, 2.0, 2.0]


def test_a_mask_with_no_step_is_an_error():
    with pytest.raises(RnncapError, match="selects no step"):
        SoftmaxCrossEntropy()(numpy.zeros((2, 1, 3)), numpy.zeros((2, 1), dtype=int), numpy.zeros((2, 1)))


def test_wrong_input_shape_is_an_error():
    net = Network("gru", 1, 3, 2, 4, rng=0)
    with pytest.raises(RnncapError, match=r"shape \(T, B, 3\)"):
        net.forward(numpy.zeros((5, 2, 4)))


def test_cupy_forward_matches_numpy(cupy):
    """The same parameters give the same outputs on both backends (float64)."""
    for cell in sorted(CELLS):
        depth = CELLS[cell].min_depth
        ref = Network(cell, depth, 3, 2, 5, CellHParams(bias_scale=0.5), 4, dtype=numpy.float64)
        other = ref.astype(numpy.float64, xp=cupy)
        x = numpy.random.default_rng(0).normal(size=(4, 3, 3))
        numpy.testing.assert_allclose(to_numpy(other.forward(cupy.asarray(x)).out), ref.forward(x).out,
                                      rtol=1e-12, atol=1e-12)
