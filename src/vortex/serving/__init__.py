"""Vortex on Ray Serve: one engine replica per GPU behind the service's `Engine` seam.

    from vortex.serving import start_local
    engine = start_local("cpu-preview", replicas=2)   # RayEngine: run(request, on_event), cancel(id), close()

Needs the `serve-ray` extra (`pip install -e ".[serve-ray]"`, pinned ray[serve]). docs/ray-serve.md
covers `serve deploy deploy/serve.yaml` on a cluster and KubeRay.
"""

import os

# Before Ray is imported (its core library reads it then): absl's failure-signal handler, which
# Ray's driver installs, takes SIGTERM too; it printed a stack and killed `vortex serve` without
# its drain (exit -15). The caller's own SIGTERM handling must stay.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")

try:
    import ray  # noqa: F401
    from ray import serve  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise ImportError("vortex.serving needs Ray Serve: pip install -e \".[serve-ray]\"") from exc

from .app import AppArgs, build_app
from .deployment import VortexReplica
from .engine import RayEngine
from .local import connect, start_local
from .result import RemoteResult

__all__ = ["AppArgs", "RayEngine", "RemoteResult", "VortexReplica", "build_app", "connect", "start_local"]
