"""Training: optimisers, divergence, checkpoints, determinism; the memory task's metric. (The two
capacity measurements: test_measure.py.)"""

from __future__ import annotations

import json
import math

import numpy
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from rnncap.cli import app
from rnncap.errors import RnncapError
from rnncap.network import Network
from rnncap.optim import LR_SCHEDULES, SGD, Adam, RMSProp, add_l2, clip_by_norm, flatten, learning_rate
from rnncap.tasks.capacity import CapacityConfig, CapacityTask, binary_entropy, mutual_information_bits
from rnncap.tasks.memory import MemoryConfig, MemoryTask
from rnncap.train import TrainConfig, train
from rnncap.trial import make_trial, run_trial, split_hparams, trial_key

runner = CliRunner()

# mutual information ------------------------------------------------------------------------

probabilities = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=examples(200))
@given(b=st.integers(1, 10**6), p=probabilities)
def test_mutual_information_properties(b, p):
    bits = mutual_information_bits(b, p)
    assert 0.0 <= bits <= b + 1e-9                                       # never negative, at most b
    assert math.isclose(bits, mutual_information_bits(b, 1.0 - p), rel_tol=1e-9, abs_tol=1e-9)  # symmetric


@settings(max_examples=examples(200))
@given(b=st.integers(1, 10**6), p=st.floats(0.5, 1.0), q=st.floats(0.5, 1.0))
def test_mutual_information_increases_on_the_upper_half(b, p, q):
    low, high = sorted((p, q))
    assert mutual_information_bits(b, low) <= mutual_information_bits(b, high) + 1e-9


@pytest.mark.parametrize("b,p,expected", [
    (100, 0.5, 0.0), (100, 1.0, 100.0), (100, 0.0, 100.0),
    (8, 0.75, 8 * (1 + 0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))),
    (1000, 0.9, 1000 * (1 + 0.9 * math.log2(0.9) + 0.1 * math.log2(0.1))),
])
def test_mutual_information_exact_values(b, p, expected):
    assert math.isclose(mutual_information_bits(b, p), expected, rel_tol=1e-12, abs_tol=1e-12)
    assert binary_entropy(0.5) == 1.0


def test_mutual_information_rejects_an_impossible_accuracy():
    with pytest.raises(ValueError):
        mutual_information_bits(10, 1.5)


# optimisers --------------------------------------------------------------------------------

def _one_param(value=1.0):
    return {"w": numpy.array([value])}, {"w": numpy.array([0.5])}


def test_sgd_momentum_update_by_hand():
    params, grads = _one_param()
    opt = SGD(momentum=0.9)
    state = opt.init(params)
    opt.update(params, grads, state, lr=0.1)                              # v = -0.05
    opt.update(params, grads, state, lr=0.1)                              # v = 0.9 * -0.05 - 0.05
    assert math.isclose(params["w"][0], 1.0 - 0.05 - 0.095)


def test_rmsprop_update_by_hand():
    params, grads = _one_param()
    opt = RMSProp(rho=0.9, eps=0.0)
    state = opt.init(params)
    opt.update(params, grads, state, lr=0.1)                              # s = 0.1 * 0.25
    assert math.isclose(params["w"][0], 1.0 - 0.1 * 0.5 / math.sqrt(0.025))


def test_adam_first_step_moves_by_lr():
    params, grads = _one_param()
    opt = Adam(eps=0.0)
    state = opt.init(params)
    opt.update(params, grads, state, lr=0.01)                             # bias-corrected m/sqrt(v) = 1
    assert math.isclose(params["w"][0], 1.0 - 0.01)
    assert int(state["t"]) == 1


def test_clipping_l2_and_decay():
    g = flatten({"a": numpy.array([3.0]), "b": numpy.array([4.0])})
    assert clip_by_norm(g, 1.0) == 5.0
    assert math.isclose(clip_by_norm(g, None), 1.0) and math.isclose(g[0] / g[1], 0.75)
    members = numpy.array([[3.0, 4.0], [0.3, 0.4], [30.0, 40.0]])         # each member clipped alone
    numpy.testing.assert_allclose(clip_by_norm(members, numpy.array([1.0, 1.0, math.inf])), [5.0, 0.5, 50.0])
    numpy.testing.assert_allclose(members, [[0.6, 0.8], [0.3, 0.4], [30.0, 40.0]])
    params = {"layer0.W_h": numpy.array([2.0]), "layer0.b": numpy.array([3.0])}
    grads = {"layer0.W_h": numpy.array([0.0]), "layer0.b": numpy.array([0.0])}
    assert add_l2(params, grads, 0.5) == 0.5 * 0.5 * 4.0                  # biases are not penalised
    assert grads["layer0.W_h"][0] == 1.0 and grads["layer0.b"][0] == 0.0
    assert learning_rate(1.0, 0.01, 0, 100) == 1.0 and math.isclose(learning_rate(1.0, 0.01, 100, 100), 0.01)


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_every_schedule_falls_from_lr_to_lr_times_decay(schedule):
    """Each schedule starts at lr, ends at lr * decay, falls monotonically, and takes one rate per member."""
    rates = [learning_rate(2.0, 0.01, step, 50, schedule) for step in range(51)]
    assert rates[0] == 2.0 and math.isclose(rates[-1], 0.02)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    lr, decay = numpy.array([1.0, 3.0]), numpy.array([0.1, 0.5])
    numpy.testing.assert_allclose(learning_rate(lr, decay, 7, 20, schedule),
                                  [learning_rate(1.0, 0.1, 7, 20, schedule), learning_rate(3.0, 0.5, 7, 20, schedule)])
    assert math.isclose(learning_rate(1.0, 0.0, 10, 20, "linear"), 0.5)           # halfway, linearly
    assert math.isclose(learning_rate(1.0, 0.0, 10, 20, "cosine"), 0.5)           # and on the cosine


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr_decay=0.0), dict(steps=0), dict(optimizer="adagrad"),
                                 dict(clip=-1.0), dict(l2=-1.0), dict(momentum=1.0), dict(lr_schedule="step"),
                                 dict(full_batch_tail=-0.1), dict(full_batch_tail=1.5)])
def test_bad_training_config_is_refused(bad):
    with pytest.raises(RnncapError):
        TrainConfig(**bad)


def test_hparams_split_and_unknown_names():
    cell_hp, config = split_hparams({"lr": 0.1, "b_fg": 2.0, "steps": 7}, seed=3)
    assert cell_hp.b_fg == 2.0 and config.lr == 0.1 and config.steps == 7 and config.seed == 3
    with pytest.raises(RnncapError, match="unknown hyperparameter"):
        split_hparams({"learning_rate": 0.1})


# training ----------------------------------------------------------------------------------

def test_a_full_batch_tail_trains_on_the_whole_dataset():
    """A tail of 1 is full-batch training from the first step: the same numbers as batch_size None, bit for
    bit; a tail of 0.5 follows the minibatch run for half the steps and then departs from it."""
    def run(batch_size, tail):
        net = Network("rnn", 1, 8, 2, 6, rng=0)
        return train(net, _tiny_capacity(b=40, batch_size=batch_size),
                     TrainConfig(lr=1e-2, steps=30, full_batch_tail=tail, seed=2)), net
    whole, whole_net = run(None, 0.0)
    tail, tail_net = run(8, 1.0)
    assert tail.history == whole.history and tail.loss == whole.loss
    assert all(numpy.array_equal(whole_net.params[k], tail_net.params[k]) for k in whole_net.params)
    minibatch, _ = run(8, 0.0)
    half, _ = run(8, 0.5)
    assert half.history[:15] == minibatch.history[:15] and half.history[15:] != minibatch.history[15:]


def test_lbfgs_trains_on_the_whole_dataset_whatever_the_batch_size():
    """L-BFGS is full batch: a task's minibatch size does not change its run."""
    runs = []
    for batch_size in (None, 8):
        net = Network("rnn", 1, 8, 2, 4, rng=0)
        runs.append(train(net, _tiny_capacity(b=40, batch_size=batch_size),
                          TrainConfig(optimizer="lbfgs", steps=10, seed=2)))
    assert runs[0].history == runs[1].history and runs[0].loss == runs[1].loss
    assert runs[0].metrics == runs[1].metrics


def test_a_full_batch_tail_needs_a_fixed_dataset():
    task = MemoryTask(MemoryConfig(n_in=4, unroll=3))
    net = Network("rnn", 1, task.n_in, task.n_out, 4, rng=0)
    with pytest.raises(RnncapError, match="fixed dataset"):
        train(net, task, TrainConfig(steps=3, full_batch_tail=0.5))


def _tiny_capacity(b=24, **config):
    return CapacityTask(CapacityConfig(n_samples=b, n_in=8, unroll=3, seed=1, **config))


@pytest.mark.parametrize("optimizer,lr", [("adam", 3e-2), ("rmsprop", 1e-2), ("sgd", 0.3), ("lbfgs", 1.0)])
def test_tiny_network_memorises_tiny_dataset(optimizer, lr):
    task = _tiny_capacity()
    net = Network("gru", 1, 8, 2, 8, rng=0)
    result = train(net, task, TrainConfig(optimizer=optimizer, lr=lr, steps=400))
    assert result.status == "done"
    assert result.metrics["accuracy"] == 1.0 and result.metrics["bits"] == 24.0


def test_absurd_learning_rate_is_infeasible_not_an_exception():
    net = Network("rnn", 1, 8, 2, 8, rng=0)
    result = train(net, _tiny_capacity(), TrainConfig(lr=1e4, steps=200, clip=None))
    assert result.status == "infeasible" and result.metrics == {}
    assert "exceeded" in result.reason or "became" in result.reason


def test_a_final_update_that_blows_up_is_infeasible(monkeypatch):
    """The divergence rule also judges the parameters the last update left."""
    import rnncap.train as train_module

    steps = 5
    real = train_module.learning_rate
    monkeypatch.setattr(train_module, "learning_rate",
                        lambda lr, decay, step, total, schedule: 1e6 if step == total - 1
                        else real(lr, decay, step, total, schedule))
    net = Network("rnn", 1, 8, 2, 8, rng=0)
    result = train(net, _tiny_capacity(), TrainConfig(optimizer="sgd", lr=1e-3, steps=steps, clip=None))
    assert result.steps == steps and result.status == "infeasible" and result.metrics == {}


def test_same_seed_same_run_bit_for_bit():
    runs = []
    for _ in range(2):
        trial = make_trial("capacity", {"n_samples": 40, "n_in": 8, "unroll": 3}, "lstm", 2, 5,
                           {"steps": 60, "lr": 0.02, "eval_every": 20}, seed=7)
        runs.append(run_trial(trial))
    assert runs[0]["history"] == runs[1]["history"] and runs[0]["loss"] == runs[1]["loss"]
    assert trial_key(trial) == trial_key(json.loads(json.dumps(trial)))


class _Killed(Exception):
    """Stands for the process dying mid-step."""


@pytest.mark.parametrize("task_name", ["capacity", "memory"])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, monkeypatch, task_name):
    options = {"n_samples": 50, "n_in": 6, "unroll": 3} if task_name == "capacity" else {"n_in": 6, "batch_size": 16}
    trial = make_trial(task_name, options, "ugrnn", 2, 5, {"steps": 90, "lr": 0.02, "eval_every": 30,
                                                           "checkpoint_every": 20}, seed=1)
    whole = run_trial(trial)

    # stopped by a time limit after one step, then resumed
    stopped = tmp_path / "stopped.npz"
    assert run_trial(trial, checkpoint_path=stopped, time_limit=0.0)["steps"] == 1
    assert run_trial(trial, checkpoint_path=stopped, resume=True)["history"] == whole["history"]

    # killed in step 47: the last checkpoint is step 40, and steps 41-47 are redone
    killed = tmp_path / "killed.npz"
    import rnncap.train as train_module
    calls = {"n": 0}
    real_clip = train_module.clip_by_norm

    def clip_then_die(*args):
        calls["n"] += 1
        if calls["n"] == 47:
            raise _Killed
        return real_clip(*args)

    monkeypatch.setattr(train_module, "clip_by_norm", clip_then_die)
    with pytest.raises(_Killed):
        run_trial(trial, checkpoint_path=killed)
    monkeypatch.setattr(train_module, "clip_by_norm", real_clip)
    resumed = run_trial(trial, checkpoint_path=killed, resume=True)
    assert resumed["history"] == whole["history"]
    assert resumed["loss"] == whole["loss"] and resumed["metrics"] == whole["metrics"]


def test_unreadable_and_foreign_checkpoints_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("not a checkpoint")
    trial = make_trial("capacity", {"n_samples": 20, "n_in": 4}, "rnn", 1, 3, {"steps": 5}, seed=0)
    with pytest.raises(RnncapError, match="cannot read checkpoint"):
        run_trial(trial, checkpoint_path=bad, resume=True)
    good = tmp_path / "good.npz"
    run_trial(trial, checkpoint_path=good)
    with pytest.raises(RnncapError, match="exists: pass --resume"):
        run_trial(trial, checkpoint_path=good)
    other = {**trial, "hparams": {"steps": 6}}
    with pytest.raises(RnncapError, match="different run"):
        run_trial(other, checkpoint_path=good, resume=True)


# the memory task's metric ------------------------------------------------------------------

def test_memory_task_metric_on_a_perfect_and_a_silent_network():
    task = MemoryTask(MemoryConfig(n_in=4, eval_samples=64))
    net = Network("rnn", 1, 4, 4, 4, rng=0)
    for k in net.params:
        net.params[k][...] = 0.0
    assert math.isclose(task.evaluate(net)["error"], 1.0, rel_tol=1e-6)   # predicts 0: error = E|u|^2 / E|u|^2


# CLI ---------------------------------------------------------------------------------------

def test_cli_train_capacity_json():
    result = runner.invoke(app, ["train", "--cell", "gru", "--units", "4", "-o", "n_samples=30", "-o", "n_in=6",
                                 "--steps", "50", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "done" and 0.0 <= out["metrics"]["accuracy"] <= 1.0


def test_cli_train_infeasible_exits_3():
    result = runner.invoke(app, ["train", "--cell", "rnn", "--units", "4", "-o", "n_samples=30", "--steps", "100",
                                 "--lr", "10000", "--clip", "0", "--json"])
    assert result.exit_code == 3 and json.loads(result.stdout)["status"] == "infeasible"


@pytest.mark.parametrize("args,message", [
    (["capacity", "--cell", "rnn", "--budget", "-5"], "too small"),
    (["capacity", "--cell", "rnn", "--unroll", "0"], "Invalid value for '--unroll'"),
    (["train", "--cell", "rnn", "--units", "4", "--task", "chess"], "unknown task 'chess'"),
    (["train", "--cell", "rnn", "--units", "4", "-o", "unroll=0"], "unroll must be >= 1"),
    (["train", "--cell", "rnn", "--units", "4", "--optimizer", "lbfgs", "--task", "memory"], "L-BFGS needs"),
    (["memory", "--cell", "rnn", "--units", "4,x"], "comma-separated whole numbers"),
])
def test_cli_bad_arguments_are_one_line_errors(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
