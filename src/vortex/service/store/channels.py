"""Channels in the shared store: what each channel should do, and which node holds its lease.

A channel belongs to one node at a time. The node that starts it (POST) or takes it over holds a
lease: `owner` (host:pid), `owner_url` (where live inserts reach it), `term` (+ 1 at every
acquisition: a fencing token, so a renewal by an owner that lost the channel matches no row) and
`lease_expires`. The owner renews every lease it holds in one statement (`renew_all`); a channel
whose lease ran out (its node died, or stalled past the lease) is taken by another node
(`take_orphan`, `FOR UPDATE SKIP LOCKED`: two nodes scanning at once take different channels).

Lease times are the store's own clock (`backend.now_sql`), read once per transaction, so the nodes'
clocks need not agree; a node judges its own lease by its monotonic clock from before the renewal
was sent (lease.py), which can only end before the store's.

`channel_terms` keeps every acquisition: how (start | resume | takeover), from whom, and when the
previous owner's lease ran out; GET /v1/channels/{name} shows the takeovers from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ...errors import VortexError
from .jobs import JobStore

STATES = ("on", "stopped", "ended", "failed")
# 4 s, renewed every 1 s: a dead node's channel is taken over 3.7-4.5 s after the kill (measured,
# benchmarks/bench_failover.py; 7.8-9.0 s with 8 s / 2 s), which is most of what a viewer 6 s behind
# the live edge can ride out. A live node loses its channels only if it stalls past 4 - 1 = 3 s
# after a renewal: a GC pause is milliseconds, and two nodes on the loaded 2-core test box (load
# 4-6) lost none in 6 minutes. Nodes that pause longer (swapping, VM steal) should raise both.
DEFAULT_CHANNEL_LEASE_S = 4.0
DEFAULT_CHANNEL_RENEW_S = 1.0


class ChannelBusy(VortexError):
    """The channel is on air on a node whose lease holds."""

    def __init__(self, row: "ChannelRow"):
        self.row = row
        left = (row.lease_expires or row.now) - row.now
        super().__init__(f"channel '{row.name}' is already running on node {row.owner} (its lease holds "
                         f"{left:.1f} s more and is renewed while it lives): DELETE /v1/channels/{row.name} first")


@dataclass(frozen=True)
class ChannelRow:
    name: str
    state: str
    definition: dict[str, Any]
    pace: str
    max_slots: Optional[int]
    created: float
    updated: float
    error: Optional[str]
    owner: Optional[str]
    owner_url: Optional[str]
    term: int
    acquired: Optional[float]
    lease_s: Optional[float]
    lease_expires: Optional[float]
    stop_requested: bool
    now: float  # the store's clock when the row was read

    @property
    def leased(self) -> bool:
        """A node holds the channel now (its lease has not run out)."""
        return self.owner is not None and self.lease_expires is not None and self.lease_expires > self.now


@dataclass(frozen=True)
class Term:
    channel: str
    term: int
    owner: str
    owner_url: Optional[str]
    acquired: float
    how: str  # start | resume | takeover
    previous_owner: Optional[str]
    previous_expired: Optional[float]


_FIELDS = ("name", "state", "definition", "pace", "max_slots", "created", "updated", "error", "owner", "owner_url",
           "term", "acquired", "lease_s", "lease_expires", "stop_requested")


def _row(r, now: float) -> ChannelRow:
    values = {k: r[k] for k in _FIELDS}
    values["definition"] = json.loads(values["definition"])
    values["stop_requested"] = bool(values["stop_requested"])
    return ChannelRow(**values, now=now)


class ChannelLeases:
    """The channel table for one node: `owner` (default: the store's, host:pid), reachable at `url`."""

    def __init__(self, store: JobStore, url: Optional[str] = None, lease_s: float = DEFAULT_CHANNEL_LEASE_S,
                 owner: Optional[str] = None):
        if not lease_s > 0:
            raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
        self.store, self.url, self.lease_s = store, url, float(lease_s)
        self.owner = owner or store.owner
        self.shared = store.shared
        self._now_sql = store.backend.now_sql
        self._lock_row, self._skip_locked = store.backend.lock_row, store.backend.skip_locked

    def _now(self, tx) -> float:
        return float(tx.execute(f"SELECT {self._now_sql} AS now").fetchone()["now"])

    def _read(self, tx, name: str, now: float, lock: bool = False) -> Optional[ChannelRow]:
        r = tx.execute("SELECT * FROM channels WHERE name = ?" + (self._lock_row if lock else ""), (name,)).fetchone()
        return None if r is None else _row(r, now)

    def _term(self, tx, row: ChannelRow, how: str, previous: Optional[ChannelRow]) -> None:
        tx.execute("INSERT INTO channel_terms (channel, term, owner, owner_url, acquired, how, previous_owner, "
                   "previous_expired) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (row.name, row.term, row.owner, row.owner_url, row.acquired, how,
                    previous.owner if previous else None, previous.lease_expires if previous else None))

    # ---- a client's start and stop --------------------------------------------------------------
    def start(self, name: str, definition: dict[str, Any], pace: str, max_slots: Optional[int]) -> ChannelRow:
        """POST: the channel is on and this node holds it (a new term). ChannelBusy while another
        node's lease holds (or this node's: one runner per channel)."""
        raw = json.dumps(definition, separators=(",", ":"))
        with self.store.transaction() as tx:
            now = self._now(tx)
            old = self._read(tx, name, now, lock=True)
            if old is not None and old.state == "on" and old.leased:
                raise ChannelBusy(old)
            expires = now + self.lease_s
            if old is None:
                cur = tx.execute(
                    "INSERT INTO channels (name, state, definition, pace, max_slots, created, updated, owner, owner_url, "
                    "term, acquired, lease_s, lease_expires) VALUES (?, 'on', ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?) "
                    "ON CONFLICT (name) DO NOTHING",
                    (name, raw, pace, max_slots, now, now, self.owner, self.url, now, self.lease_s, expires))
                if cur.rowcount != 1:  # another node started it in the meantime
                    raise ChannelBusy(self._read(tx, name, now))
            else:
                tx.execute("UPDATE channels SET state = 'on', definition = ?, pace = ?, max_slots = ?, updated = ?, "
                           "error = NULL, owner = ?, owner_url = ?, term = term + 1, acquired = ?, lease_s = ?, "
                           "lease_expires = ?, stop_requested = 0 WHERE name = ?",
                           (raw, pace, max_slots, now, self.owner, self.url, now, self.lease_s, expires, name))
            row = self._read(tx, name, now)
            dead = old if old is not None and old.state == "on" and old.owner is not None else None
            self._term(tx, row, "start", dead)
        return row

    def request_stop(self, name: str) -> Optional[ChannelRow]:
        """DELETE on any node: a channel nobody holds is stopped at once; a held one is marked, for its
        owner to stop at its next renewal (it then releases the lease as "stopped")."""
        with self.store.transaction() as tx:
            now = self._now(tx)
            row = self._read(tx, name, now, lock=True)
            if row is None or row.state != "on":
                return row
            if row.leased:
                tx.execute("UPDATE channels SET stop_requested = 1, updated = ? WHERE name = ?", (now, name))
            else:
                tx.execute("UPDATE channels SET state = 'stopped', owner = NULL, owner_url = NULL, "
                           "lease_expires = NULL, stop_requested = 0, updated = ? WHERE name = ?", (now, name))
            return self._read(tx, name, now)

    # ---- the owner's lease ---------------------------------------------------------------------
    def renew_all(self) -> dict[str, tuple[int, bool]]:
        """Extend every lease this node holds that has not run out: {name: (term, stop_requested)}.
        A channel missing from the answer is lost (taken over, or run out: never renewed back)."""
        with self.store.transaction() as tx:
            now = self._now(tx)
            rows = tx.execute("UPDATE channels SET lease_expires = ? WHERE owner = ? AND state = 'on' "
                              "AND lease_expires > ? RETURNING name, term, stop_requested",
                              (now + self.lease_s, self.owner, now)).fetchall()
        return {r["name"]: (int(r["term"]), bool(r["stop_requested"])) for r in rows}

    def release(self, name: str, term: int, state: Optional[str] = None, error: Optional[str] = None) -> bool:
        """The owner lets go (shutdown: state stays "on", so another node resumes it at once; or
        stopped, ended, failed). False when the term is no longer this node's."""
        if state is not None and state not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {state!r}")
        with self.store.transaction() as tx:
            now = self._now(tx)
            done = "" if state is None else ", stop_requested = 0"  # a stop asked for is done
            cur = tx.execute("UPDATE channels SET owner = NULL, owner_url = NULL, lease_expires = NULL, "
                             f"state = COALESCE(?, state), error = ?, updated = ?{done} "
                             "WHERE name = ? AND owner = ? AND term = ?",
                             (state, error, now, name, self.owner, term))
            return cur.rowcount == 1

    # ---- taking over -----------------------------------------------------------------------------
    def take_orphan(self, exclude: Iterable[str] = ()) -> Optional[tuple[ChannelRow, str]]:
        """One channel that should be on air and that no node holds, now this node's (a new term):
        (row, how) with how "takeover" (the previous owner's lease ran out: it died or stalled) or
        "resume" (released by a shutdown, or never held). None when there is none."""
        skip = sorted(set(exclude))
        not_in = f" AND name NOT IN ({', '.join('?' * len(skip))})" if skip else ""
        with self.store.transaction() as tx:
            now = self._now(tx)
            r = tx.execute("SELECT name FROM channels WHERE state = 'on' AND (owner IS NULL OR lease_expires IS NULL "
                           f"OR lease_expires <= ?){not_in} ORDER BY updated LIMIT 1" + self._skip_locked,
                           (now, *skip)).fetchone()
            if r is None:
                return None
            old = self._read(tx, r["name"], now)
            tx.execute("UPDATE channels SET owner = ?, owner_url = ?, term = term + 1, acquired = ?, lease_s = ?, "
                       "lease_expires = ?, updated = ?, error = NULL WHERE name = ?",
                       (self.owner, self.url, now, self.lease_s, now + self.lease_s, now, old.name))
            row = self._read(tx, old.name, now)
            how = "takeover" if old.owner is not None else "resume"
            self._term(tx, row, how, old if how == "takeover" else None)
        return row, how

    def free_all(self) -> list[str]:
        """SQLite, on start: one process per store, so every lease belonged to the previous (dead) one."""
        if self.shared:
            raise RuntimeError("free_all is for a one-node store: on a shared one, leases run out instead")
        with self.store.transaction() as tx:
            rows = tx.execute("UPDATE channels SET owner = NULL, owner_url = NULL, lease_expires = NULL "
                              "WHERE owner IS NOT NULL RETURNING name").fetchall()
        return sorted(r["name"] for r in rows)

    def adopt(self, name: str, definition: dict[str, Any], pace: str, max_slots: Optional[int], state: str) -> bool:
        """A channel folder from before the store kept channels (definition.json): recorded, no owner."""
        with self.store.transaction() as tx:
            now = self._now(tx)
            cur = tx.execute("INSERT INTO channels (name, state, definition, pace, max_slots, created, updated) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                             (name, state, json.dumps(definition, separators=(",", ":")), pace, max_slots, now, now))
            return cur.rowcount == 1

    # ---- reading ---------------------------------------------------------------------------------
    def get(self, name: str) -> Optional[ChannelRow]:
        with self.store.transaction(write=False) as tx:
            return self._read(tx, name, self._now(tx))

    def list(self) -> list[ChannelRow]:
        with self.store.transaction(write=False) as tx:
            now = self._now(tx)
            return [_row(r, now) for r in tx.execute("SELECT * FROM channels ORDER BY name").fetchall()]

    def terms(self, name: str, limit: int = 100) -> list[Term]:
        """The channel's last `limit` terms, oldest first."""
        with self.store.transaction(write=False) as tx:
            rows = tx.execute("SELECT * FROM channel_terms WHERE channel = ? ORDER BY seq DESC LIMIT ?",
                              (name, limit)).fetchall()
        return [Term(r["channel"], int(r["term"]), r["owner"], r["owner_url"], r["acquired"], r["how"],
                     r["previous_owner"], r["previous_expired"]) for r in reversed(rows)]

    def takeovers(self, name: str) -> int:
        with self.store.transaction(write=False) as tx:
            return int(tx.execute("SELECT COUNT(*) AS n FROM channel_terms WHERE channel = ? AND how = 'takeover'",
                                  (name,)).fetchone()["n"])
