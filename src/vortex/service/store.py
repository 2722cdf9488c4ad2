"""The durable job store: one SQLite file in the service's data folder, in WAL mode.

Every state change is one transaction, so a kill -9 at any instant leaves each job in exactly one
state. A job is claimed (queued → running, attempts + 1) atomically, and only a running job can
finish, so no job runs twice to success. On start, `recover()` puts jobs that were running when
the process died back in the queue; the next claim makes them attempt 2.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,   -- submission order: the worker's order
    id           TEXT NOT NULL UNIQUE,
    idem_key     TEXT UNIQUE,
    state        TEXT NOT NULL,
    phase        TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created      REAL NOT NULL,
    started      REAL,
    finished     REAL,
    recipe       TEXT NOT NULL,                       -- the validated recipe, seed included (JSON)
    seed         INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    timings      TEXT,
    verification TEXT,
    error        TEXT,
    proof        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
"""


@dataclass(frozen=True)
class Job:
    id: str
    seq: int
    state: str
    phase: Optional[str]
    attempts: int
    created: float
    started: Optional[float]
    finished: Optional[float]
    recipe: dict[str, Any]
    seed: int
    cancel_requested: bool
    timings: Optional[dict[str, float]]
    verification: Optional[dict[str, Any]]
    error: Optional[dict[str, Any]]
    proof: Optional[dict[str, str]]
    idem_key: Optional[str] = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


_COLUMNS = ("id", "seq", "state", "phase", "attempts", "created", "started", "finished", "recipe", "seed",
            "cancel_requested", "timings", "verification", "error", "proof", "idem_key")
_JSON = frozenset({"recipe", "timings", "verification", "error", "proof"})


def _job(row: sqlite3.Row) -> Job:
    values = {k: (json.loads(row[k]) if k in _JSON and row[k] is not None else row[k]) for k in _COLUMNS}
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


def _dumps(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, separators=(",", ":"))


class JobStore:
    """Thread-safe: one connection, serialised by a lock (the API's threads and the worker's)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE where a read decides a write.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a job acknowledged with 202 survives a power cut
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- submission -------------------------------------------------------------------------
    def submit(self, recipe: dict[str, Any], seed: int, idem_key: Optional[str] = None) -> tuple[Job, bool]:
        """(the job, True) for a new job; (the existing job, False) when `idem_key` was seen before."""
        job_id = secrets.token_hex(8)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if idem_key is not None:
                    row = self._db.execute("SELECT * FROM jobs WHERE idem_key = ?", (idem_key,)).fetchone()
                    if row is not None:
                        self._db.execute("COMMIT")
                        return _job(row), False
                self._db.execute(
                    "INSERT INTO jobs (id, idem_key, state, created, recipe, seed) VALUES (?, ?, 'queued', ?, ?, ?)",
                    (job_id, idem_key, time.time(), _dumps(recipe), seed))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return self.get(job_id), True

    # ---- reading ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, state: Optional[str] = None, limit: int = 50) -> list[Job]:
        """Newest first."""
        with self._lock:
            if state is None:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?",
                                        (state, limit)).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({r[0]: r[1] for r in rows})
        return counts

    # ---- the worker's transitions -----------------------------------------------------------
    def claim_next(self) -> Optional[Job]:
        """The oldest queued job, now running (attempts + 1), or None when the queue is empty."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
                if row is not None:
                    self._db.execute(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = ?, phase = NULL, "
                        "finished = NULL WHERE id = ?", (time.time(), row[0]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else self.get(row[0])

    def set_phase(self, job_id: str, phase: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET phase = ? WHERE id = ? AND state = 'running'", (phase, job_id))

    def finish(self, job_id: str, state: str, *, timings: Optional[dict] = None, verification: Optional[dict] = None,
               error: Optional[dict] = None, proof: Optional[dict] = None) -> bool:
        """running → a terminal state; False if the job was not running (it cannot finish twice)."""
        assert state in TERMINAL, state
        with self._lock:
            cur = self._db.execute(
                "UPDATE jobs SET state = ?, finished = ?, timings = ?, verification = ?, error = ?, proof = ? "
                "WHERE id = ? AND state = 'running'",
                (state, time.time(), _dumps(timings), _dumps(verification), _dumps(error), _dumps(proof), job_id))
            return cur.rowcount == 1

    def requeue(self, job_id: str) -> bool:
        """running → queued (shutdown before the slot finished); its attempt stays counted."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = 'queued', phase = NULL WHERE id = ? AND state = 'running'",
                                   (job_id,))
            return cur.rowcount == 1

    # ---- cancellation -----------------------------------------------------------------------
    def cancel(self, job_id: str) -> Optional[str]:
        """A queued job becomes cancelled at once; a running one is marked (the worker stops it).
        Returns the state the job was in, or None if there is no such job."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                if row[0] == "queued":
                    self._db.execute(
                        "UPDATE jobs SET state = 'cancelled', finished = ?, cancel_requested = 1, error = ? WHERE id = ?",
                        (time.time(), _dumps({"kind": "cancelled", "phase": None, "message": "cancelled while queued"}),
                         job_id))
                elif row[0] == "running":
                    self._db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return row[0]

    # ---- start-up ---------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Jobs left running by a dead process: back to the queue, or cancelled if a cancel was
        asked for before the crash. Returns the ids put back in the queue."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                ids = [r[0] for r in self._db.execute(
                    "SELECT id FROM jobs WHERE state = 'running' AND cancel_requested = 0").fetchall()]
                self._db.execute("UPDATE jobs SET state = 'queued', phase = NULL WHERE state = 'running' "
                                 "AND cancel_requested = 0")
                self._db.execute(
                    "UPDATE jobs SET state = 'cancelled', finished = ?, error = ? WHERE state = 'running'",
                    (time.time(), _dumps({"kind": "cancelled", "phase": None,
                                          "message": "cancelled (the server stopped while it ran)"})))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids
