"""The engines the tests run slots on: one per test module (`engine_fixture`, module-scoped: loading
takes seconds on 2 cores), and `engine_of` for a test that needs its own, closed when it ends."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pytest

from vortex.config import VortexConfig
from vortex.engine.pipeline import VortexPipeline


@contextmanager
def engine_of(cfg: VortexConfig, **kwargs: Any) -> Iterator[VortexPipeline]:
    pipe = VortexPipeline(cfg, **kwargs)
    try:
        yield pipe
    finally:
        pipe.close()


def engine_fixture(profile: Optional[str] = None, *, changes: Optional[dict[str, Any]] = None, name: str = "engine"):
    """A module-scoped fixture `name`: an engine on `profile` (default: the embedded default,
    cpu-preview), with `changes` (VortexConfig.with_changes) applied. Assign it in the test module:
    ``engine = engine_fixture("cpu-miniature")``."""

    @pytest.fixture(scope="module", name=name)
    def fixture() -> Iterator[VortexPipeline]:
        cfg = VortexConfig.load(profile=profile)
        with engine_of(cfg.with_changes(changes) if changes else cfg) as pipe:
            yield pipe

    return fixture
