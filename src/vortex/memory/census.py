"""What the planner counts of the full-size architectures, kept on disk between runs.

Building Flux's 12 B-parameter transformer on the meta device and walking it takes seconds (with
the diffusers / transformers imports, ~9 s of the 11 s a cold `vortex plan` took on 2 cores); the
counts depend only on the architecture, the precision, the placement and the code that counts.
So each figure is stored under `<cache>/plan-counts-<stamp>.json`, where the stamp hashes the
library versions (torch, diffusers, transformers, kokoro), the counting code (this package's
sources, LivePortrait's network sources) and the upstream configs. A changed library or rule
starts a new file; a missing, unreadable or corrupt file is counted again, never an error.
The file is written atomically (a temporary name, then a rename): a killed run leaves no half file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("vortex.memory.census")

LIBRARIES = ("torch", "diffusers", "transformers", "kokoro")
_PACKAGE = Path(__file__).resolve().parent.parent  # src/vortex
# What decides a count: the counting code, the architectures' sources and their upstream configs.
_STAMPED = ("memory/*.py", "models/configs/*.json", "models/liveportrait/*.py", "data/liveportrait_state_dicts.json")
_PREFIX = "plan-counts-"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def stamp() -> str:
    """A hash of everything a count depends on except the arguments in its key."""
    digest = hashlib.sha256(json.dumps(library_versions(), sort_keys=True).encode())
    for pattern in _STAMPED:
        for path in sorted(_PACKAGE.glob(pattern)):
            digest.update(path.relative_to(_PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class Census:
    """Figures keyed by strings like 'count|flux.transformer|nf4|cuda', computed once per stamp."""

    def __init__(self, root: Path | None) -> None:
        self.path = None if root is None else root / f"{_PREFIX}{stamp()}.json"
        self._values: dict[str, Any] = {}
        self._dirty = False
        self.hits = self.misses = 0
        if self.path is not None:
            self._values = _read(self.path)

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The stored figure, or `compute()` (JSON-able) stored for the next run."""
        if key in self._values:
            self.hits += 1
            return self._values[key]
        self.misses += 1
        value = json.loads(json.dumps(compute()))  # tuples become lists, as they will when read back
        self._values[key] = value
        self._dirty = True
        return value

    def save(self) -> None:
        """Write the figures if any are new; a cache that cannot be written is only a slower next run."""
        if not self._dirty or self.path is None:
            return
        data = {"libraries": library_versions(), "figures": self._values}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f, sort_keys=True)
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.debug("plan counts not cached: %s", exc, extra={"path": str(self.path)})
            return
        self._dirty = False
        for old in self.path.parent.glob(f"{_PREFIX}*.json"):  # figures of other versions never match again
            if old != self.path:
                old.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    figures = data.get("figures") if isinstance(data, dict) else None
    return figures if isinstance(figures, dict) else {}


_OPEN: dict[Path | None, Census] = {}


def census_at(root: Path | None) -> Census:
    """One census per cache folder and process (re-plans of candidate changes share it)."""
    if root not in _OPEN:
        _OPEN[root] = Census(root)
    return _OPEN[root]
