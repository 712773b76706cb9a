"""The four benchmark tasks: parens, arith, rcf and text8.

Each task's data is checked against an independent reference written here
(a plain Python counter, a string parser, a loop over Fourier features, a
character count), its metrics against networks whose answers are known
(perfect, uniform, constant), and every cell is trained briefly on every task.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import NamedTuple

import numpy
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

from rnncap.backend import to_numpy
from rnncap.cells import CELLS
from rnncap.errors import RnncapError
from rnncap.network import Network
from rnncap.tasks import TASKS, make_task, task_config
from rnncap.tasks.arith import (INPUT_VOCAB, OUTPUT_VOCAB, ArithConfig, ArithTask, decode_number, encode_problems,
                                sequence_length)
from rnncap.tasks.parens import ParensConfig, ParensTask
from rnncap.tasks.rcf import RCFConfig, RCFTask
from rnncap.tasks.text8 import ALPHABET, Text8Config, Text8Task, decode, embedded_corpus
from rnncap.train import TrainConfig, train
from rnncap.trial import make_trial, run_trial

BENCHMARKS = ("parens", "arith", "rcf", "text8")

# options small enough that a few training steps and an evaluation take well under a second
SMALL = {
    "parens": {"length": 12, "batch_size": 8, "eval_samples": 16},
    "arith": {"digits": 2, "batch_size": 8, "eval_samples": 16},
    "rcf": {"n_samples": 64, "unroll": 3},
    "text8": {"window": 10, "batch_size": 4, "eval_chars": 400, "max_chars": 20000},
}


class _Out(NamedTuple):
    out: object
    state: list


class FixedOutputs:
    """Stands for a network: ``forward`` returns ``outputs(x)``; it has no state worth carrying."""

    def __init__(self, outputs):
        self.outputs = outputs

    def forward(self, x, state0=None, input_steps=None):
        return _Out(self.outputs(x), [])


def _one_hot_logits(labels, classes, scale=50.0):
    """Logits (..., classes) that put almost all probability on ``labels`` (...)."""
    return scale * numpy.eye(classes)[labels]


# parens ------------------------------------------------------------------------------------

def reference_counts(symbols: list[int], types: int, saturation: int) -> list[list[int]]:
    """Unclosed brackets per type after each symbol; the counter saturates, an unmatched close is ignored."""
    counts, history = [0] * types, []
    for symbol in symbols:
        if symbol < 2 * types:                       # 2k opens type k, 2k + 1 closes it; the rest is noise
            kind, closing = divmod(symbol, 2)
            if closing:
                counts[kind] = max(0, counts[kind] - 1)
            else:
                counts[kind] = min(saturation, counts[kind] + 1)
        history.append(list(counts))
    return history


@settings(max_examples=examples(60))
@given(data=st.data(), types=st.integers(1, 4), noise=st.integers(0, 3), saturation=st.integers(1, 4),
       length=st.integers(1, 40), batch=st.integers(1, 3))
def test_parens_targets_equal_a_reference_counter(data, types, noise, saturation, length, batch):
    task = ParensTask(ParensConfig(types=types, noise=noise, saturation=saturation, length=length,
                                   batch_size=batch, eval_samples=1))
    brackets = st.integers(0, 2 * types - 1)                              # mostly brackets, to reach saturation
    symbol = st.one_of(brackets, brackets, st.integers(0, task.n_symbols - 1))
    sequences = data.draw(st.lists(st.lists(symbol, min_size=length, max_size=length), min_size=batch,
                                   max_size=batch))
    symbols = numpy.array(sequences).T                                    # (T, B)
    b = task.batch_for(symbols)
    assert b.x.shape == (length, batch, 2 * types + noise) and task.n_out == types * (saturation + 1)
    assert (b.x.sum(axis=-1) == 1).all() and (b.x.argmax(axis=-1) == symbols).all()
    assert (b.mask == 1).all()
    for j, sequence in enumerate(sequences):
        assert b.target[:, j].tolist() == reference_counts(sequence, types, saturation)


def test_parens_random_batches_follow_the_rng_and_the_reference():
    task = ParensTask(ParensConfig(types=3, noise=2, saturation=2, length=50, batch_size=4, eval_samples=8))
    first = task.batch(0, numpy.random.default_rng(5))
    again = task.batch(0, numpy.random.default_rng(5))
    assert (first.x == again.x).all() and (first.target == again.target).all()
    symbols = first.x.argmax(axis=-1)                                     # (T, B)
    for j in range(4):
        assert first.target[:, j].tolist() == reference_counts(symbols[:, j].tolist(), 3, 2)
    assert task.batch(1, numpy.random.default_rng(6)).x.tolist() != first.x.tolist()


def test_parens_metrics_for_a_perfect_and_a_constant_predictor():
    task = ParensTask(ParensConfig(types=3, noise=2, saturation=4, length=30, eval_samples=40))
    K = 5
    perfect = FixedOutputs(lambda x: _one_hot_logits(task.eval_counts, K).reshape(30, 40, 3 * K))
    metrics = task.evaluate(perfect)
    assert metrics["accuracy"] == 1.0 and metrics["loss"] < 1e-6

    counts = task.eval_counts.reshape(-1, 3)                              # (T*E, heads)
    modes = [Counter(counts[:, k].tolist()).most_common(1)[0] for k in range(3)]
    expected = sum(n for _, n in modes) / (3 * counts.shape[0])
    assert math.isclose(task.constant_accuracy(), expected)
    constant = FixedOutputs(lambda x: numpy.broadcast_to(
        _one_hot_logits(numpy.array([m for m, _ in modes]), K).reshape(3 * K), (30, 40, 3 * K)))
    assert math.isclose(task.evaluate(constant)["accuracy"], metrics["constant_accuracy"])


# arith -------------------------------------------------------------------------------------

def parse_operand(text: str) -> int:
    assert text[0] in "- " and text[1:].isdigit(), text
    return -int(text[1:]) if text[0] == "-" else int(text[1:])


@settings(max_examples=examples(80))
@given(data=st.data(), digits=st.integers(1, 12), subtraction=st.booleans())
def test_arith_answer_decodes_to_the_sum_or_difference(data, digits, subtraction):
    bound = 10 ** digits - 1
    operand = st.integers(-bound, bound)
    pairs = data.draw(st.lists(st.tuples(operand, operand), min_size=1, max_size=4))
    a, b = (numpy.array(v) for v in zip(*pairs))
    problems = encode_problems(a, b, digits, subtraction)
    T, n = sequence_length(digits), 1 + digits
    assert T == n + 1 + n + (digits + 2)
    assert problems.inputs.shape == problems.targets.shape == problems.mask.shape == (T, len(pairs))
    for j, (x, y) in enumerate(pairs):
        text = "".join(INPUT_VOCAB[i] for i in problems.inputs[:, j])
        assert parse_operand(text[:n]) == x and parse_operand(text[n + 1:2 * n + 1]) == y
        assert text[n] == ("-" if subtraction else "+") and text[2 * n + 1:] == "=" * (digits + 2)
        answer_steps = numpy.flatnonzero(problems.mask[:, j])
        assert answer_steps.tolist() == list(range(2 * n + 1, T))          # exactly the '=' steps
        assert decode_number(problems.targets[answer_steps, j]) == (x - y if subtraction else x + y)
        assert decode_number(problems.inputs[:n, j], INPUT_VOCAB) == x


def test_arith_batches_draw_operands_in_range():
    task = ArithTask(ArithConfig(digits=3, subtraction=True, batch_size=500, eval_samples=4))
    b = task.batch(0, numpy.random.default_rng(1))
    x = b.x.argmax(axis=-1)                                               # (T, B) input ids
    for j in range(500):
        text = "".join(INPUT_VOCAB[i] for i in x[:, j])
        left, right = parse_operand(text[:4]), parse_operand(text[5:9])
        assert abs(left) < 1000 and abs(right) < 1000
        assert decode_number(b.target[-5:, j]) == left - right
    assert (b.mask[:9] == 0).all() and (b.mask[9:] == 1).all()
    assert b.x.shape == (14, 500, 14)


def test_arith_decoding_refuses_malformed_answers():
    assert decode_number([OUTPUT_VOCAB.index(c) for c in " 042"]) == 42
    assert decode_number([OUTPUT_VOCAB.index(c) for c in "-000"]) == 0
    assert decode_number([OUTPUT_VOCAB.index(c) for c in "0-42"]) is None
    assert decode_number([OUTPUT_VOCAB.index(c) for c in " 4 2"]) is None


def test_arith_metrics_count_whole_answers():
    task = ArithTask(ArithConfig(digits=2, eval_samples=50))
    targets = task.eval_problems.targets.copy()                           # (T, E)
    targets[-1, :10] = (targets[-1, :10] + 1) % 10                        # last digit wrong in 10 answers
    metrics = task.evaluate(FixedOutputs(lambda x: _one_hot_logits(targets, 12)))
    assert metrics["accuracy"] == 40 / 50
    assert math.isclose(metrics["char_accuracy"], 1 - 10 / (50 * 4))


# rcf ---------------------------------------------------------------------------------------

def test_rcf_same_seed_same_function_and_data():
    one, two = RCFTask(RCFConfig(n_samples=200, seed=3)), RCFTask(RCFConfig(n_samples=200, seed=3))
    assert (one.inputs == two.inputs).all() and (one.values == two.values).all()
    assert (one.function.W == two.function.W).all() and (one.function.a == two.function.a).all()
    other = RCFTask(RCFConfig(n_samples=200, seed=4))
    assert not numpy.allclose(one.values, other.values)


def test_rcf_targets_are_the_fourier_sum_at_step_T():
    task = RCFTask(RCFConfig(n_samples=20, n_in=5, n_out=2, features=7, unroll=4, seed=1))
    f = task.function
    for i in range(20):
        for o in range(2):
            value = sum(f.a[k, o] * math.cos(sum(f.W[d, k] * task.inputs[i, d] for d in range(5)) + f.phase[k])
                        for k in range(7))
            assert math.isclose(task.values[i, o], value, rel_tol=1e-9, abs_tol=1e-12)
    assert (task.x[0] == task.inputs.astype(numpy.float32)).all() and (task.x[1:] == 0).all()
    assert numpy.allclose(task.target[3], task.values) and (task.mask[:3] == 0).all() and (task.mask[3] == 1).all()


def test_rcf_default_targets_are_finite_with_the_predicted_variance():
    # theory: (1 - (1 + 2/16)^-8) / 2 = 0.305 on average; one function's sample variance scatters
    # around it with standard deviation about 0.07 (see the rcf module docstring)
    variances = []
    for seed in range(12):
        task = RCFTask(RCFConfig(seed=seed))
        assert numpy.isfinite(task.values).all()
        assert 0.05 < task.target_variance < 2.0
        variances.append(task.target_variance)
    assert 0.22 < numpy.mean(variances) < 0.39


def test_rcf_metrics_for_exact_and_constant_predictions():
    task = RCFTask(RCFConfig(n_samples=300, n_out=2, unroll=2))
    exact = task.evaluate(FixedOutputs(lambda x: numpy.broadcast_to(task.values, (2, 300, 2))))
    assert exact["loss"] == 0.0 and exact["r2"] == 1.0
    mean = FixedOutputs(lambda x: numpy.broadcast_to(task.values.mean(axis=0), (2, 300, 2)))
    assert math.isclose(task.evaluate(mean)["normalised_error"], 1.0, rel_tol=1e-9)


# text8 -------------------------------------------------------------------------------------

def test_embedded_corpus_has_only_the_27_symbols():
    ids = embedded_corpus()
    assert ids.size > 100_000 and ids.max() < 27 and set(numpy.unique(ids)) == set(range(27))
    text = decode(ids[:20_000])
    assert set(text) <= set(ALPHABET) and "  " not in text


@pytest.mark.parametrize("content,shown,offset", [
    (b"hello world\nmore", r"'\n'", 11),
    (b"abc Def", "'D'", 4),
    (b"caf\xc3\xa9", r"'\xc3'", 3),
    (b"a" * (1 << 20) + b"bcdef1", "'1'", (1 << 20) + 5),   # found in the second 1 MiB chunk
])
def test_text8_file_with_a_bad_character_is_a_one_line_error(tmp_path, content, shown, offset):
    path = tmp_path / "text8"
    path.write_bytes(content)
    with pytest.raises(RnncapError) as error:
        Text8Task(Text8Config(path=str(path)))
    message = str(error.value)
    assert "\n" not in message and f"character {shown} at byte offset {offset}" in message


def test_text8_missing_file_is_a_one_line_error(tmp_path):
    with pytest.raises(RnncapError, match="is not a file") as error:
        Text8Task(Text8Config(path=str(tmp_path / "nowhere")))
    assert "\n" not in str(error.value)


def test_text8_valid_small_file_loads(tmp_path):
    text = " ".join(["the quick brown fox jumps over the lazy dog"] * 60)
    path = tmp_path / "text8"
    path.write_bytes(text.encode())
    task = Text8Task(Text8Config(path=str(path), window=6, batch_size=3, eval_chars=50))
    assert decode(task.corpus) == text
    n = len(text)
    assert task.train_ids.size == int(0.9 * n) and task.valid_ids.size == int(0.05 * n)
    assert decode(task.valid_ids) == text[int(0.9 * n):int(0.9 * n) + int(0.05 * n)]
    short = Text8Task(Text8Config(path=str(path), window=6, batch_size=3, max_chars=1000))
    assert decode(short.corpus) == text[:1000]


def test_text8_consecutive_steps_are_consecutive_text():
    task = Text8Task(Text8Config(window=7, batch_size=5, max_chars=3000))
    L, passes = task.stream_length, task.windows_per_pass
    for step in range(passes + 2):
        ids = task.window_ids(step)                                       # (w + 1, B)
        b = task.batch(step)
        assert (b.x.argmax(axis=-1) == ids[:-1]).all() and (b.target == ids[1:]).all()
        assert b.carry == (step % passes != 0)
        i = step % passes
        for j in range(5):
            start = j * L + i * 7
            assert decode(ids[:, j]) == decode(task.train_ids[start:start + 8])
            assert start + 8 <= (j + 1) * L                               # a stream never reads the next one
        if b.carry:
            assert (ids[0] == task.window_ids(step - 1)[-1]).all()        # this window's first input was the
                                                                          # last target of the previous one


def test_text8_carrying_the_state_across_windows_equals_one_long_run():
    task = Text8Task(Text8Config(window=9, batch_size=3, max_chars=4000), dtype=numpy.float64)
    net = Network("lstm", 1, 27, 27, 8, rng=0, dtype=numpy.float64)
    first, second = task.batch(0), task.batch(1)
    assert not first.carry and second.carry
    one = net.forward(first.x)
    two = net.forward(second.x, one.state)
    whole = net.forward(numpy.concatenate([first.x, second.x]))
    assert numpy.allclose(numpy.concatenate([one.out, two.out]), whole.out, rtol=1e-12, atol=1e-12)


def test_text8_bpc_equals_one_pass_over_each_stream():
    task = Text8Task(Text8Config(window=8, batch_size=3, eval_chars=101, max_chars=20000), dtype=numpy.float64)
    net = Network("gru", 1, 27, 27, 6, rng=1, dtype=numpy.float64)
    ids, m = task.valid_ids[:101], 100 // 3                               # 3 streams of 33 predictions
    nats = 0.0
    for j in range(3):
        text = ids[j * m:j * m + m + 1]
        logits = net.forward(numpy.eye(27)[text[:-1]][:, None, :]).out[:, 0]    # (m, 27), one pass
        logp = logits - numpy.log(numpy.exp(logits).sum(axis=1, keepdims=True))
        nats -= logp[numpy.arange(m), text[1:]].sum()
    assert math.isclose(task.bpc(net), nats / (3 * m) / math.log(2), rel_tol=1e-10)


def test_text8_uniform_prediction_costs_log2_27_bits_and_unigram_is_the_frequency_entropy():
    task = Text8Task(Text8Config(window=10, batch_size=4, eval_chars=500, max_chars=20000))
    uniform = FixedOutputs(lambda x: numpy.zeros((x.shape[0], x.shape[1], 27), dtype=numpy.float32))
    metrics = task.evaluate(uniform)
    assert math.isclose(metrics["bpc"], math.log2(27), rel_tol=1e-6)
    assert math.isclose(metrics["test_bpc"], math.log2(27), rel_tol=1e-6)
    counts = Counter(decode(task.train_ids))
    n = task.train_ids.size
    assert math.isclose(metrics["unigram_bpc"], -sum(c / n * math.log2(c / n) for c in counts.values()))


def test_text8_resumed_run_carries_the_state_through_the_checkpoint(tmp_path):
    trial = make_trial("text8", SMALL["text8"], "lstm", 1, 6, {"steps": 12, "lr": 0.01, "checkpoint_every": 5},
                       seed=0)
    whole = run_trial(trial)
    stopped = tmp_path / "stopped.npz"
    assert run_trial(trial, checkpoint_path=stopped, time_limit=0.0)["steps"] == 1
    resumed = run_trial(trial, checkpoint_path=stopped, resume=True)
    assert resumed["history"] == whole["history"] and resumed["metrics"] == whole["metrics"]


# every task --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BENCHMARKS)
def test_registered_with_defaults_and_a_printable_description(name):
    task = make_task(name, SMALL[name])
    description = task.describe()
    assert json.loads(json.dumps(description)) == description
    assert description["n_in"] == task.n_in and description["n_out"] == task.n_out
    assert {"loss", "metric"} <= set(description)
    assert task.objective in task.evaluate(Network("gru", 1, task.n_in, task.n_out, 4))
    assert TASKS[name][1]() is not None                                   # the defaults are valid


@pytest.mark.parametrize("name,bad", [
    ("parens", {"types": 0}), ("parens", {"noise": -1}), ("arith", {"digits": 0}), ("arith", {"digits": 19}),
    ("rcf", {"features": 0}), ("rcf", {"batch_size": 0}), ("text8", {"window": 0}),
    ("text8", {"split": (0.9, 0.2, 0.05)}), ("text8", {"split": (0.9, 0.1)}), ("text8", {"batch_size": 100000}),
])
def test_bad_options_are_one_line_errors(name, bad):
    with pytest.raises(RnncapError) as error:
        make_task(name, bad)
    assert "\n" not in str(error.value)


def test_text8_split_from_json_is_a_tuple():
    assert task_config("text8", split=[0.8, 0.1, 0.1]).split == (0.8, 0.1, 0.1)


def _finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, (int, float)))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_trial_on_each_task_runs_to_finite_metrics(name):
    result = run_trial(make_trial(name, SMALL[name], "gru", 1, 8, {"steps": 20}, seed=0))
    assert result["status"] == "done" and _finite(result["metrics"])
    assert result["objective_name"] in result["metrics"]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_cell_trains_briefly_on_every_task(name, cell):
    task = make_task(name, SMALL[name])
    depth = 2 if cell == "plusrnn" else 1
    net = Network(cell, depth, task.n_in, task.n_out, 5, rng=0)
    result = train(net, task, TrainConfig(steps=3, lr=1e-3))
    assert result.status == "done" and math.isfinite(result.loss) and _finite(result.metrics)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_cupy_gives_the_same_batches_metrics_and_training(cupy, name):
    cpu, gpu = make_task(name, SMALL[name]), make_task(name, SMALL[name], xp=cupy)
    for step in range(2):
        on_cpu = cpu.batch(step, numpy.random.default_rng(step))
        on_gpu = gpu.batch(step, numpy.random.default_rng(step))
        assert on_cpu.carry == on_gpu.carry
        for a, b in zip(on_cpu[:3], on_gpu[:3]):
            assert numpy.array_equal(a, to_numpy(b))
    net = Network("lstm", 1, cpu.n_in, cpu.n_out, 6, rng=0)
    expected, got = cpu.evaluate(net), gpu.evaluate(net.astype(numpy.float32, xp=cupy))
    for key, value in expected.items():
        tolerance = 2e-3 if "accuracy" in key else 0.0                    # an argmax may flip on a near tie
        assert math.isclose(got[key], value, rel_tol=1e-4, abs_tol=tolerance), key
    result = run_trial(make_trial(name, SMALL[name], "gru", 1, 8, {"steps": 20}, seed=0), device="gpu")
    assert result["status"] == "done" and _finite(result["metrics"])


@pytest.mark.parametrize("bits,count", [(4, 16), (6, 40), (16, 5000), (63, 50)])
def test_capacity_inputs_are_distinct_while_they_can_be(bits, count):
    from rnncap.tasks.capacity import distinct_bit_vectors

    vectors = distinct_bit_vectors(numpy.random.default_rng(bits), count, bits)
    assert vectors.shape == (count, bits) and set(numpy.unique(vectors)) <= {0, 1}
    assert len({tuple(v) for v in vectors}) == count


def test_capacity_inputs_beyond_two_to_the_n_in_use_every_input():
    from rnncap.tasks.capacity import distinct_bit_vectors

    vectors = distinct_bit_vectors(numpy.random.default_rng(0), 40, 4)
    assert len({tuple(v) for v in vectors}) == 16
    task = make_task("capacity", {"n_samples": 40, "n_in": 4, "signed": True})
    assert set(numpy.unique(task.x[0])) == {-1.0, 1.0} and not task.x[1:].any()
