"""Studies across machines: populations of trials sent to a Dask cluster (``--scheduler tcp://HOST:8786``).

The study driver (:func:`rnncap.tune.study.run_study`) sends work here
exactly as it sends it to local processes: one call per *population*, the
trials a worker trains together (:func:`rnncap.trial.run_trials`). The
executor below turns each call into a Dask task and each task into a
``concurrent.futures`` future the driver waits on.

What travels. To a worker: the trials, plain JSON-able dicts, and nothing
else. From it: their outcomes, and the worker's address. Only the driver
writes the store; workers never see it. A file a trial reads (the text8
corpus given by ``-o path=...``) is *not* sent: every worker reads it from
its own disk at the same path, so copy it to that path on every machine (an
absolute path is best: a relative one is read from the worker's working
directory).

Checks. On connecting, the driver waits for a first worker (at most
:data:`WORKER_WAIT` seconds) and asks every worker whether it can run the
study: whether it imports rnncap, at the driver's version, and finds each
file the trials read, of the driver's size. Every population repeats the
check on the worker that runs it, before it unpickles anything of rnncap's,
so that a worker that joins later is checked too. A worker that fails stops
the study with one line naming the worker and what differs. The checking
functions travel *by value* (cloudpickle), so that they run even where rnncap
does not import; a task that named an rnncap function would instead crash
such a worker on arrival and leave the study waiting.

Faults. A worker that dies while it trains (killed, out of memory, its
machine gone): Dask runs the population again from the start on another
worker, and training is deterministic, so the outcome is the one it would
have had. A population whose workers die under it more than
``distributed.scheduler.allowed-failures`` times (Dask's default: 3) is
recorded ``failed`` and the study goes on. The scheduler going away stops
the driver with one line; the trials it was running stay ``running`` in the
store, and the same command, once a scheduler and workers are back, resumes
the study and runs them again.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
import threading
import time
import uuid
from concurrent.futures import Future, InvalidStateError

from rnncap import __version__
from rnncap.errors import RnncapError
from rnncap.formatting import duration
from rnncap.trial import failed_outcomes

CONNECT_TIMEOUT = 30.0        # seconds to reach the scheduler
WORKER_WAIT = 60.0            # seconds to wait for a first worker to join
SLOTS_REFRESH = 5.0           # seconds between two readings of the cluster's size


def study_files(spec: dict) -> list[str]:
    """The files a study's trials read (a task option ``path``: text8's corpus), which workers must have too."""
    path = spec["task_options"].get("path")
    return [os.fspath(path)] if path else []


# Run on the workers (sent by value) ---------------------------------------------------------

def worker_problem(version: str, files: dict[str, int]) -> str | None:
    """What keeps this worker from running the driver's trials, and the fix; None when nothing does.

    ``version`` is the driver's rnncap version and ``files`` the sizes of the
    files its trials read. Imports nothing of rnncap's before it knows that
    rnncap imports.
    """
    try:
        import rnncap
    except Exception as err:                 # not installed, or broken: either way, the fix is the same
        return f"cannot import rnncap ({type(err).__name__}: {err}): install rnncap {version} there"
    if rnncap.__version__ != version:
        return f"has rnncap {rnncap.__version__} where the driver has {version}: install rnncap {version} there"
    for path, size in files.items():
        if not os.access(path, os.R_OK) or not os.path.isfile(path):
            return (f"cannot read {path} (working directory {os.getcwd()}): copy the file to that path there, "
                    "or give an absolute path that exists on every machine")
        if os.path.getsize(path) != size:
            return f"has {path} of {os.path.getsize(path)} bytes where the driver's has {size}: copy the driver's"
    return None


def run_on_worker(call: bytes, version: str, files: dict[str, int]) -> tuple[str, str | None, object]:
    """Check this worker, then run the pickled call ``(fn, args)``: ``(worker address, problem, fn(*args))``."""
    from distributed import get_worker

    address = get_worker().address
    problem = worker_problem(version, files)
    if problem is not None:
        return address, problem, None
    fn, args = pickle.loads(call)            # only now: unpickling it imports rnncap
    return address, None, fn(*args)


class _ByValue:
    """A function that a worker rebuilds from its code rather than importing it from its module."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def __reduce__(self):
        import cloudpickle

        return pickle.loads, (cloudpickle.dumps(self.fn),)


# On the driver --------------------------------------------------------------------------

class DaskExecutor:
    """``DaskExecutor(scheduler, files)``: connect, check the workers, then ``submit`` populations.

    ``submit(fn, trials, *more)`` runs ``fn(trials, *more)``, which returns one
    outcome dict per trial, on some worker; the future's outcomes each carry
    ``worker``, the address of the worker that ran them. ``slots()`` says how
    many populations to keep in flight: one per worker thread in the cluster.
    """

    def __init__(self, scheduler: str, files: list[str] = ()):
        try:
            import cloudpickle
            from distributed import Client
        except ImportError:
            raise RnncapError("--scheduler needs Dask: pip install 'rnncap[dask]' on this machine and on every "
                              "worker") from None
        cloudpickle.register_pickle_by_value(sys.modules[__name__])        # worker_problem, run_on_worker
        self.scheduler = scheduler
        self.files = {path: os.path.getsize(path) for path in files}
        self.running: dict[Future, object] = {}                           # ours -> Dask's
        self.lock = threading.Lock()
        # the client logs a lost scheduler as it retries and gives up, and its comms log the closed stream with
        # a traceback (distributed.batched, under "distributed"); the driver says it once, in its own words
        self.quieted = {name: logging.getLogger(name).level for name in ("distributed", "distributed.client")}
        for name in self.quieted:
            logging.getLogger(name).setLevel(logging.CRITICAL)
        try:
            self.client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as err:
            self._restore_logs()
            raise RnncapError(f"cannot reach the Dask scheduler at {scheduler} ({err}): start one with "
                              "`dask scheduler` and give its address, e.g. tcp://HOST:8786") from None
        try:
            self._check_workers()
            self.known_slots, self.slots_read = self._cluster_threads(), time.monotonic()
        except BaseException:
            self.shutdown()
            raise

    def _check_workers(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise RnncapError(f"no Dask worker joined the scheduler at {self.scheduler} within {WORKER_WAIT:g} s: "
                              f"start some with `dask worker {self.scheduler} --nworkers N --nthreads 1`") from None
        answers = self.client.run(worker_problem, __version__, self.files, on_error="return")
        problems = {address: answer if isinstance(answer, str) else f"cannot run the check ({answer})"
                    for address, answer in sorted(answers.items()) if answer is not None}
        if problems:
            raise RnncapError(f"{len(problems)} of {len(answers)} Dask workers cannot run this study's trials: "
                              + "; ".join(f"worker {address} {text}" for address, text in problems.items())
                              + "; restart each worker once it is fixed")

    def _cluster_threads(self) -> int:
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        return sum(w["nthreads"] for w in workers.values())

    def slots(self) -> int:
        """Populations to keep in flight: the cluster's worker threads (read again every few seconds)."""
        if time.monotonic() - self.slots_read > SLOTS_REFRESH:
            try:
                self.known_slots = self._cluster_threads()
            except (OSError, TimeoutError):                # the scheduler is gone: the futures will say so
                pass
            self.slots_read = time.monotonic()
        return max(1, self.known_slots)

    def submit(self, fn, trials: list, *more) -> Future:
        future = Future()
        task = self.client.submit(_ByValue(run_on_worker), pickle.dumps((fn, (trials, *more))), __version__,
                                  self.files, key=f"rnncap-population-{uuid.uuid4().hex}", pure=False)
        with self.lock:
            self.running[future] = task                    # a Dask future dropped is a task cancelled
        task.add_done_callback(lambda done: self._settle(done, future, len(trials)))
        return future

    def _settle(self, task, future: Future, count: int) -> None:
        """Runs in Dask's callback thread when ``task`` ends: ``future`` gets the outcomes, or the error."""
        from distributed import KilledWorker
        from distributed.comm.core import CommClosedError

        with self.lock:
            self.running.pop(future, None)
        result = error = None
        lost = RnncapError(f"lost the Dask scheduler at {self.scheduler}: start it (and its workers) again and run "
                           "the same command; the study resumes, and the trials that were running run again")
        if task.cancelled():
            error = lost
        else:
            try:
                address, problem, outcomes = task.result()
            except CommClosedError:                        # the scheduler died while the result was on its way
                error = lost
            except KilledWorker as err:
                deaths, last = err.allowed_failures + 1, getattr(err.last_worker, "address", err.last_worker)
                result = failed_outcomes(count, f"KilledWorker: {deaths} worker death{'s' * (deaths > 1)} under it, "
                                                f"the last on {last}, past Dask's distributed.scheduler."
                                                f"allowed-failures of {err.allowed_failures}; see the workers' logs")
            except Exception as err:
                error = RnncapError(f"a Dask worker could not run a population of trials ({type(err).__name__}: "
                                    f"{err}): install rnncap {__version__} on every worker")
            else:
                if problem is not None:
                    error = RnncapError(f"Dask worker {address} cannot run this study's trials: it {problem}, "
                                        "then restart it")
                else:
                    result = [{**outcome, "worker": address} for outcome in outcomes]
        try:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        except InvalidStateError:                          # the driver cancelled it meanwhile
            pass

    def shutdown(self, wait: bool = True) -> None:
        """Cancel what still runs and disconnect (the cluster and its workers stay up)."""
        with self.lock:
            tasks = list(self.running.values())
            self.running.clear()
        try:
            if tasks and self.client.status == "running":
                self.client.cancel(tasks)
        finally:
            self.client.close()
            self._restore_logs()

    def _restore_logs(self) -> None:
        for name, level in self.quieted.items():
            logging.getLogger(name).setLevel(level)


def finished_line(number: int, outcome: dict, spec: dict) -> str:
    """A progress line for a trial that a worker has finished: what it got, in how long, where."""
    if outcome["status"] == "done":
        what = f"{spec['objective']} {outcome['objective']:.4g}"
    else:
        what = f"{outcome['status']} ({outcome.get('reason') or 'no reason given'})"
    took = "" if outcome.get("wall_time") is None else f" in {duration(outcome['wall_time'])}"
    return f"trial {number}: {what}{took} on {outcome['worker']}"
