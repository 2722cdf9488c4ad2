"""The durable job store: SQLite in the service's data folder (one node), or PostgreSQL shared by
several nodes (`open_store("postgresql://…")`); the same schema and transitions on both.

Every state change is one transaction, so a kill -9 at any instant leaves each job in exactly one
state. A job is claimed (queued → running, attempts + 1) atomically, and only a running job can
finish, so no job runs twice to success.

Leases: a claim records who holds the job (`lease_owner`) and until when (`lease_expires`); the
holder renews it while the job runs. Two ways a running job goes back to the queue (the next claim
makes it attempt 2), or to cancelled if a cancel was asked for before its process died:
- `recover()`, on start. On SQLite (one process per file) every running job belonged to the dead
  previous process, so all are taken back. On a shared store other nodes' jobs are running for
  real: only this owner's own jobs (`recover(owner)`, a node restarting under the same name) and
  jobs whose lease expired are taken back, never another live node's.
- `reclaim_expired()`, any node, periodically: running jobs whose lease expired (their node died,
  or stalled longer than the lease) go back to the queue for another node to claim.
Lease times are the nodes' clocks (time.time()): keep them in step (NTP) to well under the lease.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from .postgres import PostgresBackend, is_postgres_url, redact
from .schema import ensure_schema, schema_version
from .sqlite import SqliteBackend

__all__ = ["DEFAULT_LEASE_S", "Job", "JobStore", "STATES", "TERMINAL", "open_store"]

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# Renewed every few seconds by a live holder; 30 s rides out a GC pause or a slow renew round trip
# and still hands a dead node's job on within half a minute.
DEFAULT_LEASE_S = 30.0


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
    lease_owner: Optional[str] = None
    lease_expires: Optional[float] = None
    replica: Optional[str] = None  # the engine replica that ran (or runs) the job

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


_COLUMNS = ("id", "seq", "state", "phase", "attempts", "created", "started", "finished", "recipe", "seed",
            "cancel_requested", "timings", "verification", "error", "proof", "idem_key", "lease_owner",
            "lease_expires", "replica")
_JSON = frozenset({"recipe", "timings", "verification", "error", "proof"})
_STOPPED = {"kind": "cancelled", "phase": None, "message": "cancelled (the server stopped while it ran)"}


def _job(row) -> Job:
    values = {k: (json.loads(row[k]) if k in _JSON and row[k] is not None else row[k]) for k in _COLUMNS}
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Job(**values)


def _dumps(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _lease(lease_s: float) -> float:
    if not lease_s > 0:
        raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
    return time.time() + lease_s


def default_owner() -> str:
    """This process as a lease holder: host and pid (unique among live processes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _backend(target: str | Path):
    if is_postgres_url(target):
        return PostgresBackend(target)
    if isinstance(target, str) and "://" in target:
        raise ValueError(f"job store {redact(target)!r}: not a store this Vortex opens; give a postgresql:// "
                         "(or postgres://) URL, or the path of a SQLite file")
    return SqliteBackend(target)


def open_store(target: str | Path, *, owner: Optional[str] = None) -> "JobStore":
    """A postgresql:// or postgres:// URL: the shared PostgreSQL store; anything else: a SQLite file."""
    return JobStore(target, owner=owner)


class JobStore:
    """Thread-safe: one connection, serialised by a lock (the API's threads and the worker's).

    `target`: a SQLite file path (as before), a PostgreSQL URL, or a backend object. `owner`: the
    lease holder that claims name by default (default: host:pid)."""

    def __init__(self, target, *, owner: Optional[str] = None):
        self.backend = target if hasattr(target, "transaction") else _backend(target)
        self.path: Optional[Path] = getattr(self.backend, "path", None)  # the SQLite file, else None
        self.where: str = self.backend.where
        self.shared: bool = self.backend.shared
        self.owner = owner or default_owner()
        self._lock = threading.Lock()
        try:
            ensure_schema(self.backend)
        except BaseException:
            self.backend.close()
            raise

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Any]:
        with self._lock, self.backend.transaction(write) as tx:
            yield tx

    def close(self) -> None:
        with self._lock:
            self.backend.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return schema_version(self.backend)

    def transaction(self, write: bool = True):
        """One transaction under the store's lock, for the other tables' code (channels.py)."""
        return self._tx(write)

    def identity(self) -> str:
        """The store's own random id, made on first use: a --media folder records it (media.py), so
        that two stores never share one folder."""
        with self._tx() as tx:
            tx.execute("INSERT INTO store_info (key, value) VALUES ('identity', ?) ON CONFLICT (key) DO NOTHING",
                       (secrets.token_hex(16),))
            return tx.execute("SELECT value FROM store_info WHERE key = 'identity'").fetchone()["value"]

    # ---- submission -------------------------------------------------------------------------
    def submit(self, recipe: dict[str, Any], seed: int, idem_key: Optional[str] = None) -> tuple[Job, bool]:
        """(the job, True) for a new job; (the existing job, False) when `idem_key` was seen before."""
        job_id = secrets.token_hex(8)
        with self._tx() as tx:
            # ON CONFLICT: two nodes submitting the same key at once both get the one job.
            cur = tx.execute("INSERT INTO jobs (id, idem_key, state, created, recipe, seed) "
                             "VALUES (?, ?, 'queued', ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING",
                             (job_id, idem_key, time.time(), _dumps(recipe), seed))
            if cur.rowcount == 1:
                return _job(tx.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()), True
            return _job(tx.execute("SELECT * FROM jobs WHERE idem_key = ?", (idem_key,)).fetchone()), False

    # ---- reading ----------------------------------------------------------------------------
    def get(self, job_id: str) -> Optional[Job]:
        with self._tx(write=False) as tx:
            row = tx.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job(row)

    def list(self, state: Optional[str] = None, limit: int = 50) -> list[Job]:
        """Newest first."""
        with self._tx(write=False) as tx:
            if state is None:
                rows = tx.execute("SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
            else:
                rows = tx.execute("SELECT * FROM jobs WHERE state = ? ORDER BY seq DESC LIMIT ?",
                                  (state, limit)).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._tx(write=False) as tx:
            rows = tx.execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({r["state"]: r["n"] for r in rows})
        return counts

    # ---- the worker's transitions -----------------------------------------------------------
    def claim_next(self, owner: Optional[str] = None, lease_s: float = DEFAULT_LEASE_S) -> Optional[Job]:
        """The oldest queued job, now running (attempts + 1) and leased to `owner` (default: this
        store's owner) for `lease_s` seconds; None when the queue is empty."""
        expires = _lease(lease_s)
        with self._tx() as tx:
            # SKIP LOCKED (PostgreSQL): a row another node is claiming is passed over, not waited for.
            row = tx.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1"
                             + self.backend.skip_locked).fetchone()
            if row is None:
                return None
            row = tx.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started = ?, phase = NULL, "
                "finished = NULL, lease_owner = ?, lease_expires = ?, replica = NULL "
                "WHERE id = ? AND state = 'queued' RETURNING *",
                (time.time(), owner or self.owner, expires, row["id"])).fetchall()  # all: SQLite ends the statement
        return _job(row[0])

    def renew_lease(self, job_id: str, owner: Optional[str] = None, lease_s: float = DEFAULT_LEASE_S) -> bool:
        """Extend the holder's lease; False when the lease is lost (the job was reclaimed, claimed by
        another owner, or finished): the holder must then stop and not finish the job. A lease past
        its expiry that nobody has reclaimed yet is still the holder's and renews."""
        expires = _lease(lease_s)
        with self._tx() as tx:
            cur = tx.execute("UPDATE jobs SET lease_expires = ? WHERE id = ? AND state = 'running' AND lease_owner = ?",
                             (expires, job_id, owner or self.owner))
            return cur.rowcount == 1

    def set_replica(self, job_id: str, replica: str) -> bool:
        """Record which engine replica runs the job (shown with the job); False if no such job."""
        with self._tx() as tx:
            return tx.execute("UPDATE jobs SET replica = ? WHERE id = ?", (replica, job_id)).rowcount == 1

    def set_phase(self, job_id: str, phase: str) -> None:
        with self._tx() as tx:
            tx.execute("UPDATE jobs SET phase = ? WHERE id = ? AND state = 'running'", (phase, job_id))

    def finish(self, job_id: str, state: str, *, timings: Optional[dict] = None, verification: Optional[dict] = None,
               error: Optional[dict] = None, proof: Optional[dict] = None, owner: Optional[str] = None) -> bool:
        """running → a terminal state; False if the job was not running (it cannot finish twice) or,
        with `owner`, is no longer leased to that owner (another node has it now)."""
        if state not in TERMINAL:
            raise ValueError(f"a job finishes as one of {sorted(TERMINAL)}, not {state!r}")
        sql, params = ("UPDATE jobs SET state = ?, finished = ?, timings = ?, verification = ?, error = ?, proof = ?, "
                       "lease_expires = NULL WHERE id = ? AND state = 'running'",
                       [state, time.time(), _dumps(timings), _dumps(verification), _dumps(error), _dumps(proof),
                        job_id])
        if owner is not None:
            sql, params = sql + " AND lease_owner = ?", params + [owner]
        with self._tx() as tx:
            return tx.execute(sql, params).rowcount == 1

    def requeue(self, job_id: str, owner: Optional[str] = None) -> bool:
        """running → queued (shutdown before the slot finished); its attempt stays counted. With
        `owner`, only while that owner holds the lease."""
        sql, params = ("UPDATE jobs SET state = 'queued', phase = NULL, lease_owner = NULL, lease_expires = NULL "
                       "WHERE id = ? AND state = 'running'", [job_id])
        if owner is not None:
            sql, params = sql + " AND lease_owner = ?", params + [owner]
        with self._tx() as tx:
            return tx.execute(sql, params).rowcount == 1

    # ---- cancellation -----------------------------------------------------------------------
    def cancel(self, job_id: str) -> Optional[str]:
        """A queued job becomes cancelled at once; a running one is marked (the worker stops it).
        Returns the state the job was in, or None if there is no such job."""
        with self._tx() as tx:
            row = tx.execute("SELECT state FROM jobs WHERE id = ?" + self.backend.lock_row, (job_id,)).fetchone()
            if row is None:
                return None
            if row["state"] == "queued":
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', finished = ?, cancel_requested = 1, error = ? WHERE id = ?",
                    (time.time(), _dumps({"kind": "cancelled", "phase": None, "message": "cancelled while queued"}),
                     job_id))
            elif row["state"] == "running":
                tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
        return row["state"]

    # ---- a dead holder's jobs ---------------------------------------------------------------
    def recover(self, owner: Optional[str] = None) -> list[str]:
        """On start: jobs left running by a dead process go back to the queue, or to cancelled if a
        cancel was asked for before it died. SQLite: every running job. Shared store: only
        `owner`'s (this node's previous life, if it restarts under the same owner name) and those
        whose lease expired. Returns the ids put back in the queue, oldest first."""
        if not self.shared:
            return self._release("1 = 1", ())
        if owner is None:
            return self.reclaim_expired()
        return self._release("lease_owner = ? OR lease_expires IS NULL OR lease_expires < ?", (owner, time.time()))

    def reclaim_expired(self, now: Optional[float] = None) -> list[str]:
        """Running jobs whose lease expired (or that have none) go back to the queue for any node
        to claim (cancelled instead if a cancel was asked for). Returns the requeued ids, oldest first."""
        return self._release("lease_expires IS NULL OR lease_expires < ?", (time.time() if now is None else now,))

    def _release(self, where: str, params: tuple) -> list[str]:
        with self._tx() as tx:
            rows = tx.execute(
                "UPDATE jobs SET state = 'queued', phase = NULL, lease_owner = NULL, lease_expires = NULL "
                f"WHERE state = 'running' AND cancel_requested = 0 AND ({where}) RETURNING id, seq", params).fetchall()
            tx.execute("UPDATE jobs SET state = 'cancelled', finished = ?, lease_expires = NULL, error = ? "
                       f"WHERE state = 'running' AND cancel_requested = 1 AND ({where})",
                       (time.time(), _dumps(_STOPPED), *params))
        return [r["id"] for r in sorted(rows, key=lambda r: r["seq"])]
