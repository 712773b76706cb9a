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
finished trial; trials it left ``running`` are run again when the study
resumes, under the same number and hyperparameters, and a finished trial is
never run twice (``UNIQUE(study, key)``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

from rnncap.errors import RnncapError

DEFAULT_STORE = "rnncap-studies.sqlite"
STATUSES = ("running", "done", "infeasible", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    name     TEXT PRIMARY KEY,
    spec     TEXT NOT NULL,
    created  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    study      TEXT NOT NULL REFERENCES studies(name),
    number     INTEGER NOT NULL,
    key        TEXT NOT NULL,
    trial      TEXT NOT NULL,
    hparams    TEXT NOT NULL,
    status     TEXT NOT NULL,
    objective  REAL,
    metrics    TEXT,
    reason     TEXT,
    wall_time  REAL,
    started    REAL NOT NULL,
    finished   REAL,
    PRIMARY KEY (study, number),
    UNIQUE (study, key)
);
"""


def default_store_path() -> Path:
    return Path(os.environ.get("RNNCAP_STORE") or DEFAULT_STORE)


class Store:
    """``Store(path)``: open (and create) the study database at ``path``."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_store_path()
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)   # autocommit; explicit BEGIN
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise RnncapError(f"cannot open the study store {self.path} ({err}): "
                              "give another --store path or remove the damaged file") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # studies ------------------------------------------------------------------------------

    def create_or_open_study(self, name: str, spec: dict) -> dict:
        """Create study ``name`` with ``spec``, or open it if it exists with the same spec."""
        row = self.db.execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
        spec_json = json.dumps(spec, sort_keys=True)
        if row is None:
            self.db.execute("INSERT INTO studies (name, spec, created) VALUES (?, ?, ?)", (name, spec_json, time.time()))
            return spec
        stored = json.loads(row["spec"])
        if stored != json.loads(spec_json):
            differs = sorted(k for k in set(stored) | set(spec) if stored.get(k) != spec.get(k))
            raise RnncapError(f"study {name!r} exists with other settings ({', '.join(differs)} differ): "
                              "resume it with the same options, or choose another --study name")
        return stored

    def delete_study(self, name: str) -> int:
        """Remove a study and its trials (one transaction); return how many trials went."""
        self.study(name)                                                     # a clear error if unknown
        self.db.execute("BEGIN")
        removed = self.db.execute("DELETE FROM trials WHERE study = ?", (name,)).rowcount
        self.db.execute("DELETE FROM studies WHERE name = ?", (name,))
        self.db.execute("COMMIT")
        return removed

    def study(self, name: str) -> dict:
        row = self.db.execute("SELECT spec FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = [r["name"] for r in self.db.execute("SELECT name FROM studies ORDER BY created")]
            hint = f"; studies here: {', '.join(known)}" if known else "; this store has no studies"
            raise RnncapError(f"no study {name!r} in {self.path}{hint}")
        return json.loads(row["spec"])

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
        return [{"name": r["name"], "spec": json.loads(r["spec"]), "created": r["created"],
                 "trials": r["trials"], "done": r["done"] or 0, "infeasible": r["infeasible"] or 0,
                 "failed": r["failed"] or 0, "running": r["running"] or 0} for r in rows]

    # trials -------------------------------------------------------------------------------

    def next_number(self, study: str) -> int:
        row = self.db.execute("SELECT MAX(number) AS n FROM trials WHERE study = ?", (study,)).fetchone()
        return 0 if row["n"] is None else row["n"] + 1

    def start_trial(self, study: str, number: int, key: str, trial: dict, hparams: dict) -> None:
        """Record a trial as running (before it is handed to a worker)."""
        try:
            self.db.execute(
                "INSERT INTO trials (study, number, key, trial, hparams, status, started) "
                "VALUES (?, ?, ?, ?, ?, 'running', ?)",
                (study, number, key, json.dumps(trial, sort_keys=True), json.dumps(hparams, sort_keys=True),
                 time.time()))
        except sqlite3.IntegrityError:
            raise RnncapError(f"study {study!r} already has trial {key} (number {number})") from None

    def restart_trial(self, study: str, number: int) -> None:
        self.db.execute("UPDATE trials SET started = ? WHERE study = ? AND number = ?", (time.time(), study, number))

    def finish_trial(self, study: str, number: int, status: str, objective: float | None, metrics: dict,
                     reason: str | None, wall_time: float) -> None:
        """Record a trial's outcome: one transaction, committed before this returns."""
        if status not in STATUSES or status == "running":
            raise ValueError(f"a finished trial's status must be done, infeasible or failed, got {status!r}")
        self.db.execute(
            "UPDATE trials SET status = ?, objective = ?, metrics = ?, reason = ?, wall_time = ?, finished = ? "
            "WHERE study = ? AND number = ?",
            (status, objective, json.dumps(metrics), reason, wall_time, time.time(), study, number))

    def trials(self, study: str, status: str | None = None) -> list[dict]:
        query = "SELECT * FROM trials WHERE study = ?" + (" AND status = ?" if status else "") + " ORDER BY number"
        rows = self.db.execute(query, (study, status) if status else (study,)).fetchall()
        return [_trial_row(r) for r in rows]


def _trial_row(row: sqlite3.Row) -> dict:
    return {"number": row["number"], "key": row["key"], "trial": json.loads(row["trial"]),
            "hparams": json.loads(row["hparams"]), "status": row["status"], "objective": row["objective"],
            "metrics": json.loads(row["metrics"]) if row["metrics"] else {}, "reason": row["reason"],
            "wall_time": row["wall_time"], "started": row["started"], "finished": row["finished"]}
