"""The study store: SQLite, one file, every finished trial committed before the next starts.

A *study* is a named search: a task, a cell, a depth, a budget, a strategy
(``gp`` or ``random``), an objective and its direction, plus the settings all
its trials share (its ``spec``, a JSON dict). A *trial row* holds one trial:
its number in the study, the content hash of the trial dict (``key``), its
hyperparameters, its status, its metrics and objective, its wall time and
timestamps. Statuses:

    running     handed to a worker, not finished (or its process died)
    done        finished; ``objective`` set
    infeasible  the training diverged (the paper counts these)
    failed      the trial raised an error (a bug, or a machine fault)

Only the process that drives a study writes to its store; workers return
results. The database runs in WAL mode, and each finished trial is its own
transaction, so a driver killed at any moment (even ``kill -9``) loses no
finished trial; trials it left ``running``, and trials that ``failed``, are
run again when the study resumes, under the same number and hyperparameters,
and a finished trial is never run twice (``UNIQUE(study, key)``).

What a store file is, and how one is inspected without being changed and
created atomically: :mod:`rnncap.storefile`.

**One driver per study.** A driver holds the study's *lease*: a row naming it
(``host:pid``, since when) with a heartbeat it refreshes every sixth of
:data:`LEASE_SECONDS` from a thread of its own. A second driver is refused
while the lease is alive; it takes the study over once the heartbeat is older
than :data:`LEASE_SECONDS` (``RNNCAP_LEASE_SECONDS`` overrides it), or at once
when the holder ran on this host (the same host name) and its process is gone
(``kill -9``). The heartbeat compares clocks across machines, so theirs must
roughly agree, and machines sharing a store need distinct host names. Every
write a driver makes checks, in the same transaction, that it still holds the
lease, so a driver that lost it (paused for longer than the lease) stops
without touching what its successor has done.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import socket
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from rnncap.errors import RnncapError
from rnncap.storefile import APPLICATION_ID, SCHEMA_VERSION, create, inspect, mark

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "Store", "default_store_path", "lease_seconds"]

DEFAULT_STORE = "rnncap-studies.sqlite"
STATUSES = ("running", "done", "infeasible", "failed")
LEASE_SECONDS = 30.0                      # a driver silent this long has lost its study
MODES = ("create", "write", "read")

# The stores this process has open, by file: (device, inode) -> how many. POSIX drops every lock a process holds
# on a file when it closes any descriptor of that file, so inspect()'s read of the header (and its immutable
# connection) would take this process's locks from under an open Store: another process, closing its connection,
# would then take itself for the last one and delete the WAL that Store still writes to. A file this process
# already has open as a store was inspected when it was first opened, and is not read outside SQLite again.
_OPEN: dict[tuple[int, int], int] = {}
_OPEN_LOCK = threading.Lock()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino

_HOST = socket.gethostname()


def default_store_path() -> Path:
    return Path(os.environ.get("RNNCAP_STORE") or DEFAULT_STORE)


def lease_seconds() -> float:
    """How long a lease outlives its driver's last heartbeat: :data:`LEASE_SECONDS`, or $RNNCAP_LEASE_SECONDS."""
    raw = os.environ.get("RNNCAP_LEASE_SECONDS")
    if not raw:
        return LEASE_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise RnncapError(f"RNNCAP_LEASE_SECONDS must be a number of seconds > 0, got {raw!r}: "
                          f"set it to one, or unset it for the default {LEASE_SECONDS:g}")
    return seconds


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (POSIX; elsewhere assumed alive: its lease must lapse)."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:                              # another user's process
        return True
    return True


def _lapsed(lease: sqlite3.Row, now: float, seconds: float) -> bool:
    """A lease is over when its heartbeat is older than ``seconds``, or its driver's process is gone from this host."""
    return now - lease["heartbeat"] > seconds or (lease["host"] == _HOST and not _alive(lease["pid"]))


def _holder(lease: sqlite3.Row, now: float) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(lease["since"]))
    return f"{lease['host']}:{lease['pid']}, since {since}, last heartbeat {now - lease['heartbeat']:.0f} s ago"


class _Heartbeat(threading.Thread):
    """Refreshes one lease every ``interval`` seconds, on a connection of its own, until stopped or taken over."""

    def __init__(self, path: Path, study: str, token: str, interval: float):
        super().__init__(name=f"rnncap heartbeat {study}", daemon=True)
        self.path, self.study, self.token, self.interval = path, study, token, interval
        self.stopped = threading.Event()

    def run(self) -> None:
        db = sqlite3.connect(self.path, timeout=self.interval, isolation_level=None)
        try:
            while not self.stopped.wait(self.interval):
                try:
                    beat = db.execute("UPDATE leases SET heartbeat = ? WHERE study = ? AND token = ?",
                                      (time.time(), self.study, self.token))
                except sqlite3.OperationalError:         # the store was busy: the next beat tries again
                    continue
                if beat.rowcount == 0:                   # taken over: the driver's next write stops it
                    return
        finally:
            db.close()

    def stop(self) -> None:
        self.stopped.set()
        self.join()


class Store:
    """``Store(path, mode)``: open the study store at ``path`` (default :func:`default_store_path`).

    ``mode`` says what the command will do: ``create`` (run studies: a missing
    store is made, an unmarked one adopted), ``write`` (change studies that
    exist: the store must exist; an unmarked one is adopted) or ``read`` (the
    store must exist and is left exactly as it is).
    """

    def __init__(self, path=None, mode: str = "create"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.path = Path(path) if path is not None else default_store_path()
        self.mode = mode
        self._leases: dict[str, str] = {}                                  # study -> the token of our lease
        self._file = None
        with _OPEN_LOCK:                                                    # see _OPEN
            open_here = _file_id(self.path) in _OPEN
            found = "store" if open_here else inspect(self.path)
            if found in ("missing", "empty") and mode != "create":
                empty = " (the file is empty)" if found == "empty" else ""
                raise RnncapError(f"no study store at {self.path}{empty}: give --store the path of an existing store "
                                  "(tune, capacity, memory and reproduce create one)")
            if found == "missing":
                found = create(self.path)
            try:
                self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)   # autocommit; explicit BEGIN
                self.db.row_factory = sqlite3.Row
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                if found == "empty" or (found == "unmarked" and mode != "read"):
                    mark(self.db)
            except sqlite3.DatabaseError as err:
                raise RnncapError(f"cannot open the study store {self.path} ({err}): give another --store path") \
                    from None
            self._file = _file_id(self.path)
            _OPEN[self._file] = _OPEN.get(self._file, 0) + 1

    def close(self) -> None:
        with _OPEN_LOCK:
            self.db.close()
            if self._file is not None:
                _OPEN[self._file] -= 1
                if not _OPEN[self._file]:
                    del _OPEN[self._file]
                self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def _transaction(self):
        """One write transaction around the block: committed at its end, rolled back on an error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def _writing(self, study: str):
        """A transaction that writes ``study``: refused if this store drove it and has lost its lease since."""
        with self._transaction():
            token = self._leases.get(study)
            if token is not None:
                lease = self.db.execute("SELECT * FROM leases WHERE study = ?", (study,)).fetchone()
                if lease is None or lease["token"] != token:
                    holder = "which has let it go since" if lease is None else _holder(lease, time.time())
                    raise RnncapError(f"this driver lost study {study!r} to another driver ({holder}): its heartbeat "
                                      f"stopped for over {lease_seconds():g} s (was the process paused?); it stops "
                                      "here without writing")
            yield

    # one driver per study -----------------------------------------------------------------

    @contextmanager
    def lease(self, study: str):
        """Hold ``study``'s lease while the block runs, with a heartbeat; refused while another driver holds it."""
        if self.mode == "read":
            raise ValueError("a store opened to read cannot drive a study")
        seconds = lease_seconds()
        token = secrets.token_hex(8)
        with self._transaction():
            now = time.time()
            held = self.db.execute("SELECT * FROM leases WHERE study = ?", (study,)).fetchone()
            if held is not None and not _lapsed(held, now, seconds):
                raise RnncapError(f"study {study!r} is being run by another driver ({_holder(held, now)}): let it "
                                  f"finish, or stop it; a driver that was killed loses the study {seconds:g} s after "
                                  "its last heartbeat")
            self.db.execute("INSERT OR REPLACE INTO leases (study, host, pid, token, since, heartbeat) "
                            "VALUES (?, ?, ?, ?, ?, ?)", (study, _HOST, os.getpid(), token, now, now))
        self._leases[study] = token
        heartbeat = _Heartbeat(self.path, study, token, seconds / 6)
        heartbeat.start()
        try:
            yield
        finally:
            heartbeat.stop()
            del self._leases[study]
            self.db.execute("DELETE FROM leases WHERE study = ? AND token = ?", (study, token))

    # studies ------------------------------------------------------------------------------

    def create_or_open_study(self, name: str, spec: dict) -> dict:
        """Create study ``name`` with ``spec``, or open it if it exists with the same spec."""
        row = self.db.execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
        spec_json = json.dumps(spec, sort_keys=True)
        if row is None:
            with self._writing(name):
                self.db.execute("INSERT INTO studies (name, spec, created) VALUES (?, ?, ?)",
                                (name, spec_json, time.time()))
            return spec
        stored = _decoded(row["spec"])
        if stored != json.loads(spec_json):
            differs = sorted(k for k in set(stored) | set(spec) if stored.get(k) != spec.get(k))
            raise RnncapError(f"study {name!r} exists with other settings ({', '.join(differs)} differ): "
                              "resume it with the same options, or choose another --study name")
        return stored

    def delete_studies(self, names: list[str]) -> int:
        """Remove studies and their trials, all or none (one transaction); return how many trials went.

        An unknown name, or a study that a live driver holds, refuses the whole deletion.
        """
        removed = 0
        with self._transaction():
            now, seconds = time.time(), lease_seconds()
            for name in names:
                self.study(name)                                         # a clear error if unknown
                held = self.db.execute("SELECT * FROM leases WHERE study = ?", (name,)).fetchone()
                if held is not None and not _lapsed(held, now, seconds):
                    raise RnncapError(f"study {name!r} is being run by a driver ({_holder(held, now)}): stop it "
                                      "before deleting the study; nothing was deleted")
            for name in dict.fromkeys(names):
                removed += self.db.execute("DELETE FROM trials WHERE study = ?", (name,)).rowcount
                self.db.execute("DELETE FROM studies WHERE name = ?", (name,))
                self.db.execute("DELETE FROM leases WHERE study = ?", (name,))
        return removed

    def study(self, name: str) -> dict:
        row = self.db.execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r["name"] for r in self.db.execute("SELECT name FROM studies ORDER BY created")]
            hint = f"; studies here: {', '.join(known)}" if known else "; this store has no studies"
            raise RnncapError(f"no study {name!r} in {self.path}{hint}")
        return _decoded(row["spec"])

    def studies(self) -> list[dict]:
        rows = self.db.execute("""
            SELECT s.name, s.spec, s.created,
                   COUNT(t.number) AS trials,
                   SUM(t.status = 'done') AS done,
                   SUM(t.status = 'infeasible') AS infeasible,
                   SUM(t.status = 'failed') AS failed,
                   SUM(t.status = 'running') AS running
            FROM studies s LEFT JOIN trials t ON t.study = s.name
            GROUP BY s.name ORDER BY s.created""").fetchall()
        return [{"name": r["name"], "spec": _decoded(r["spec"]), "created": r["created"],
                 "trials": r["trials"], "done": r["done"] or 0, "infeasible": r["infeasible"] or 0,
                 "failed": r["failed"] or 0, "running": r["running"] or 0} for r in rows]

    # trials -------------------------------------------------------------------------------

    def next_number(self, study: str) -> int:
        row = self.db.execute("SELECT MAX(number) AS n FROM trials WHERE study = ?", (study,)).fetchone()
        return 0 if row["n"] is None else row["n"] + 1

    def start_trial(self, study: str, number: int, key: str, trial: dict, hparams: dict) -> None:
        """Record a trial as running (before it is handed to a worker)."""
        try:
            with self._writing(study):
                self.db.execute(
                    "INSERT INTO trials (study, number, key, trial, hparams, status, started) "
                    "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                    (study, number, key, json.dumps(trial, sort_keys=True), json.dumps(hparams, sort_keys=True),
                     time.time()))
        except sqlite3.IntegrityError:
            raise RnncapError(f"study {study!r} already has trial {key} (number {number})") from None

    def restart_trial(self, study: str, number: int) -> None:
        """Run a trial again (one left running by a dead driver, or one that failed): running, its outcome cleared."""
        with self._writing(study):
            self.db.execute("UPDATE trials SET status = 'running', objective = NULL, metrics = NULL, reason = NULL, "
                            "wall_time = NULL, finished = NULL, started = ? WHERE study = ? AND number = ?",
                            (time.time(), study, number))

    def finish_trial(self, study: str, number: int, status: str, objective: float | None, metrics: dict,
                     reason: str | None, wall_time: float) -> None:
        """Record a trial's outcome: one transaction, committed before this returns."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"a finished trial's status must be done, infeasible or failed, got {status!r}")
        with self._writing(study):
            self.db.execute(
                "UPDATE trials SET status = ?, objective = ?, metrics = ?, reason = ?, wall_time = ?, finished = ? "
                "WHERE study = ? AND number = ?",
                (status, objective, json.dumps(metrics), reason, wall_time, time.time(), study, number))

    def trials(self, study: str, status: str | None = None) -> list[dict]:
        query = "SELECT * FROM trials WHERE study = ?" + (" AND status = ?" if status else "") + " ORDER BY number"
        rows = self.db.execute(query, (study, status) if status else (study,)).fetchall()
        return [_trial_row(r) for r in rows]


def _trial_row(row: sqlite3.Row) -> dict:
    return {"number": row["number"], "key": row["key"], "trial": _decoded(row["trial"]),
            "hparams": _decoded(row["hparams"]), "status": row["status"], "objective": row["objective"],
            "metrics": _decoded(row["metrics"]) if row["metrics"] else {}, "reason": row["reason"],
            "wall_time": row["wall_time"], "started": row["started"], "finished": row["finished"]}


def _decoded(text: str):
    """A JSON column's value; a row that is not JSON is damage SQLite's own checks cannot see."""
    try:
        return json.loads(text)
    except (TypeError, ValueError) as err:
        raise RnncapError(f"the study store has a damaged row ({err}): restore the store from a copy, or give "
                          "--store another path") from None
