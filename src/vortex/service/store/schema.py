"""The job store's one schema, as numbered migrations, and the versioned create that applies them.

Both backends run the same statements; only three column types differ (`{seq}`, `{float}`,
`{int64}`, filled in by the backend). `schema_version` records each applied version; a store of a
newer version than this code knows is refused (an old node must not write rows it cannot read), an
older one is migrated in one transaction under the backend's schema lock.
"""

from __future__ import annotations

import time

# Version 1 is the store as it was before `schema_version` existed (SQLite files in the field);
# version 2 adds the lease (which process holds a running job, until when) and the engine replica;
# version 3 adds the store's identity (store_info), the channels with their leases, and every term
# of a channel's ownership (channel_terms: who took it, when, from whom).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE IF NOT EXISTS jobs (
            seq          {seq},                             -- submission order: the claim order
            id           TEXT NOT NULL UNIQUE,
            idem_key     TEXT UNIQUE,
            state        TEXT NOT NULL,
            phase        TEXT,
            attempts     INTEGER NOT NULL DEFAULT 0,
            created      {float} NOT NULL,
            started      {float},
            finished     {float},
            recipe       TEXT NOT NULL,                     -- the validated recipe, seed included (JSON)
            seed         {int64} NOT NULL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            timings      TEXT,
            verification TEXT,
            error        TEXT,
            proof        TEXT
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq)",
    ),
    2: (
        "ALTER TABLE jobs ADD COLUMN lease_owner TEXT",
        "ALTER TABLE jobs ADD COLUMN lease_expires {float}",
        "ALTER TABLE jobs ADD COLUMN replica TEXT",
    ),
    3: (
        "CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE IF NOT EXISTS channels (
            name           TEXT PRIMARY KEY,
            state          TEXT NOT NULL,                   -- on | stopped | ended | failed: what is wanted
            definition     TEXT NOT NULL,                   -- as POSTed (JSON), portrait references unresolved
            pace           TEXT NOT NULL,
            max_slots      INTEGER,
            created        {float} NOT NULL,
            updated        {float} NOT NULL,
            error          TEXT,
            owner          TEXT,                            -- the node (host:pid) holding the lease; NULL: free
            owner_url      TEXT,                            -- its advertised base URL (live inserts go there)
            term           {int64} NOT NULL DEFAULT 0,      -- + 1 at every acquisition: the fencing token
            acquired       {float},
            lease_s        {float},
            lease_expires  {float},                         -- in the store's clock, not the nodes'
            stop_requested INTEGER NOT NULL DEFAULT 0       -- a DELETE on another node, for the owner to do
        )""",
        """CREATE TABLE IF NOT EXISTS channel_terms (
            seq              {seq},
            channel          TEXT NOT NULL,
            term             {int64} NOT NULL,
            owner            TEXT NOT NULL,
            owner_url        TEXT,
            acquired         {float} NOT NULL,
            how              TEXT NOT NULL,                 -- start | resume | takeover
            previous_owner   TEXT,
            previous_expired {float}                        -- takeover: when the dead owner's lease ran out
        )""",
        "CREATE INDEX IF NOT EXISTS channel_terms_channel ON channel_terms (channel, seq)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)

_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied {float} NOT NULL)"


class StoreVersionError(RuntimeError):
    """The store was written by a newer Vortex than this one."""


def ensure_schema(backend) -> int:
    """Create or migrate the store to SCHEMA_VERSION; returns the version it was found at (0: new)."""
    types = backend.types
    with backend.transaction() as tx:
        backend.schema_lock(tx)  # two nodes starting at once: one migrates, the other then sees it done
        tx.execute(_VERSION_TABLE.format(**types))
        row = tx.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
        found = row["v"]
        if found is None:  # no record: a new store, or a version-1 file from before the record
            found = 1 if backend.table_exists(tx, "jobs") else 0
        if found > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the job store at {backend.where} has schema version {found}, newer than this Vortex "
                f"reads (versions 1 to {SCHEMA_VERSION}): upgrade Vortex on this node, or give it another store")
        if found == 1 and row["v"] is None:  # the version-1 file's own version, recorded now
            tx.execute("INSERT INTO schema_version (version, applied) VALUES (1, ?)", (time.time(),))
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                tx.execute(statement.format(**types))
            tx.execute("INSERT INTO schema_version (version, applied) VALUES (?, ?)", (version, time.time()))
    return found


def schema_version(backend) -> int:
    with backend.transaction(write=False) as tx:
        return tx.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()["v"]
