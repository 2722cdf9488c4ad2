"""What `RayEngine.run` returns: a `GenerationResult`'s metadata without its media arrays, plus
where it ran.

It offers what the service's worker and the channel scheduler read of a `GenerationResult`
(`success`, `seed`, `error_kind`, `error_msg`, `failed_phase`, `proof`, `metadata()`), and any other
metadata key as an attribute (`result.timings_ms`, `result.verification`: plain dicts here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class RemoteResult:
    meta: dict[str, Any]  # GenerationResult.metadata(), plus "replica" and "attempts"
    replica: Optional[dict[str, Any]] = None  # the replica that ran the slot to its end: id, host, pid, node_id
    attempts: list[dict[str, Any]] = field(default_factory=list)  # earlier tries that lost their replica
    output: Optional[Path] = None  # the MP4 written on this node (success only)
    report_path: Optional[Path] = None  # OUT.json, or OUT.failed.json

    def metadata(self) -> dict[str, Any]:
        """The sidecar's content: JSON-ready, as the local engine's, with `replica` and `attempts`."""
        return dict(self.meta)

    @property
    def success(self) -> bool:
        return bool(self.meta.get("success"))

    @property
    def seed(self) -> int:
        return int(self.meta["seed"])

    @property
    def slot_id(self) -> int:
        return int(self.meta["slot_id"])

    def __getattr__(self, name: str) -> Any:  # error_kind, error_msg, failed_phase, proof, timings_ms, ...
        if name.startswith("_") or name == "meta":  # unpickling reads attributes before `meta` exists
            raise AttributeError(name)
        try:
            return self.meta[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no field '{name}'") from None
