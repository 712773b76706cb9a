"""What an rnncap study store is, as a file: its tables, its marker, how one is recognised and made.

A store carries SQLite's ``application_id`` :data:`APPLICATION_ID` and its
schema version :data:`SCHEMA_VERSION` in ``user_version``. Before writing
anything, :class:`rnncap.store.Store` reads the file without changing it and
refuses (:class:`RnncapError`) what is not a store it can use: a file that is
not SQLite, a damaged one (``PRAGMA quick_check``), the database of another
application, or a store of a newer schema. Stores made before the marker
existed carry none; they are recognised by their tables, which must be exactly
this module's ``studies`` and ``trials``, and are *adopted* (marked, and given
the ``leases`` table) by the first command that writes to them. A store that
does not exist is created (atomically: made aside, then linked into place)
only by a command that writes studies; the read-only commands refuse a path
with no store.

:func:`inspect` says what a path holds (or refuses it) reading only;
:func:`create` makes a new store; :func:`mark` makes a database a store.
The store's API is :mod:`rnncap.store`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from rnncap.errors import RnncapError

APPLICATION_ID = 0x524E4E43               # "RNNC": SQLite's application_id of an rnncap store
SCHEMA_VERSION = 1                        # PRAGMA user_version; stores from before the marker have none (0)

_TRIAL_TABLES = """
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
_LEASE_TABLE = """
CREATE TABLE IF NOT EXISTS leases (
    study      TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    token      TEXT NOT NULL,
    since      REAL NOT NULL,
    heartbeat  REAL NOT NULL
);
"""
def _tables(db: sqlite3.Connection) -> dict[str, list[str]]:
    """The database's tables and their columns, in order (SQLite's own tables left out)."""
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                      "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {name: [c[0] for c in db.execute("SELECT name FROM pragma_table_info(?)", (name,))] for name in names}


def _tables_of(schema: str) -> dict[str, list[str]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(schema)
        return _tables(db)
    finally:
        db.close()


_UNMARKED_TABLES = _tables_of(_TRIAL_TABLES)                  # a store made before the marker
_STORE_TABLES = _tables_of(_TRIAL_TABLES + _LEASE_TABLE)


def inspect(path: Path) -> str:
    """What ``path`` holds: ``missing``, ``empty``, ``unmarked`` (a store from before the marker) or ``store``.

    Refuses anything else. Reads only: the header by hand, then SQLite
    read-only (``immutable`` when no ``-wal`` file says a writer may be at work,
    so that not even SQLite's side files appear beside a foreign database).
    """
    try:
        with open(path, "rb") as file:
            header = file.read(100)
    except FileNotFoundError:
        return "missing"
    except IsADirectoryError:
        raise RnncapError(f"the study store {path} is a folder: give --store the path of a file") from None
    except OSError as err:
        raise RnncapError(f"cannot read the study store {path} ({err.strerror}): give another --store path") from None
    if not header:
        return "empty"
    if not header.startswith(b"SQLite format 3\x00"):
        raise RnncapError(f"{path} is not an rnncap study store (nor any SQLite database); rnncap leaves it as it "
                          "is: give --store another path")
    writer_may_be_at_work = Path(f"{path}-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if writer_may_be_at_work else "?immutable=1")
    try:
        db = sqlite3.connect(uri, uri=True, timeout=30.0)
        try:
            application_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if application_id == APPLICATION_ID and version > SCHEMA_VERSION:
                raise RnncapError(f"the study store {path} was written by a newer rnncap (store version {version}; "
                                  f"this one reads up to {SCHEMA_VERSION}): upgrade rnncap, or give --store another "
                                  "path")
            if application_id not in (0, APPLICATION_ID):
                raise RnncapError(f"{path} is not an rnncap study store: it is the database of another application "
                                  f"(SQLite application_id {application_id:#x}); rnncap leaves it as it is: give "
                                  "--store another path")
            problems = [r[0] for r in db.execute("PRAGMA quick_check")]
            tables = _tables(db)
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        problems = [str(err)]
    if problems != ["ok"]:
        raise RnncapError(f"the study store {path} is damaged ({problems[0]}); rnncap leaves it as it is: restore "
                          "it from a copy, or give --store another path")
    if application_id == APPLICATION_ID and tables == _STORE_TABLES:
        return "store"
    if application_id == 0 and version == 0 and tables in ({}, _UNMARKED_TABLES):
        return "unmarked" if tables else "empty"
    if application_id == APPLICATION_ID:
        raise RnncapError(f"the study store {path} is damaged (its tables are {', '.join(tables) or 'missing'}); "
                          "rnncap leaves it as it is: restore it from a copy, or give --store another path")
    raise RnncapError(f"{path} is not an rnncap study store: it is an SQLite database with other tables "
                      f"({', '.join(tables) or 'none'}, user_version {version}); rnncap leaves it as it is: give "
                      "--store another path")


def mark(db: sqlite3.Connection) -> None:
    """Make ``db`` a store: its tables (those missing), the application id and the schema version; one transaction."""
    db.executescript(f"BEGIN IMMEDIATE; {_TRIAL_TABLES} {_LEASE_TABLE} PRAGMA application_id = {APPLICATION_ID}; "
                     f"PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def create(path: Path) -> str:
    """A new store at ``path``, made aside and linked into place: no process ever sees half of one.

    Returns what :func:`inspect` finds there after: ``store``, or what another process put there first.
    """
    aside = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        db = sqlite3.connect(aside, isolation_level=None)
        try:
            mark(db)                                    # in the file itself, not the WAL: the header says "store"
            db.execute("PRAGMA journal_mode=WAL")
        finally:
            db.close()
        try:
            os.link(aside, path)                         # fails, rather than replaces, if another process got there
        except FileExistsError:
            pass
        except OSError:                                  # a file system without hard links
            if not path.exists():
                os.replace(aside, path)
    except (sqlite3.DatabaseError, OSError) as err:
        raise RnncapError(f"cannot create the study store {path} ({err}): check that its folder exists and is "
                          "writable, or give another --store path") from None
    finally:
        aside.unlink(missing_ok=True)
    return inspect(path)
