"""A PostgreSQL server for the tests, and a fresh schema per test on it.

The server: $VORTEX_TEST_PG_URL, else the throwaway cluster scripts/setup-postgres starts (it never
installs packages from here: run the script once, as root, for that). Without a server the tests
that need one skip with the reason, except in CI (CI=true), where they fail: a store test that
cannot run must not pass as skipped.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit, parse_qsl

import pytest

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup-postgres"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The URL of a database the tests may create schemas in."""
    url = os.environ.get("VORTEX_TEST_PG_URL")
    if url:
        return url
    try:  # the first run initdb's and starts the cluster (~3 s); later ones find it running (~0.1 s)
        done = subprocess.run(["bash", str(SETUP), "--no-install"], capture_output=True, text=True, timeout=120)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip().splitlines()[-1]
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = str(exc)
    reason = f"no PostgreSQL for the store tests: VORTEX_TEST_PG_URL is unset and scripts/setup-postgres failed: {why}"
    if _in_ci():
        pytest.fail(reason + " (CI=true: a missing server is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def with_search_path(url: str, schema: str) -> str:
    """The URL, its connections writing to `schema` (libpq's options=-c search_path=…)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextmanager
def fresh_schema(server_url: str) -> Iterator[str]:
    """A URL on a new, empty schema of the server's database, dropped afterwards: tests stay independent."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(server_url, schema)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"], name="target")
def store_target(request, tmp_path):
    """A store's target, once per backend: an SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield tmp_path / "jobs.sqlite3"
    else:
        with fresh_schema(request.getfixturevalue("pg_server")) as url:
            yield url
