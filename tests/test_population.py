"""Populations: K networks trained as one array program give each member what it gets alone."""

from __future__ import annotations

import json
import math

import numpy
import pytest
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnncap.cells import CELLS, CellHParams
from rnncap.cli import app
from rnncap.errors import RnncapError
from rnncap.network import Network
from rnncap.optim import LR_SCHEDULES
from rnncap.population import member, stack, train_population
from rnncap.store import Store
from rnncap.tasks import make_task
from rnncap.train import TrainConfig, train
from rnncap.trial import make_trial, run_trial, run_trials

runner = CliRunner()
cells = st.sampled_from(sorted(CELLS))


def _depth(cell: str, depth: int) -> int:
    return max(depth, CELLS[cell].min_depth)


@settings(max_examples=examples(12), deadline=None)
@given(cell=cells, depth=st.integers(1, 3), K=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_a_population_has_each_members_gradients(cell, depth, K, seed):
    """float64: the stacked network's gradients are each member's own, to rounding."""
    depth, rng = _depth(cell, depth), numpy.random.default_rng(seed)
    hps = [CellHParams(b_fg=float(rng.uniform(-1, 3)), b_fg_y=float(rng.uniform(-1, 3)), bias_scale=0.5)
           if cell != "irnn" else CellHParams() for _ in range(K)]
    nets = [Network(cell, depth, 3, 4, 5, hp, rng=int(rng.integers(1 << 30)), dtype=numpy.float64) for hp in hps]
    x = rng.normal(size=(K, 6, 2, 3))                                          # (K, T, B, n_in)
    target = rng.integers(0, 4, size=(K, 6, 2))
    mask = (rng.random((K, 6, 2)) < 0.5).astype(float)
    mask[:, -1] = 1.0
    together = stack(nets).loss_and_grads(x, target, mask)
    assert together.loss.shape == (K,)
    for k, net in enumerate(nets):
        alone = net.loss_and_grads(x[k], target[k], mask[k])
        assert math.isclose(float(together.loss[k]), alone.loss, rel_tol=1e-12)
        for name, g in alone.grads.items():
            numpy.testing.assert_allclose(together.grads[name][k], g, rtol=1e-10, atol=1e-13, err_msg=name)


def test_member_and_stack_are_inverse():
    nets = [Network("plusrnn", 2, 3, 2, 4, CellHParams(b_fg=b, b_fg_y=-b), rng=k) for k, b in enumerate((0.0, 2.0))]
    pop = stack(nets)
    assert pop.members == (2,) and pop.n_params == nets[0].n_params
    for k, net in enumerate(nets):
        one = member(pop, k)
        assert one.cell == net.cell and one.members == ()
        assert all(numpy.array_equal(one.params[n], net.params[n]) for n in net.params)


def _capacity_member(k: int, cell: str, lr: float, b_fg: float, clip: float | None, steps: int,
                     schedule: str = "exponential", tail: float = 0.0):
    """Member k of a capacity-task population; plain cross-entropy, whose unbounded loss lets a member diverge.
    Members differ in ``b``: trained on whole datasets (``tail``), the smaller ones are padded."""
    task = make_task("capacity", {"n_samples": 60 + 13 * k, "n_in": 5, "unroll": 3, "seed": k, "batch_size": 32,
                                  "label_noise": 0.0})
    net = Network(cell, _depth(cell, 1), 5, 2, 4, CellHParams(b_fg=b_fg, weight_scale=0.7 + 0.2 * k), rng=k)
    config = TrainConfig(lr=lr, lr_decay=0.3, lr_schedule=schedule, full_batch_tail=tail, clip=clip, l2=1e-4 * k,
                         steps=steps, eval_every=10, seed=k)
    return net, task, config


@settings(max_examples=examples(8), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cell=cells, K=st.integers(2, 5), lrs=st.lists(st.floats(1e-3, 3e-2), min_size=5, max_size=5),
       b_fgs=st.lists(st.floats(-1.0, 3.0), min_size=5, max_size=5), diverging=st.integers(0, 4),
       schedule=st.sampled_from(LR_SCHEDULES), tail=st.sampled_from([0.0, 0.3]))
def test_members_train_as_they_would_alone(cell, K, lrs, b_fgs, diverging, schedule, tail):
    """Each member's status, steps and loss as alone; one member is made to diverge and is frozen."""
    def member_k(k):
        lr, clip = (1e4, None) if k == diverging % K else (lrs[k], 5.0)
        return _capacity_member(k, cell, lr, b_fgs[k], clip, steps=40, schedule=schedule, tail=tail)

    alone = [train(*member_k(k)) for k in range(K)]
    members = [member_k(k) for k in range(K)]
    together = train_population(*map(list, zip(*members)))
    assert together[diverging % K].status == "infeasible"
    for a, p in zip(alone, together):
        assert (a.status, a.steps, a.reason) == (p.status, p.steps, p.reason)
        if a.status == "done":
            assert math.isclose(a.loss, p.loss, rel_tol=1e-4)
            assert math.isclose(a.metrics["bits"], p.metrics["bits"], rel_tol=1e-3, abs_tol=1e-6)


def test_run_trials_groups_by_shape_and_keeps_the_order():
    """Full-batch trials with different b (or another nonlinearity) cannot share a population: they train
    apart, outcomes in order."""
    def trial(n_samples, lr, nonlinearity="tanh"):
        return make_trial("capacity", {"n_samples": n_samples, "n_in": 4, "unroll": 2}, "gru", 1, 3,
                          {"lr": lr, "steps": 20, "nonlinearity": nonlinearity}, seed=1)
    trials = [trial(30, 1e-2), trial(40, 1e-2), trial(30, 3e-2), trial(30, 1e-2, "relu")]
    together = run_trials(trials)
    assert [outcome["population"] for outcome in together] == [2, 1, 2, 1]    # the two b = 30 tanh trials together
    for t, outcome in zip(trials, together):
        assert outcome["objective"] == pytest.approx(run_trial(t)["objective"], rel=1e-6)


def test_trials_that_differ_in_a_shared_setting_train_apart():
    """Every setting a population's members must share keeps trials apart, instead of failing them together."""
    def trial(**settings):
        return make_trial("capacity", {"n_samples": 30, "n_in": 4, "unroll": 2, "batch_size": 8}, "rnn", 1, 3,
                          {"lr": 1e-2, "steps": 20, **settings}, seed=1)
    trials = [trial(), trial(checkpoint_every=7), trial(lr_schedule="cosine"), trial(full_batch_tail=0.5), trial()]
    together = run_trials(trials)
    assert [outcome["population"] for outcome in together] == [2, 1, 1, 1, 2]
    for t, outcome in zip(trials, together):
        assert outcome["objective"] == pytest.approx(run_trial(t)["objective"], rel=1e-6)


def test_tune_gives_the_same_trials_with_and_without_a_population(tmp_path):
    """The issue's check: a random study of 8 trials, --population 8 against 1, trial for trial."""
    results = {}
    for K in (8, 1):
        store = str(tmp_path / f"p{K}.sqlite")
        args = ["tune", "--study", "s", "--cell", "rnn", "--budget", "300", "--strategy", "random", "--trials", "8",
                "--steps", "150", "--population", str(K), "--store", store, "-o", "n_in=8", "-o", "batch_size=64",
                "--json"]
        assert json.loads(runner.invoke(app, args).stdout)["trials"] == 8
        with Store(store) as db:
            results[K] = {json.dumps(r["hparams"], sort_keys=True): r for r in db.trials("s")}
    assert results[8].keys() == results[1].keys()
    for key, row in results[1].items():
        other = results[8][key]
        assert row["status"] == other["status"]
        if row["objective"] is not None:
            assert other["objective"] == pytest.approx(row["objective"], rel=1e-3, abs=1e-6)


@settings(max_examples=examples(30), deadline=None)
@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 6), b=st.integers(2, 40), K=st.integers(1, 4),
       rest=st.sampled_from([(), (3,)]), constant=st.sampled_from([0.0, 1.0]))
def test_sample_gather_equals_take(seed, T, b, K, rest, constant):
    """Copying only the steps where samples differ gives exactly take(a, rows, axis=1), member first for K."""
    from rnncap.tasks.base import SampleGather

    rng = numpy.random.default_rng(seed)
    a = numpy.full((T, b) + rest, constant, dtype=numpy.float32)
    varying = rng.random(T) < 0.5
    a[varying] = rng.normal(size=(int(varying.sum()), b) + rest)
    rows = rng.integers(0, b, size=K * 5)
    expected = numpy.take(a, rows, axis=1)                                       # (T, K*5, ...)
    assert numpy.array_equal(SampleGather(a)(rows), expected)
    by_member = numpy.moveaxis(expected.reshape(T, K, 5, *rest), 1, 0)          # (K, T, 5, ...)
    assert numpy.array_equal(SampleGather(a)(rows, members=K), by_member)


def _keys(seeds):
    from rnncap.tasks.base import stream_key

    return numpy.asarray([stream_key(numpy.random.default_rng(seed)) for seed in seeds])


@settings(max_examples=examples(40), deadline=None)
@given(seeds=st.lists(st.integers(0, 2**63), min_size=1, max_size=5), size=st.integers(1, 50),
       step=st.integers(0, 10**9), data=st.data())
def test_hashed_rows_are_each_members_own_distinct_samples(seeds, size, step, data):
    """The GPU's minibatch rows: distinct, in range, each member's the same alone as in any population."""
    from rnncap.tasks.base import hashed_rows, stream_key

    counts = numpy.asarray(data.draw(st.lists(st.integers(size + 1, 3000), min_size=len(seeds),
                                              max_size=len(seeds))))
    keys = _keys(seeds)
    rows = hashed_rows(keys, step, size, counts)
    assert rows.shape == (len(seeds), size)
    assert ((rows >= 0) & (rows < counts[:, None])).all()
    assert (numpy.diff(rows, axis=1) > 0).all()                                   # distinct, in a fixed order
    for k in range(len(seeds)):
        assert numpy.array_equal(hashed_rows(keys[k:k + 1], step, size, counts[k:k + 1])[0], rows[k])
    rng = numpy.random.default_rng(seeds[0])
    rng.random(3)                                                   # the key is the seed's, not the state's
    assert stream_key(rng) == keys[0]


def test_hashed_rows_are_uniform_subsets_that_change_with_seed_and_step():
    """Fixed keys (the outcome is decided, never flaky): every sample as often as the others, far inside a
    chi-square bound, and no two seeds or steps alike."""
    from rnncap.tasks.base import hashed_rows

    keys = _keys([0, 1])
    rows = numpy.concatenate([hashed_rows(keys, step, 3, [10, 10]) for step in range(20000)], axis=1)   # (2, 60000)
    for member_rows in rows:
        observed = numpy.bincount(member_rows, minlength=10)
        chi2 = ((observed - 6000.0) ** 2 / 6000.0).sum()
        assert chi2 < 27.9                                                        # 9 degrees of freedom: p = 0.001
    assert (rows[0] != rows[1]).mean() > 0.6                                     # two seeds
    assert (rows[:, 3:] != rows[:, :-3]).mean() > 0.6                            # two steps


def test_numpy_minibatches_are_each_generators_own_draws():
    """On NumPy the rows are what each member's generator draws (rng.choice), as training has always drawn them."""
    from rnncap.tasks.base import MinibatchRows

    draw = MinibatchRows([numpy.random.default_rng(seed) for seed in (1, 2)], [50, 70], 20)
    rngs = [numpy.random.default_rng(seed) for seed in (1, 2)]
    for step in range(3):
        expected = [rng.choice(n, size=20, replace=False) for rng, n in zip(rngs, (50, 70))]
        assert numpy.array_equal(draw(step), numpy.stack(expected))


def test_hashed_rows_are_the_same_on_cupy(cupy):
    from rnncap.backend import to_numpy
    from rnncap.tasks.base import MinibatchRows, hashed_rows

    rngs = [numpy.random.default_rng(seed) for seed in (3, 4, 5)]
    keys = _keys((3, 4, 5))
    counts = [50, 1000, 5000]
    expected = hashed_rows(keys, 12345, 40, counts)
    assert numpy.array_equal(to_numpy(MinibatchRows(rngs, counts, 40, cupy)(12345)), expected)
    assert numpy.array_equal(to_numpy(hashed_rows(cupy.asarray(keys), 12345, 40, counts)), expected)


@pytest.mark.parametrize("cell", ["gru", "plusrnn"])
def test_a_population_trains_on_either_backend(xp, cell):
    """The same population on NumPy or CuPy: every member as it trains alone there, one of them diverging."""
    from rnncap.backend import to_numpy

    def members():
        out = []
        for k in range(3):
            task = make_task("capacity", {"n_samples": 50 + 7 * k, "n_in": 5, "unroll": 3, "seed": k,
                                          "batch_size": 16}, xp=xp)
            net = Network(cell, _depth(cell, 1), 5, 2, 4, CellHParams(b_fg=0.5 * k), rng=k, xp=xp)
            lr, clip = (1e4, None) if k == 1 else (1e-2, 5.0)
            out.append((net, task, TrainConfig(lr=lr, clip=clip, steps=30, eval_every=10, seed=k)))
        return out

    alone = [train(*m) for m in members()]
    items = members()
    together = train_population(*map(list, zip(*items)))
    assert [r.status for r in together] == [r.status for r in alone] and together[1].status == "infeasible"
    for (net, _, _), a, p in zip(items, alone, together):
        assert (a.steps, a.reason) == (p.steps, p.reason)
        if a.status == "done":
            assert math.isclose(a.loss, p.loss, rel_tol=1e-4)
            assert all(numpy.isfinite(to_numpy(v)).all() for v in net.params.values())


@pytest.mark.parametrize("cell,depth", [("gru", 1), ("plusrnn", 2), ("lstm", 2)])
def test_gradcheck_of_a_population(cell, depth):
    """`rnncap gradcheck --population K`: each member against central differences, the stack against each member."""
    from rnncap.checks import check_network_gradients

    report = check_network_gradients(cell, depth, population=3)
    assert report["population"] == 3 and report["max_error"] < 1e-6
    assert check_network_gradients(cell, depth)["errors"].keys() == report["errors"].keys()


def test_members_with_different_batches_are_refused():
    """Members that would not stack (another batch size, or one trained full batch) get a clear error."""
    for sizes in ((64, 32), (64, None)):
        tasks = [make_task("capacity", {"n_samples": 500, "batch_size": size, "seed": k}) for k, size in enumerate(sizes)]
        nets = [Network("rnn", 1, 32, 2, 4, rng=k) for k in range(2)]
        with pytest.raises(RnncapError, match="must share"):
            train_population(nets, tasks, [TrainConfig(steps=3, seed=k) for k in range(2)])


class _Killed(Exception):
    """Stands for the process dying mid-step."""


def _outcomes(results) -> list:
    return [(r.status, r.steps, r.loss, r.reason, r.history, r.metrics) for r in results]


@pytest.mark.parametrize("killed_at", [1, 23, 37])
def test_a_killed_population_resumes_as_if_never_stopped(tmp_path, monkeypatch, killed_at):
    """Checkpoints every 10 steps; killed in step ``killed_at`` (one member diverged at step 1, so it is
    frozen in every checkpoint), resumed: every member ends bit for bit as in the run never stopped."""
    def population():
        members = [_capacity_member(k, "ugrnn", 1e4 if k == 1 else 1e-2, 1.0, None if k == 1 else 5.0, steps=45)
                   for k in range(3)]
        nets, tasks, configs = map(list, zip(*members))
        return nets, tasks, [TrainConfig(**{**c.__dict__, "checkpoint_every": 10}) for c in configs]

    whole = train_population(*population())
    assert [r.status for r in whole] == ["done", "infeasible", "done"]

    import rnncap.population as population_module
    real_clip, calls = population_module.clip_by_norm, {"n": 0}

    def clip_then_die(*args):
        calls["n"] += 1
        if calls["n"] == killed_at:
            raise _Killed
        return real_clip(*args)

    path = tmp_path / "population.npz"
    monkeypatch.setattr(population_module, "clip_by_norm", clip_then_die)
    with pytest.raises(_Killed):
        train_population(*population(), checkpoint_path=path)
    monkeypatch.setattr(population_module, "clip_by_norm", real_clip)
    assert path.exists() == (killed_at > 10)
    resumed = train_population(*population(), checkpoint_path=path, resume=True)
    assert _outcomes(resumed) == _outcomes(whole)
    again = train_population(*population(), checkpoint_path=path, resume=True)     # finished: nothing to redo
    assert _outcomes(again)[0][:3] == _outcomes(whole)[0][:3]


def test_a_population_checkpoint_refuses_another_population(tmp_path):
    members = [_capacity_member(k, "gru", 1e-2, 1.0, 5.0, steps=5) for k in range(2)]
    path = tmp_path / "p.npz"
    train_population(*map(list, zip(*members)), checkpoint_path=path)
    with pytest.raises(RnncapError, match="exists: pass --resume"):
        train_population(*map(list, zip(*members)), checkpoint_path=path)
    other = [_capacity_member(k, "gru", 2e-2, 1.0, 5.0, steps=5) for k in range(2)]
    with pytest.raises(RnncapError, match="different run"):
        train_population(*map(list, zip(*other)), checkpoint_path=path, resume=True)
    with pytest.raises(RnncapError, match="different run"):
        train_population(*map(list, zip(*members[:1])), checkpoint_path=path, resume=True)
