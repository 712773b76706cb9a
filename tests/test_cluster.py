"""Studies on real Dask clusters: a LocalCluster of worker processes, and `dask scheduler` and `dask worker`
started as a user starts them; workers killed while they train, the scheduler lost, workers that cannot run
rnncap. Dask is in the test extra: these tests never skip.

Every wait has a time limit (the ``deadline`` fixture stops a test that hangs), and every cluster and process
a test starts is closed by a fixture's finaliser.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import distributed
import pytest
from typer.testing import CliRunner

import rnncap
from rnncap.cli import app
from rnncap.store import Store
from rnncap.tune import cluster as cluster_module
from rnncap.tune.study import run_study, study_spec

runner = CliRunner()
TINY = ["-o", "n_samples=40", "-o", "n_in=6", "-o", "unroll=3"]
PACKAGE_ROOT = str(Path(rnncap.__file__).resolve().parents[1])     # workers import the rnncap the tests import


@pytest.fixture(autouse=True)
def deadline():
    """Fail a test that runs past 150 s instead of hanging the suite."""
    def expire(signum, frame):
        raise TimeoutError("the test ran past its 150 s limit")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 150)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


def local_cluster(n_workers: int = 2) -> distributed.LocalCluster:
    return distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                    dashboard_address="127.0.0.1:0")        # any free port: the machine is shared


@pytest.fixture(scope="module")
def cluster():
    """Two worker processes of one thread each, shared by the tests that leave them alive."""
    with local_cluster() as shared:
        yield shared


def tune(study: str, store, *options: str, steps: int = 40, trials: int = 6):
    return runner.invoke(app, ["tune", "--study", study, "--cell", "gru", "--units", "4", "--strategy", "random",
                               "--trials", str(trials), "--steps", str(steps), "--population", "2",
                               "--store", str(store), *TINY, *options])


def trials_by_number(store) -> dict[int, tuple]:
    with Store(store) as db:
        return {r["number"]: (r["key"], r["status"], r["objective"]) for r in db.trials(db.studies()[0]["name"])}


def worker_lines(stderr: str) -> dict[int, str]:
    """The progress line of each finished trial: trial number -> the worker that ran it."""
    return {int(line.split()[1].rstrip(":")): line.rsplit(" on ", 1)[1]
            for line in stderr.splitlines() if line.startswith("trial ") and " on tcp://" in line}


# A LocalCluster --------------------------------------------------------------------------------------------------

def test_a_study_on_a_cluster_gives_the_trials_of_two_local_workers(cluster, tmp_path):
    on_cluster = tune("s", tmp_path / "dask.sqlite", "--scheduler", cluster.scheduler_address)
    assert on_cluster.exit_code == 0, on_cluster.output
    local = tune("s", tmp_path / "local.sqlite", "--workers", "2")
    assert local.exit_code == 0, local.output
    # the random strategy's points do not depend on which result comes back first, and training is
    # deterministic: the same trials (keys), the same outcomes, bit for bit
    assert trials_by_number(tmp_path / "dask.sqlite") == trials_by_number(tmp_path / "local.sqlite")
    assert len(trials_by_number(tmp_path / "dask.sqlite")) == 6
    ran_on = worker_lines(on_cluster.stderr)                  # one line per finished trial, naming its worker
    assert sorted(ran_on) == list(range(6))
    assert set(ran_on.values()) <= set(cluster.scheduler_info["workers"])
    assert worker_lines(local.stderr) == {}


def test_the_driver_keeps_dask_logs_quiet_while_connected_and_restores_them(cluster):
    """A lost scheduler must reach the user as rnncap's one line: while the executor is connected, neither the
    client's retries nor its comms' closed-stream tracebacks (distributed.batched) may print; afterwards, the
    levels are what they were."""
    import logging

    names = ("distributed", "distributed.client", "distributed.batched", "distributed.comm.tcp")
    before = {name: logging.getLogger(name).getEffectiveLevel() for name in names}
    assert before["distributed.batched"] < logging.CRITICAL                  # Dask would print it by default
    executor = cluster_module.DaskExecutor(cluster.scheduler_address)
    try:
        assert all(logging.getLogger(name).getEffectiveLevel() >= logging.CRITICAL for name in names)
    finally:
        executor.shutdown()
    assert {name: logging.getLogger(name).getEffectiveLevel() for name in names} == before


def test_reproduce_runs_an_experiment_on_the_cluster(cluster, tmp_path):
    path = tmp_path / "reproduce.sqlite"
    result = runner.invoke(app, ["reproduce", "capacity", "--preset", "smoke", "--scheduler",
                                 cluster.scheduler_address, "--store", str(path)])
    assert result.exit_code == 0, result.output
    assert "capacity (smoke): 6 of 6 studies finished" in result.stdout
    with Store(path) as db:
        studies = db.studies()
    assert len(studies) == 6 and all(s["trials"] == 2 and s["running"] == 0 and s["failed"] == 0 for s in studies)
    assert len(worker_lines(result.stderr)) >= 2


def study_in_a_thread(store, name: str, trials: int, scheduler: str) -> tuple[threading.Thread, dict]:
    """Run a study (600-step trials, about a second each) in a thread; its summary, or its error, in the dict."""
    spec = study_spec("capacity", "gru", 1, units=4, strategy="random",
                      task_options={"n_samples": 40, "n_in": 6, "unroll": 3}, fixed={"steps": 600})
    outcome: dict = {}

    def drive():
        try:
            with Store(store) as db:
                outcome["summary"] = run_study(db, name, spec, trials, scheduler=scheduler)
        except BaseException as err:                       # reported by the test, not lost in the thread
            outcome["error"] = err

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    return driver, outcome


def kill_busy_workers(cluster, client, driver: threading.Thread, kills: int) -> int:
    """SIGKILL a worker while it runs a population, ``kills`` times (or until the study ends); how many landed."""
    landed = 0
    while landed < kills and driver.is_alive():
        busy = {worker: keys for worker, keys in client.processing().items() if keys}
        if not busy:
            time.sleep(0.05)
            continue
        worker, keys = next(iter(busy.items()))
        os.kill(client.run(os.getpid, workers=[worker])[worker], signal.SIGKILL)
        # the scheduler counts a death under each task the worker held (ts.suspicious); a task that had just
        # finished has none, and that kill does not count
        for _ in range(200):
            if worker not in client.scheduler_info()["workers"]:
                break
            time.sleep(0.05)
        landed += any(cluster.scheduler.tasks.get(key) is not None and cluster.scheduler.tasks[key].suspicious > 0
                      for key in keys)
        client.wait_for_workers(2, timeout=60)             # the nanny starts a fresh worker
    return landed


def killed_study(cluster, client, store, name: str, trials: int, kills: int) -> list[dict]:
    """Run a study while ``kills`` workers are killed under it; its rows, once it has exactly its trials."""
    driver, outcome = study_in_a_thread(store, name, trials, cluster.scheduler_address)
    landed = kill_busy_workers(cluster, client, driver, kills)
    driver.join(timeout=120)
    assert not driver.is_alive() and "error" not in outcome, outcome.get("error")
    assert landed == kills and outcome["summary"]["trials"] == trials
    with Store(store) as db:
        rows = db.trials(name)
    assert len(rows) == trials and len({r["key"] for r in rows}) == trials          # its count, none twice
    assert all(r["status"] != "running" for r in rows)
    return rows


def test_workers_killed_while_they_train(tmp_path):
    """The rule: a population whose worker dies runs again elsewhere; past Dask's allowed failures, it is failed."""
    with local_cluster() as killing, distributed.Client(killing.scheduler_address) as client:
        rows = killed_study(killing, client, tmp_path / "killed.sqlite", "k", trials=8, kills=3)
        assert all(r["status"] in ("done", "infeasible") for r in rows), [r["reason"] for r in rows]

        # a population that kills every worker it runs on must not go round forever: with no failure allowed,
        # one death records it failed, and the study still reaches its count
        killing.scheduler.allowed_failures = 0
        rows = killed_study(killing, client, tmp_path / "killed.sqlite", "f", trials=4, kills=1)
        failed = [r for r in rows if r["status"] == "failed"]
        assert failed and all(r["reason"].startswith("KilledWorker: 1 worker death under it") for r in failed)


# Workers that cannot run the study -------------------------------------------------------------------------------

class Processes:
    """Processes a test starts (each in its own process group, with its children), ended at the test's end.

    They run in a folder of their own, which holds their logs: ``python -m`` puts its working directory first
    on the path, and a worker started in the repository would import the rnncap there, whatever its PYTHONPATH.
    """

    def __init__(self, folder: Path):
        self.folder, self.started = folder, []
        folder.mkdir()

    def start(self, *args: str, env: dict | None = None, cwd=None) -> subprocess.Popen:
        log = open(self.folder / f"process-{len(self.started)}.log", "w")
        process = subprocess.Popen([sys.executable, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=cwd or self.folder, start_new_session=True)
        self.started.append((process, log))
        return process

    def scheduler(self, port: int) -> subprocess.Popen:
        return self.start("-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                          "--no-dashboard", "--dashboard-address", "127.0.0.1:0")

    def worker(self, address: str, pythonpath: str = PACKAGE_ROOT, cwd=None) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": pythonpath}
        return self.start("-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                          "--no-dashboard", env=env, cwd=cwd)

    def end(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        for process, log in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=20)
            _signal_group(process, signal.SIGKILL)          # a worker process its nanny left behind
            log.close()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        pass


@pytest.fixture
def processes(tmp_path):
    started = Processes(tmp_path / "processes")
    yield started
    started.end()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_workers(address: str, n: int) -> list[str]:
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(n, timeout=60)
        return sorted(client.scheduler_info()["workers"])


def fake_rnncap(root: Path, init: str) -> str:
    """A directory holding an ``rnncap`` package whose ``__init__.py`` is ``init`` (and rnncap's other modules)."""
    shutil.copytree(Path(rnncap.__file__).parent, root / "rnncap", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "rnncap" / "__init__.py").write_text(init)
    return str(root)


def test_workers_that_cannot_run_the_study_are_named(tmp_path, processes, monkeypatch):
    with local_cluster(n_workers=0) as empty:
        address = empty.scheduler_address
        monkeypatch.setattr(cluster_module, "WORKER_WAIT", 1.0)
        alone = tune("w", tmp_path / "w.sqlite", "--scheduler", address)
        assert alone.exit_code == 2 and "no Dask worker joined the scheduler" in alone.stderr
        assert len(alone.stderr.strip().splitlines()) == 1

        old = fake_rnncap(tmp_path / "old", 'raise ImportError("pretend this rnncap is broken")\n')
        init = Path(rnncap.__file__).read_text()
        assert f'__version__ = "{rnncap.__version__}"' in init
        other = fake_rnncap(tmp_path / "other", init.replace(f'__version__ = "{rnncap.__version__}"',
                                                             '__version__ = "0.0.1"'))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        processes.worker(address, pythonpath=old)
        processes.worker(address, pythonpath=other)
        processes.worker(address, cwd=elsewhere)                      # the right rnncap, another directory
        workers = wait_for_workers(address, 3)

        # at connection: every worker that cannot run the study, and why, in one line
        refused = tune("w", tmp_path / "w.sqlite", "--scheduler", address)
        assert refused.exit_code == 2, refused.output
        assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.output
        assert "2 of 3 Dask workers cannot run this study's trials" in refused.stderr
        assert "cannot import rnncap (ImportError: pretend this rnncap is broken)" in refused.stderr
        assert f"has rnncap 0.0.1 where the driver has {rnncap.__version__}" in refused.stderr

        # a text8 corpus given by a relative path: the worker in another directory cannot read it
        monkeypatch.chdir(tmp_path)
        Path("corpus.txt").write_text("the quick brown fox jumps over the lazy dog " * 300)
        text8 = runner.invoke(app, ["tune", "--study", "t", "--task", "text8", "--cell", "gru", "--units", "4",
                                    "--trials", "1", "--steps", "5", "--store", "t.sqlite", "-o", "path=corpus.txt",
                                    "--scheduler", address])
        assert text8.exit_code == 2 and "3 of 3 Dask workers" in text8.stderr
        assert f"cannot read corpus.txt (working directory {elsewhere})" in text8.stderr

        # a worker that passed no check (one that joins later): the population it gets says what is wrong
        monkeypatch.setattr(cluster_module.DaskExecutor, "_check_workers", lambda self: None)
        late = tune("w", tmp_path / "w.sqlite", "--scheduler", address, trials=8)
        assert late.exit_code == 2 and "Traceback" not in late.output, late.output
        assert any(f"Dask worker {worker} cannot run this study's trials" in late.stderr for worker in workers)
        assert "cannot import rnncap" in late.stderr or "has rnncap 0.0.1" in late.stderr


def test_unreachable_scheduler_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster_module, "CONNECT_TIMEOUT", 1.0)
    result = tune("u", tmp_path / "u.sqlite", "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    assert result.exit_code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# `dask scheduler` and `dask worker`, as a user starts them ---------------------------------------------------------

def _finished_and_running(path) -> tuple[int, int]:
    try:
        # closed here, not left to the garbage collector: an open connection of this process would keep an old
        # index of the WAL, which the driver deletes when it closes last
        with closing(sqlite3.connect(path, timeout=5)) as db:
            finished, running = db.execute("SELECT SUM(status != 'running'), SUM(status = 'running') "
                                           "FROM trials").fetchone()
        return finished or 0, running or 0
    except sqlite3.OperationalError:                                        # not created yet
        return 0, 0


def start_driver(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": PACKAGE_ROOT})


def wait_until_running(driver: subprocess.Popen, store, finished: int) -> None:
    """Until the study has ``finished`` trials finished and one running (at most a minute)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and driver.poll() is None:
        done, running = _finished_and_running(store)
        if done >= finished and running >= 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"the driver never had {finished} trials finished and one running: "
                         f"exit status {driver.poll()}")


def test_dask_scheduler_and_workers_as_a_user_starts_them(tmp_path, processes):
    """A study completes; the driver killed (-9) resumes; the scheduler lost is one line, and a new one resumes."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = processes.scheduler(port)
    processes.worker(address)
    processes.worker(address)
    workers = wait_for_workers(address, 2)

    done = tune("a", tmp_path / "a.sqlite", "--scheduler", address)
    assert done.exit_code == 0, done.output
    assert len(trials_by_number(tmp_path / "a.sqlite")) == 6
    assert set(worker_lines(done.stderr).values()) <= set(workers)

    store = tmp_path / "b.sqlite"
    command = [sys.executable, "-m", "rnncap", "tune", "--study", "b", "--cell", "gru", "--units", "4",
               "--strategy", "random", "--trials", "8", "--steps", "600", "--population", "1",
               "--store", str(store), "--scheduler", address, *TINY]
    driver = start_driver(command)
    try:
        wait_until_running(driver, store, finished=1)
        driver.kill()                                                       # kill -9: no clean-up
        driver.wait(timeout=30)
        with Store(store) as db:
            first = {r["number"]: r for r in db.trials("b") if r["status"] != "running"}

        # the same command resumes; then the scheduler dies under it: one line, exit 2
        driver = start_driver(command)
        wait_until_running(driver, store, finished=len(first) + 1)
        os.kill(scheduler.pid, signal.SIGKILL)
        stderr = driver.communicate(timeout=60)[1]
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 2, stderr
    errors = [line for line in stderr.splitlines() if not line.startswith(("trial ", "b: "))]
    assert errors == [f"rnncap tune: error: lost the Dask scheduler at {address}: start it (and its workers) again "
                      "and run the same command; the study resumes, and the trials that were running run again"]
    with Store(store) as db:
        before = {r["number"]: r for r in db.trials("b") if r["status"] != "running"}
        left_running = [r["number"] for r in db.trials("b") if r["status"] == "running"]
    assert left_running and len(first) < len(before) < 8

    # a new scheduler on the same address, new workers, the same command: the study resumes and completes
    processes.scheduler(port)
    processes.worker(address)
    processes.worker(address)
    wait_for_workers(address, 2)
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONPATH": PACKAGE_ROOT})
    assert resumed.returncode == 0, resumed.stderr
    with Store(store) as db:
        after = db.trials("b")
    assert len(after) == 8 and len({r["key"] for r in after}) == 8                 # its count, none twice
    assert all(r["status"] in ("done", "infeasible") for r in after)
    for number, row in {**first, **before}.items():                          # nothing finished is run again
        assert after[number]["finished"] == row["finished"] and after[number]["objective"] == row["objective"]
