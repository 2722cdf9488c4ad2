"""The job store on PostgreSQL (psycopg 3): one store shared by several nodes or engine replicas.

Each node holds one connection (autocommit, explicit transactions, READ COMMITTED). The claim locks
the row it takes with `FOR UPDATE SKIP LOCKED`, so two nodes claiming at once get different jobs
and neither waits on the other; a lost connection is opened again at the next transaction.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

URL_SCHEMES = ("postgresql://", "postgres://")
# pg_advisory_xact_lock's key for the schema create/migrate: any fixed bigint; 0x766f72746578 = "vortex".
_SCHEMA_LOCK = 0x766F72746578


def is_postgres_url(target: Any) -> bool:
    return isinstance(target, str) and target.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class _Tx:
    """The statements of one transaction: the store's `?` placeholders become psycopg's `%s`."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()):
        return self._conn.execute(sql.replace("?", "%s"), params)


class PostgresBackend:
    name = "postgresql"
    shared = True
    # float8, not REAL: PostgreSQL's REAL is 4 bytes, ~7 digits, a Unix time to the nearest ~2 minutes.
    types = {"seq": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "float": "DOUBLE PRECISION",
             "int64": "BIGINT"}
    lock_row = " FOR UPDATE"
    skip_locked = " FOR UPDATE SKIP LOCKED"
    # The server's clock as Unix seconds: channel leases are timed by it, so nodes' clocks may differ.
    now_sql = "EXTRACT(EPOCH FROM clock_timestamp())::float8"

    def __init__(self, url: str, connect_timeout_s: int = 10):
        try:
            import psycopg
            from psycopg.rows import dict_row
        except ImportError as exc:  # a dependency of the project; missing only in a broken install
            raise RuntimeError("a postgresql:// job store needs psycopg 3: "
                               "pip install 'psycopg[binary]==3.3.9'") from exc
        self._psycopg, self._dict_row = psycopg, dict_row
        self.url, self.where = url, redact(url)
        self._timeout = connect_timeout_s
        self._conn = self._connect()

    def _connect(self):
        try:
            return self._psycopg.connect(self.url, autocommit=True, row_factory=self._dict_row,
                                         connect_timeout=self._timeout, application_name="vortex")
        except self._psycopg.OperationalError as exc:
            raise ConnectionError(f"cannot reach the job store at {self.where}: {str(exc).strip()}") from exc

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[_Tx]:
        if self._conn.closed or self._conn.broken:  # the server restarted, or the network dropped
            self._conn = self._connect()
        with self._conn.transaction():
            yield _Tx(self._conn)

    def schema_lock(self, tx) -> None:
        tx.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def table_exists(self, tx, name: str) -> bool:
        # to_regclass follows search_path: the table in the schema this connection writes to.
        return tx.execute("SELECT to_regclass(?::text) AS t", (name,)).fetchone()["t"] is not None

    def close(self) -> None:
        self._conn.close()
