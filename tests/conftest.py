"""Test-wide settings: no hub, no stray downloads, one cache of miniature weights per session."""

import os

# Without this a hub lookup hangs ~20 s before failing; every test must run offline.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def vortex_cache(tmp_path_factory):
    """Every miniature is built once per test session, into a private cache (never ~/.cache)."""
    path = tmp_path_factory.mktemp("vortex-cache")
    old = os.environ.get("VORTEX_CACHE")
    os.environ["VORTEX_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("VORTEX_CACHE", None)
    else:
        os.environ["VORTEX_CACHE"] = old
