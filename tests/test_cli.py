"""The command line, through Typer's CliRunner: results, --json, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from rnncap import __version__
from rnncap.backend import gpu_unavailable_reason
from rnncap.cli import app
from rnncap.network import count_params

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def run_json(*args: str) -> dict:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)                                        # one JSON object, nothing else


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"rnncap {__version__}"


def test_help_lists_the_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("cells", "params", "gradcheck"):
        assert command in result.stdout


def test_cells_json_lists_six_cells_with_gate_counts():
    cells = {c["name"]: c for c in run_json("cells")["cells"]}
    assert list(cells) == ["rnn", "irnn", "ugrnn", "gru", "lstm", "plusrnn"]
    assert [cells[n]["gates"] for n in cells] == [1, 1, 2, 3, 4, 4]
    assert cells["lstm"]["params_per_layer"] == "4N(n_in + N + 1) + 2N"


def test_params_for_a_budget_is_maximal():
    out = run_json("params", "--cell", "lstm", "--depth", "2", "--n-in", "64", "--n-out", "2", "--budget", "10000")
    assert out["params"] == count_params("lstm", 2, 64, 2, out["n_h"]) <= 10000
    assert out["params_with_one_more_unit"] > 10000


def test_params_human_output():
    result = run("params", "--cell", "+rnn", "--depth", "2", "--units", "8")
    assert result.exit_code == 0 and "8 units per layer" in result.stdout


@pytest.mark.parametrize("cell,depth,extra", [("gru", "2", []), ("plusrnn", "2", []), ("rnn", "1", ["-s", "relu"])])
def test_gradcheck_passes_and_reports_every_array(cell, depth, extra):
    out = run_json("gradcheck", "--cell", cell, "--depth", depth, *extra)
    assert out["passed"] and out["max_error"] < 1e-6
    assert "readout.W" in out["errors"] and "x" in out["errors"] and "state0.layer0.h" in out["errors"]


def test_gradcheck_exits_1_when_the_tolerance_is_not_met():
    result = run("gradcheck", "--cell", "rnn", "--tolerance", "0", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["passed"] is False


@pytest.mark.parametrize("args,message", [
    (["params", "--cell", "transformer", "--budget", "1000"], "unknown cell 'transformer'"),
    (["params", "--cell", "plusrnn", "--depth", "1", "--budget", "1000"], "needs depth >= 2"),
    (["params", "--cell", "gru", "--budget", "10"], "too small"),
    (["params", "--cell", "gru", "--budget", "-5"], "too small"),
    (["params", "--cell", "gru"], "exactly one of --budget and --units"),
    (["gradcheck", "--cell", "irnn", "-s", "tanh"], "does not take nonlinearity"),
    (["gradcheck", "--cell", "gru", "--device", "tpu"], "unknown device"),
])
def test_user_errors_are_one_line_and_exit_2(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.skipif(gpu_unavailable_reason() is None, reason="a GPU is available here")
def test_gpu_without_cupy_is_a_one_line_error():
    result = run("gradcheck", "--cell", "gru", "--device", "gpu")
    assert result.exit_code == 2 and "--device gpu" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_device_from_environment(monkeypatch):
    monkeypatch.setenv("RNNCAP_DEVICE", "quantum")
    result = run("gradcheck", "--cell", "gru")
    assert result.exit_code == 2 and "unknown device 'quantum'" in result.stderr


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "rnncap", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == f"rnncap {__version__}"
