"""What travels between the caller (`RayEngine`) and a replica (`VortexReplica`): plain, picklable
dicts, so either side can run on another node.

Files travel as bytes, both ways, because a path on the caller's node may not exist on the
replica's node (and the reverse):

- in: the recipe's `actor_image` and `driving_source` are read by the caller and shipped with the
  request; the replica uses its own file at that path when it holds the same bytes (one node, or a
  shared disk: the recipe and its proof are unchanged), else it writes them into its work folder.
- out: the replica renders into its own temporary folder and returns the MP4's bytes with the
  metadata; the caller writes OUT.mp4 and its sidecar itself, atomically (`vortex.engine.outputs`), like
  the local engine. A slot's MP4 is small (cpu-preview, 512²: 1.1 MB for 45 s), cheap beside the
  time it took to make, and no shared file system has to be set up for it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from ..config import LoudnessConfig
from ..contracts.requests import Priority, SlotRequest
from ..recipe import Recipe

FILE_FIELDS = ("actor_image", "driving_source")
MIN_BUDGET_S = 0.05  # a request whose time ran out in the queue still reaches the engine, which fails it as "deadline"


def encode_request(request: SlotRequest, *, slot_id: int, seed: int, deadline_s: float) -> dict[str, Any]:
    """The caller's side: the request with its seed and remaining time fixed, and its input files."""
    files = {}
    for name in FILE_FIELDS:
        ref = getattr(request.recipe.visual_track, name)
        if ref is None:
            continue
        try:
            data = Path(ref).read_bytes()
        except OSError:
            continue  # the engine reports the missing file, as it would locally
        files[name] = {"path": ref, "sha256": hashlib.sha256(data).hexdigest(), "bytes": data}
    return {
        "id": request.id,
        "recipe": request.recipe.model_dump(mode="json"),
        "slot_id": slot_id,
        "seed": seed,
        "deadline_s": deadline_s,
        "sent_at": time.time(),  # the queue wait counts against the deadline (clocks agree to ms under NTP)
        "files": files,
        "want_mp4": request.output is not None,
        "priority": int(request.priority),
        "loudness": None if request.loudness is None else request.loudness.model_dump(),
    }


def decode_request(payload: dict[str, Any], workdir: Path) -> SlotRequest:
    """The replica's side: a SlotRequest whose files and output lie on this node."""
    recipe = dict(payload["recipe"])
    visual = dict(recipe["visual_track"])
    for name, f in payload["files"].items():
        here = Path(f["path"])
        if not _same_file(here, f["sha256"]):
            local = workdir / f"{name}{here.suffix}"
            local.write_bytes(f["bytes"])
            visual[name] = str(local)
    recipe["visual_track"] = visual
    waited = max(0.0, time.time() - payload["sent_at"])
    return SlotRequest(
        recipe=Recipe.model_validate(recipe),  # not from_dict: a bad file fails in the engine, as it does locally
        id=payload["id"],
        slot_id=payload["slot_id"],
        seed=payload["seed"],
        deadline_s=max(MIN_BUDGET_S, payload["deadline_s"] - waited),
        output=workdir / "slot.mp4" if payload["want_mp4"] else None,
        priority=Priority(payload.get("priority", Priority.JOB)),
        loudness=LoudnessConfig(**payload["loudness"]) if payload.get("loudness") else None,
    )


def encode_result(result: Any, output: Optional[Path], replica: dict[str, Any]) -> dict[str, Any]:
    """The replica's answer: the metadata (the sidecar's content) and the MP4's bytes; never the
    frame arrays (hundreds of MB)."""
    mp4 = None
    if result.success and output is not None and output.is_file():
        mp4 = output.read_bytes()
    return {"metadata": result.metadata(), "mp4": mp4, "replica": replica}


def replica_identity(replica_id: str) -> dict[str, Any]:
    import ray

    return {"id": replica_id, "host": socket.gethostname(), "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id()}


def _same_file(path: Path, sha256: str) -> bool:
    try:
        return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    except OSError:
        return False
