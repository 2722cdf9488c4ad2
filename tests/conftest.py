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


def pytest_collection_modifyitems(items):
    """tests/test_serving_ray.py first, while this process has run no media. It starts a private Ray
    here, and Ray forks its GCS with a preexec_fn: the child runs Python after freeing the other
    threads' state. Late in the suite (earlier modules' threads alive: a parked channel appender holds
    its encoder for good) that child freed a PyAV reformatter and waited forever on its swscale
    thread pool's condition variable: CI hung there twice on branch voicecalls. `vortex serve`
    likewise starts Ray before any channel runs."""
    items.sort(key=lambda item: not item.nodeid.split("::")[0].endswith("test_serving_ray.py"))
