"""Hundreds of bad inputs through the CLI: each is one line on stderr, exit status 2, and no input file changes.

The cases are generated tables, one per kind of mistake (a task option of the
wrong type or out of range, a number out of range, a parser error, a device
this machine lacks, a path that cannot be written, a damaged checkpoint, a
run too large for memory), plus a Hypothesis property over the text given to
whole-number task options. Every case runs in this process (Typer's
CliRunner), against one set of input files (a store, a checkpoint, corpora)
whose bytes are compared before and after. The machine's available memory is
pinned at 2 GB so that the memory refusals do not depend on the machine.

The command is built from the Typer app once and run as the console script
runs it (``main`` with the arguments; stdout and stderr captured), which
takes a few milliseconds a case where Typer's CliRunner, rebuilding the
command each time, takes about 30.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import NamedTuple

import numpy
import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import examples
from rnncap import resources
from rnncap.backend import gpu_unavailable_reason
from rnncap.cli import app
from rnncap.tasks import TASKS
from rnncap.tasks.options import field_types

COMMAND = typer.main.get_command(app)
AVAILABLE = 2 * 10**9                              # bytes the tests pretend the machine has
SPARSE_CORPUS = 3 * 10**9                          # a corpus file larger than that (sparse: no disk used)
TRAIN = ["train", "--cell", "rnn", "--units", "2", "--steps", "2"]
TUNE = ["tune", "--study", "t", "--cell", "rnn", "--units", "2", "--steps", "2", "--trials", "1"]
GRADCHECK = ["gradcheck", "--cell", "rnn"]
CAPACITY = ["capacity", "--cell", "rnn", "--budget", "100", "--steps", "2", "--trials", "1"]
MEMORY = ["memory", "--cell", "rnn", "--n-in", "4", "--units", "2", "--steps", "2", "--trials", "1"]
STUDY_COMMANDS = {"train": TRAIN, "tune": TUNE, "capacity": CAPACITY, "memory": MEMORY}


class Result(NamedTuple):
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _invoke(args: list) -> Result:
    """``rnncap ARGS`` in this process; an exception other than the exit propagates (a traceback: a bug)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            COMMAND.main([str(a) for a in args], prog_name="rnncap")
            code = 0
        except SystemExit as done:
            code = done.code or 0
    return Result(code, out.getvalue(), err.getvalue())


def _with_member(meta: dict, **changes) -> dict:
    """A checkpoint record whose first member's record has ``changes``."""
    return {**meta, "members": [{**meta["members"][0], **changes}, *meta["members"][1:]]}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The input files every case may be given: made once by valid commands, then only read."""
    root = tmp_path_factory.mktemp("inputs")
    store, checkpoint = root / "store.sqlite", root / "run.npz"
    os.environ["RNNCAP_STORE"] = str(store)
    try:
        made = [_invoke(TUNE + ["--store", store, "--json"]),
                _invoke(TRAIN + ["--steps", "3", "--checkpoint", checkpoint, "--json"])]
    finally:
        del os.environ["RNNCAP_STORE"]
    assert all(r.exit_code == 0 for r in made), [r.output for r in made]
    saved = dict(numpy.load(checkpoint))
    meta = json.loads(str(saved["meta"]))
    damaged = {
        "missing-array": {k: v for k, v in saved.items() if k != "param.readout.W"},
        "step-is-text": {**saved, "meta": numpy.array(json.dumps({**meta, "step": "three"}))},
        "history-is-text": {**saved, "meta": numpy.array(json.dumps(_with_member(meta, history="none")))},
        "rng-is-wrong": {**saved, "meta": numpy.array(json.dumps(_with_member(meta, rng={"state": 1})))},
        "status-is-a-number": {**saved, "meta": numpy.array(json.dumps(_with_member(meta, status=3)))},
        "no-members": {**saved, "meta": numpy.array(json.dumps({**meta, "members": []}))},
        "array-of-text": {**saved, "param.readout.W": numpy.array(["a", "b"])},
        "odd-array-name": {**saved, "carry.x.0": numpy.zeros(2)},
        "no-format": {**saved, "meta": numpy.array(json.dumps({k: v for k, v in meta.items() if k != "format"}))},
    }
    for name, arrays in damaged.items():
        numpy.savez(root / f"{name}.npz", **arrays)
    (root / "garbage.npz").write_bytes(b"not a zip file at all")
    (root / "truncated.npz").write_bytes(checkpoint.read_bytes()[:200])
    (root / "bad-chars.txt").write_text("hello World\n")
    (root / "empty.txt").write_bytes(b"")
    (root / "short.txt").write_text("just a few words")
    with open(root / "sparse.txt", "wb") as f:
        f.truncate(SPARSE_CORPUS)
    (root / "a-file").write_text("a regular file, not a folder\n")
    (root / "corrupt.sqlite").write_bytes(b"SQLite format 3\x00" + b"\x07" * 2000)
    return root


def _fingerprints(root: Path) -> dict:
    """Every input file's bytes (the sparse corpus: its size, time and first MiB, rather than 3 GB of zeros)."""
    prints = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            with open(path, "rb") as f:
                head = f.read(1 << 20) if stat.st_size > 10**8 else f.read()
            prints[path.name] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(head).hexdigest())
    return prints


@pytest.fixture
def refused(inputs, tmp_path, monkeypatch):
    """``refused(args)``: run the CLI in a fresh folder and check the one-line refusal; returns stderr."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNCAP_STORE", str(inputs / "store.sqlite"))
    monkeypatch.setattr(resources, "available_bytes", lambda: AVAILABLE)

    def check(args: list) -> str:
        before = _fingerprints(inputs)
        result = _invoke([str(a).replace("{in}", str(inputs)) for a in args])
        lines = result.stderr.splitlines()
        assert result.exit_code == 2, (args, result.exit_code, result.output)
        assert len(lines) == 1 and lines[0].startswith("rnncap") and ": error: " in lines[0], (args, result.stderr)
        assert "Traceback" not in result.output and result.stdout == "", (args, result.output)
        assert _fingerprints(inputs) == before, args
        assert list(tmp_path.iterdir()) == [], (args, list(tmp_path.iterdir()))     # nothing written here
        return lines[0]
    return check


# Task options: every field of every task's config, given values of the wrong type or out of range ----------

def _wrong_values(kind: type, optional: bool, turn: int, count: int = 4) -> list[str]:
    """``count`` values of the wrong type for a field, taken in turn (``turn``) from the list for its type."""
    wrong = {int: ["abc", "2.5", "NaN", "inf", "true", "[1]", "1e3", "", "0x10", "1_000", "٣"],
             float: ["abc", "NaN", "inf", "-inf", "true", "[0.1]", "", "0x10"],
             bool: ["maybe", "2", "yes", "[true]", ""],
             str: [],
             tuple: ["5", "a,b", "[0.5,NaN,0.1]", "[1,2,3]", "{}", "[0.9,0.05]"]}[kind]
    wrong = wrong + ([] if optional or kind is str else ["null"])
    return [wrong[(turn + k) % len(wrong)] for k in range(min(count, len(wrong)))]


TYPE_CASES = [(task, f"{f}={value}") for task, (_, config) in TASKS.items()
              for turn, (f, (kind, optional)) in enumerate(field_types(config).items())
              for value in _wrong_values(kind, optional, turn)]
RANGE_CASES = [
    ("capacity", "n_samples=0"), ("capacity", "n_in=-1"), ("capacity", "unroll=0"), ("capacity", "seed=-1"),
    ("capacity", "batch_size=0"), ("capacity", "label_noise=1"), ("capacity", "label_noise=-0.1"),
    ("memory", "n_in=0"), ("memory", "unroll=-3"), ("memory", "batch_size=0"),
    ("memory", "eval_samples=0"), ("memory", "seed=-5"), ("rcf", "features=0"), ("rcf", "n_out=0"),
    ("rcf", "n_samples=-2"), ("text8", "window=0"), ("text8", "batch_size=0"), ("text8", "eval_chars=1"),
    ("text8", "max_chars=1"), ("text8", "split=[0.9,0.2,0.1]"), ("text8", "seed=-1"), ("parens", "types=0"),
    ("parens", "noise=-1"), ("parens", "saturation=0"), ("parens", "length=0"), ("arith", "digits=0"),
    ("arith", "digits=19"), ("arith", "batch_size=-1"), ("arith", "eval_samples=0"),
    ("capacity", "nope=1"), ("capacity", "n_samples"), ("capacity", "=5"), ("arith", "subtract=true"),
]
TOO_LARGE = [
    ("capacity", "n_samples=1000000000"), ("capacity", "unroll=100000000"), ("capacity", "n_in=100000000"),
    ("memory", "eval_samples=10000000000"), ("memory", "n_in=1000000000"), ("rcf", "features=1000000000"),
    ("rcf", "n_samples=1000000000"), ("text8", "window=1000000000"), ("text8", "batch_size=1000000000"),
    ("parens", "types=1000000"), ("parens", "length=1000000000"), ("parens", "eval_samples=1000000000"),
    ("arith", "eval_samples=10000000000"), ("arith", "batch_size=10000000000"),
]
CORPUS_CASES = ["path={in}/bad-chars.txt", "path={in}/empty.txt", "path={in}/no-such-file", "path={in}",
                "path=123", "path={in}/sparse.txt", "path={in}/short.txt"]


@pytest.mark.parametrize("task,option", TYPE_CASES + RANGE_CASES + TOO_LARGE)
def test_a_bad_task_option_is_refused_by_train(refused, task, option):
    line = refused(TRAIN + ["--task", task, "-o", option])
    if (task, option) not in TOO_LARGE:
        assert option.partition("=")[0] in line                 # the message names the option


@pytest.mark.parametrize("option", [o for t, o in TYPE_CASES if t == "capacity"][::3] + ["seed=-1", "nope=1"])
def test_a_bad_task_option_is_refused_by_tune_before_the_store(refused, option):
    refused(TUNE + ["-o", option])


@pytest.mark.parametrize("task,option", TOO_LARGE[::2])
def test_a_study_too_large_is_refused_by_tune(refused, task, option):
    refused(TUNE + ["--task", task, "-o", option])


@pytest.mark.parametrize("option", CORPUS_CASES)
def test_a_bad_corpus_is_refused(refused, option):
    refused(TRAIN + ["--task", "text8", "-o", option])


def test_a_corpus_too_large_for_memory_names_both_sizes(refused):
    line = refused(TRAIN + ["--task", "text8", "-o", "path={in}/sparse.txt"])
    assert "3 GB" in line and "2 GB available" in line


@settings(max_examples=examples(30), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=st.sampled_from(sorted(TASKS)), text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))
def test_any_text_but_a_whole_number_is_refused_for_a_whole_number_option(refused, task, text):
    whole = [f for f, (kind, optional) in field_types(TASKS[task][1]).items() if kind is int]
    stripped = text.strip()
    if stripped.lstrip("+-").isdecimal() and stripped.isascii() or stripped.lower() in ("none", "null"):
        return                                                  # a whole number (or none): maybe valid
    refused(TRAIN + ["--task", task, "-o", f"{whole[0]}={text}"])


# Numbers and names out of range, on every command that takes them ----------------------------------------

NUMBER_CASES = [
    *[(cmd, ["--seed", v]) for cmd in ("train", "tune", "capacity", "memory") for v in ("-1", "abc", "1.5")],
    *[(cmd, ["--time-limit", v]) for cmd in ("train", "tune", "capacity", "memory") for v in ("-1", "0", "nan", "inf",
                                                                                              "abc")],
    *[(cmd, ["--workers", v]) for cmd in ("tune", "capacity", "memory") for v in ("0", "-1", "10000000000", "1e10")],
    *[(cmd, ["--population", v]) for cmd in ("tune", "capacity", "memory") for v in ("0", "-3", "x")],
    *[(cmd, ["--steps", v]) for cmd in ("train", "tune", "capacity", "memory") for v in ("0", "-5", "1e3", "abc")],
    *[(cmd, ["--trials", v]) for cmd in ("tune", "capacity", "memory") for v in ("0", "-1")],
    *[(cmd, ["--depth", v]) for cmd in ("train", "tune") for v in ("0", "9", "two")],
    *[(cmd, ["--device", v]) for cmd in ("train", "tune", "capacity", "memory") for v in ("tpu", "GPU0", "cuda")],
    *[(cmd, ["--cell", "transformer"]) for cmd in ("train", "tune", "capacity", "memory")],
    *[(cmd, ["--scheduler", v]) for cmd in ("tune", "capacity", "memory") for v in ("garbage", "tcp://host")],
    ("train", ["--units", "1000000"]), ("train", ["--units", "0"]), ("train", ["--units", "abc"]),
    ("tune", ["--units", "1000000"]), ("capacity", ["--budget", "1000000000000"]), ("capacity", ["--budget", "-5"]),
    ("capacity", ["--budget", "1e12"]), ("capacity", ["--n-in", "0"]), ("capacity", ["--n-in", "1000000000"]),
    ("capacity", ["--unroll", "0"]), ("capacity", ["--unroll", "100000000"]), ("capacity", ["--batch-size", "-1"]),
    *[("capacity", ["--label-noise", v]) for v in ("-0.1", "1", "nan", "abc")],
    ("capacity", ["--optimizer", "nope"]), ("memory", ["--units", ",,,"]), ("memory", ["--units", "0,4"]),
    ("memory", ["--units", "4,x"]), ("memory", ["--units", "1000000"]), ("memory", ["--n-in", "0"]),
    ("memory", ["--n-in", "1000000000"]), ("memory", ["--unroll", "-1"]),
    ("tune", ["--strategy", "nope"]), ("tune", ["--task", "chess"]), ("tune", ["--strategy", "bsearch", "--task",
                                                                                "memory"]),
    *[("train", [flag, v]) for flag, values in {
        "--lr": ("nan", "-1", "0", "inf", "abc"), "--lr-decay": ("0", "2", "nan"), "--momentum": ("1", "-0.1", "nan"),
        "--clip": ("-1", "nan"), "--l2": ("-1", "inf", "nan"), "--b-fg": ("nan", "inf"), "--b-fg-y": ("-inf",),
        "--weight-scale": ("nan",), "--bias-scale": ("inf",), "--eval-every": ("-1",),
        "--checkpoint-every": ("0", "-5"), "--optimizer": ("nope",), "--nonlinearity": ("sigmoid",),
        "--task": ("chess",), "--budget": ("10", "abc")}.items() for v in values],
    ("train", ["--optimizer", "lbfgs", "--task", "memory"]), ("train", ["--cell", "irnn", "-s", "tanh"]),
    ("train", ["--cell", "plusrnn", "--depth", "1"]), ("train", ["--budget", "1000"]),
    ("train", ["--resume"]), ("train", ["--optimizer", "lbfgs", "--checkpoint", "{in}/new.npz"]),
]


@pytest.mark.parametrize("command,extra", NUMBER_CASES)
def test_a_bad_number_or_name_is_refused(refused, command, extra):
    refused(STUDY_COMMANDS[command] + extra)


GRADCHECK_CASES = [["--steps", "0"], ["--steps", "-3"], ["--units", "0"], ["--units", "-1"], ["--tolerance", "nan"],
                   ["--tolerance", "-1"], ["--tolerance", "inf"], ["--mode", "bogus"], ["--population", "0"],
                   ["--seed", "-1"], ["--units", "100000"], ["--units", "100000", "--mode", "directions"],
                   ["--units", "200"], ["--device", "tpu"], ["--depth", "0"], ["--cell", "irnn", "-s", "tanh"],
                   ["--nonlinearity", "swish"], ["--cell", "lstm", "--depth", "2", "--units", "30"]]
PARAMS_CASES = [["--budget", "abc"], ["--budget", "1e12"], ["--budget", "10"], ["--units", "0"], [],
                ["--n-in", "0", "--units", "3"], ["--n-out", "-1", "--units", "3"], ["--budget", "5", "--units", "3"],
                ["--depth", "9", "--units", "3"]]


@pytest.mark.parametrize("extra", GRADCHECK_CASES)
def test_a_bad_gradcheck_is_refused(refused, extra):
    refused(GRADCHECK + extra)


@pytest.mark.parametrize("extra", PARAMS_CASES)
def test_a_bad_params_is_refused(refused, extra):
    refused(["params", "--cell", "gru"] + extra)


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is available here")
@pytest.mark.parametrize("command", ["train", "tune", "capacity", "memory", "gradcheck", "reproduce"])
def test_gpu_without_cupy_is_refused_on_every_command(refused, command):
    base = {**STUDY_COMMANDS, "gradcheck": GRADCHECK, "reproduce": ["reproduce", "capacity", "--preset", "smoke"]}
    assert "--device gpu" in refused(base[command] + ["--device", "gpu"])


# Parser errors: unknown options, missing and extra arguments, on every command -------------------------------

COMMANDS = [["cells"], ["tasks"], ["params", "--cell", "gru", "--units", "3"], GRADCHECK, TRAIN, TUNE, CAPACITY,
            MEMORY, ["study", "list"], ["study", "show", "t"], ["study", "export", "t"], ["study", "delete", "t"],
            ["reproduce", "capacity"], ["report"]]
PARSER_CASES = [
    *[cmd + ["--bogus"] for cmd in COMMANDS], *[cmd + ["extra-argument"] for cmd in COMMANDS if cmd[0] != "study"
                                                 or cmd[1] == "list"],
    *[cmd + ["--json=maybe"] for cmd in COMMANDS if cmd[0] not in ("study", "reproduce", "report")],
    ["--bogus"], ["nosuch"], ["study", "nosuch"], ["study", "show"], ["study", "export"], ["study", "delete"],
    ["reproduce"], ["train"], ["tune", "--cell", "rnn"], ["capacity"], ["memory"], ["gradcheck"], ["params"],
    ["train", "--cell"], ["train", "--cell", "rnn", "--lr"], ["tune", "--study"], ["study", "show", "t", "--store"],
    ["study", "export", "t", "--format", "xml"], ["reproduce", "nope"], ["reproduce", "capacity", "--preset", "nope"],
    ["reproduce", "capacity", "--preset", "smoke", "--workers", "0"], ["reproduce", "all", "--time-limit", "-1"],
    ["reproduce", "capacity", "--population", "0"], ["reproduce", "capacity", "--device", "tpu"],
    ["study", "show", "nope"], ["study", "export", "nope"], ["study", "delete", "nope", "--yes"],
    ["study", "delete", "zz", "--prefix", "--yes"],
]


@pytest.mark.parametrize("args", PARSER_CASES, ids=lambda a: " ".join(a)[:60])
def test_a_parser_error_is_one_line(refused, args):
    line = refused(args)
    assert "╭" not in line and "│" not in line


# Paths that cannot be written, and damaged checkpoints --------------------------------------------------------

PATH_CASES = [
    TRAIN + ["--checkpoint", "{in}/no-such-folder/run.npz"], TRAIN + ["--checkpoint", "{in}/a-file/run.npz"],
    TRAIN + ["--checkpoint", "{in}"], TRAIN + ["--checkpoint", "{in}/a-file/deeper/run.npz"],
    ["report", "--out", "{in}/a-file"], ["report", "--out", "{in}/a-file/report"],
    ["report", "-o", "{in}/a-file/x/y"],
    *[cmd + ["--store", store] for cmd in (TUNE, CAPACITY, MEMORY, ["study", "list"], ["study", "show", "t"],
                                          ["report"])
      for store in ("{in}/no-such-folder/s.sqlite", "{in}/a-file/s.sqlite", "{in}")],
]
CHECKPOINTS = ["missing-array", "step-is-text", "history-is-text", "rng-is-wrong", "status-is-a-number", "no-members",
               "array-of-text", "odd-array-name",
               "no-format", "garbage", "truncated"]


@pytest.mark.parametrize("args", PATH_CASES, ids=lambda a: " ".join(a)[-50:])
def test_a_path_that_cannot_be_written_is_refused_before_work(refused, args):
    refused(args)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_folder_is_refused(refused, inputs):
    locked = inputs / "locked"
    locked.mkdir(exist_ok=True)
    locked.chmod(0o500)
    try:
        assert "permission denied" in refused(TRAIN + ["--checkpoint", "{in}/locked/run.npz"])
        assert "permission denied" in refused(["report", "--out", "{in}/locked/report"])
    finally:
        locked.chmod(0o700)


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_a_damaged_checkpoint_is_refused_unchanged(refused, name):
    line = refused(TRAIN + ["--steps", "3", "--checkpoint", f"{{in}}/{name}.npz", "--resume"])
    assert "remove it to start over" in line


def test_an_existing_checkpoint_without_resume_is_refused(refused):
    assert "--resume" in refused(TRAIN + ["--steps", "3", "--checkpoint", "{in}/run.npz"])


def test_a_run_of_another_shape_is_refused_by_its_checkpoint(refused):
    assert "different run" in refused(TRAIN + ["--steps", "4", "--checkpoint", "{in}/run.npz", "--resume"])


def test_there_are_at_least_200_cases():
    generated = (len(TYPE_CASES) + len(RANGE_CASES) + len(TOO_LARGE) + len(CORPUS_CASES) + len(NUMBER_CASES)
                 + len(GRADCHECK_CASES) + len(PARAMS_CASES) + len(PARSER_CASES) + len(PATH_CASES) + len(CHECKPOINTS))
    assert generated >= 200, generated


# What the layer must not change: valid commands, and the memory it reads -------------------------------------

def test_valid_task_options_keep_their_json_values(tmp_path, monkeypatch):
    """Typed parsing gives the values ``json.loads`` gave before, so stored trials and study names are unchanged."""
    monkeypatch.chdir(tmp_path)
    result = _invoke(TRAIN + ["--steps", "3", "-o", "n_samples=300", "-o", "batch-size=null", "--json"])
    assert result.exit_code == 0 and result.stderr == ""
    assert json.loads(result.stdout)["trial"]["task_options"] == {"n_samples": 300, "batch_size": None}
    result = _invoke(TRAIN + ["--task", "text8", "-o", "max_chars=20000", "-o", "split=[0.8,0.1,0.1]", "--json"])
    assert json.loads(result.stdout)["trial"]["task_options"] == {"max_chars": 20000, "split": [0.8, 0.1, 0.1]}
    result = _invoke(TRAIN + ["--task", "arith", "-o", "digits=2", "-o", "subtraction=true", "--json"])
    assert json.loads(result.stdout)["trial"]["task_options"] == {"digits": 2, "subtraction": True}


def test_a_study_name_comes_from_every_setting_defaults_included(tmp_path, monkeypatch):
    """``rnncap tune`` names a study by a hash of its spec, which holds every task option, defaults included:
    naming a default changes nothing, and another value (or, in a later rnncap, another default) makes
    another study instead of mixing trials run two ways."""
    monkeypatch.chdir(tmp_path)
    tune = TUNE + ["--task", "capacity", "--store", tmp_path / "s.sqlite", "--json"]

    def study(*options):
        result = _invoke(tune + [arg for option in options for arg in ("-o", option)])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    plain = study()
    assert plain["spec"]["task_options"]["signed"] is True and plain["spec"]["task_options"]["label_noise"] == 0.0
    assert study("signed=true")["spec"] == plain["spec"]                 # the same study, resumed
    result = _invoke(tune + ["-o", "signed=false"])
    assert result.exit_code == 2 and "exists with other settings (task_options differ)" in result.stderr


def test_checkpoint_every_is_passed_on_and_a_finished_run_resumed_reports_its_loss(tmp_path, monkeypatch):
    from rnncap import checkpoint

    saves = []
    real_save = checkpoint.save
    monkeypatch.setattr(checkpoint, "save", lambda path, identity, **kw: (saves.append(kw["step"]),
                                                                          real_save(path, identity, **kw)))
    args = TRAIN + ["--steps", "6", "--checkpoint-every", "2", "--checkpoint", tmp_path / "c.npz", "--json"]
    first = json.loads(_invoke(args).stdout)
    assert saves == [2, 4, 6, 6]                                   # every 2 steps, and once more at the end
    again = json.loads(_invoke(args + ["--resume"]).stdout)
    assert again["loss"] is not None and again["loss"] == first["loss"] and again["steps"] == 6


def test_available_memory_is_read_and_has_a_fallback(monkeypatch):
    assert resources.available_bytes() > 0
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: (_ for _ in ()).throw(OSError("no /proc"))
                        if path == "/proc/meminfo" else real_open(path, *a, **k))
    assert resources.available_bytes() > 0                         # from os.sysconf


def test_every_task_footprint_matches_the_task_it_describes():
    from rnncap.tasks import make_task

    for name, (_, config_cls) in TASKS.items():
        task = make_task(name)
        footprint = task.config.footprint()
        assert (footprint.n_in, footprint.n_out) == (task.n_in, task.n_out), name
        assert footprint.steps == task.batch(0, numpy.random.default_rng(0)).x.shape[0], name
        assert {f.name for f in fields(config_cls)} == set(field_types(config_cls)), name
