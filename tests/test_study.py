"""The study store and the study driver: persistence, kill -9 and resume, workers, summaries."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from rnncap.cli import app
from rnncap.errors import RnncapError
from rnncap.store import Store
from rnncap.tune.study import run_study, study_space, study_spec, summarize, trial_for

runner = CliRunner()
TINY = {"n_samples": 40, "n_in": 6, "unroll": 3}


def tiny_spec(strategy="random", steps=40, cell="gru"):
    return study_spec("capacity", cell, 1, units=4, strategy=strategy, task_options=TINY, fixed={"steps": steps})


def test_a_study_runs_and_is_stored(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        summary = run_study(store, "s", tiny_spec(), 4)
        rows = store.trials("s")
    assert summary["trials"] == 4 and [r["number"] for r in rows] == [0, 1, 2, 3]
    assert all(r["status"] in ("done", "infeasible") for r in rows)
    assert len({r["key"] for r in rows}) == 4
    for r in rows:                                                          # b comes from b_per_param
        b = r["trial"]["task_options"]["n_samples"]
        assert b == max(2, round(r["hparams"]["b_per_param"] * summary["spec"]["params"]))


def test_resuming_adds_trials_and_repeats_none(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        run_study(store, "s", tiny_spec(), 3)
        first = {r["key"]: r["objective"] for r in store.trials("s")}
    with Store(path) as store:
        run_study(store, "s", tiny_spec(), 5)
        rows = store.trials("s")
    assert len(rows) == 5 and len({r["key"] for r in rows}) == 5
    assert all(first[r["key"]] == r["objective"] for r in rows if r["key"] in first)


def test_a_study_with_other_settings_is_refused(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        run_study(store, "s", tiny_spec(), 1)
        with pytest.raises(RnncapError, match="exists with other settings"):
            run_study(store, "s", tiny_spec(steps=41), 2)
        with pytest.raises(RnncapError, match="no study 'nope'"):
            summarize(store, "nope")


def count_finished_and_running(path) -> tuple[int, int]:
    """(finished, running) trials in the store at ``path``, (0, 0) before it has any; creates nothing."""
    if not path.exists():
        return 0, 0
    try:
        db = sqlite3.connect(path, timeout=5)
        finished, running = db.execute("SELECT SUM(status != 'running'), SUM(status = 'running') "
                                       "FROM trials").fetchone()
        db.close()
        return finished or 0, running or 0
    except sqlite3.OperationalError:                                        # not made yet
        return 0, 0


def test_kill_dash_nine_then_resume_loses_nothing_and_repeats_nothing(tmp_path):
    path = tmp_path / "killed.sqlite"
    command = [sys.executable, "-m", "rnncap", "tune", "--study", "k", "--cell", "gru", "--units", "4",
               "--strategy", "random", "--trials", "8", "--steps", "400", "--population", "2", "--store", str(path),
               "--json",
               *[arg for k, v in TINY.items() for arg in ("-o", f"{k}={v}")]]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    # wait for a finished population and the next one under way: between the two, a driver that has just
    # committed one population has no trial running yet, and a kill then would test nothing
    while time.time() < deadline and process.poll() is None:
        finished, running = count_finished_and_running(path)
        if finished >= 2 and running >= 1:
            break
        time.sleep(0.02)
    assert process.poll() is None, process.stderr.read().decode()
    os.kill(process.pid, signal.SIGKILL)                                    # mid-trial, no clean-up
    process.wait()
    with Store(path) as store:
        before = {r["number"]: r for r in store.trials("k") if r["status"] != "running"}
        left_running = [r["number"] for r in store.trials("k") if r["status"] == "running"]
    assert len(before) >= 2 and len(before) < 8 and left_running            # killed while a trial ran

    result = runner.invoke(app, command[3:])                                # the same command resumes
    assert result.exit_code == 0, result.output
    with Store(path) as store:
        after = store.trials("k")
    assert len(after) == 8 and all(r["status"] != "running" for r in after)
    assert len({r["key"] for r in after}) == 8                              # none twice
    for number, row in before.items():                                      # no finished trial lost or redone
        assert after[number]["key"] == row["key"] and after[number]["finished"] == row["finished"]
    for number in left_running:                                             # the interrupted trial ran again
        assert after[number]["finished"] is not None


# a driver with a pool of two workers, each busy for ten minutes; it prints their process ids
DRIVER_WITH_A_POOL = """
import multiprocessing, time
from rnncap.tune.study import make_executor
pool = make_executor(2)
busy = [pool.submit(time.sleep, 600) for _ in range(2)]
deadline = time.time() + 60
while len(multiprocessing.active_children()) < 2 and time.time() < deadline:
    time.sleep(0.05)
print(*[child.pid for child in multiprocessing.active_children()], flush=True)
time.sleep(600)
"""


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` is still running (a zombie, ended but not yet reaped, is not)."""
    if not os.path.isdir("/proc"):                                          # no /proc here: a zombie counts
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_killed_driver_takes_its_pool_of_workers_with_it(tmp_path):
    # the driver's stderr goes to a file: its workers inherit it, and a pipe would stay open while they live
    errors = tmp_path / "driver.err"
    with open(errors, "w") as stderr:
        driver = subprocess.Popen([sys.executable, "-c", DRIVER_WITH_A_POOL], stdout=subprocess.PIPE,
                                  stderr=stderr, text=True)
    workers = []
    try:
        workers = [int(pid) for pid in driver.stdout.readline().split()]
        assert len(workers) == 2, f"the driver started {len(workers)} workers: {errors.read_text()}"
        assert all(process_alive(pid) for pid in workers)
        os.kill(driver.pid, signal.SIGKILL)                                 # no clean-up in the driver
        driver.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(process_alive(pid) for pid in workers):
            time.sleep(0.05)
        assert not any(process_alive(pid) for pid in workers)              # not left sleeping ten minutes
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.mark.parametrize("strategy", ["random", "gp"])
def test_parallel_workers_give_valid_distinct_trials(tmp_path, strategy):
    spec = tiny_spec(strategy, steps=30)
    with Store(tmp_path / "w.sqlite") as store:
        summary = run_study(store, "w", spec, 6, workers=2)
        rows = store.trials("w")
    assert summary["trials"] == 6 and len({r["key"] for r in rows}) == 6
    space = study_space(spec)
    for r in rows:
        assert space.contains(r["hparams"]), r["hparams"]
        assert r["trial"] == trial_for(spec, r["hparams"])


def test_summary_curves_on_a_synthetic_store(tmp_path):
    spec = tiny_spec()
    spec["direction"] = "min"
    with Store(tmp_path / "syn.sqlite") as store:
        store.create_or_open_study("syn", spec)
        outcomes = [("done", 5.0), ("infeasible", None), ("done", 3.0), ("done", 4.0), ("failed", None)]
        for number, (status, objective) in enumerate(outcomes):
            store.start_trial("syn", number, f"k{number}", {"n": number}, {"lr": number})
            store.finish_trial("syn", number, status, objective, {}, None, 1.0)
        summary = summarize(store, "syn")
    assert [c["best"] for c in summary["curve"]] == [5.0, 5.0, 3.0, 3.0, 3.0]
    assert [c["median"] for c in summary["curve"]] == [5.0, 5.0, 4.0, 4.0, 4.0]
    # Table 1's rule: infeasible / (done + infeasible); the failed trial counts on neither side
    assert summary["infeasible_fraction"] == 0.25 and summary["failed"] == 1 and summary["best"]["number"] == 2


def test_study_cli_list_show_export(tmp_path):
    path = str(tmp_path / "cli.sqlite")
    args = ["tune", "--study", "c", "--cell", "rnn", "--units", "3", "--trials", "2", "--steps", "20",
            "--strategy", "random", "--store", path, "-o", "n_samples=30", "-o", "n_in=4"]
    assert runner.invoke(app, args).exit_code == 0
    listed = json.loads(runner.invoke(app, ["study", "list", "--store", path, "--json"]).stdout)
    assert [s["name"] for s in listed["studies"]] == ["c"] and listed["studies"][0]["trials"] == 2
    shown = json.loads(runner.invoke(app, ["study", "show", "c", "--store", path, "--json"]).stdout)
    assert shown["trials"] == 2 and len(shown["curve"]) == 2
    csv_out = runner.invoke(app, ["study", "export", "c", "--store", path]).stdout.splitlines()
    assert csv_out[0].startswith("number,status,objective") and len(csv_out) == 3
    exported = json.loads(runner.invoke(app, ["study", "export", "c", "--format", "json", "--store", path]).stdout)
    assert len(exported["trials"]) == 2
    bad = runner.invoke(app, ["study", "show", "missing", "--store", path])
    assert bad.exit_code == 2 and "no study 'missing'" in bad.stderr
    deleted = runner.invoke(app, ["study", "delete", "c", "--yes", "--store", path])
    assert deleted.exit_code == 0 and "deleted 1 studies and 2 trials" in deleted.stdout
    assert json.loads(runner.invoke(app, ["study", "list", "--store", path, "--json"]).stdout)["studies"] == []
    assert runner.invoke(app, ["study", "delete", "c", "--yes", "--store", path]).exit_code == 2
