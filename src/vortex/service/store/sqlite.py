"""The job store on one SQLite file in WAL mode: the single-node default (one process claims)."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class SqliteBackend:
    name = "sqlite"
    shared = False  # one process per file (`vortex serve` refuses a second worker on the same --data)
    types = {"seq": "INTEGER PRIMARY KEY AUTOINCREMENT", "float": "REAL", "int64": "INTEGER"}
    lock_row = ""  # BEGIN IMMEDIATE already holds the database's one write lock
    skip_locked = ""
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"  # Unix seconds, to the millisecond

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.where = str(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE where a read decides a write.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._wal(timeout_s=30)
        self._db.execute("PRAGMA synchronous=FULL")  # a job acknowledged with 202 survives a power cut

    def _wal(self, timeout_s: float) -> None:
        # Switching a new file to WAL ignores the busy timeout: processes opening it at once retry.
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """A write takes the lock at BEGIN (IMMEDIATE), so two writers never interleave; a read is
        one autocommit statement."""
        if not write:
            yield self._db
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def schema_lock(self, tx) -> None:
        pass  # BEGIN IMMEDIATE is the lock

    def table_exists(self, tx, name: str) -> bool:
        row = tx.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        return row is not None

    def close(self) -> None:
        self._db.close()
