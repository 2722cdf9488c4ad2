"""Start (or join) Ray, deploy the Vortex application, and hand back a `RayEngine`.

    engine = start_local("cpu-preview", replicas=2)            # a private Ray instance on this machine
    engine = start_local("h100", replicas=8, address="auto")   # join the cluster this node belongs to
    engine = connect(address="auto")                            # an app already deployed by `serve deploy`

No Serve HTTP proxy is started (`proxy_location="Disabled"`): Vortex's own FastAPI service fronts
the replicas and reaches them through a deployment handle.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Optional

from ..config import VortexConfig
from .app import APP_NAME, DEPLOYMENT, AppArgs, build_app
from .engine import RayEngine

log = logging.getLogger("vortex.serving")

# The replicas' environment, from the caller's: where miniatures are cached, offline switches. A
# local instance would inherit it anyway; a cluster's workers would not.
FORWARDED_ENV = ("VORTEX_CACHE", "HF_HUB_OFFLINE", "HF_HOME", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM")
OBJECT_STORE_MB = 256  # a slot's answer is its MP4 (~1 MB for 45 s on cpu-preview): 256 MB is plenty
QUIET = {"log_level": "WARNING", "enable_access_log": False}


def start_local(profile: str | VortexConfig | None = None, replicas: int = 1, address: Optional[str] = None, *,
                name: str = APP_NAME, num_cpus: Optional[int] = None, object_store_mb: int = OBJECT_STORE_MB,
                health_check_period_s: Optional[float] = None, max_attempts: int = 3) -> RayEngine:
    """Deploy `replicas` engines of `profile` (a shipped profile's name or a `VortexConfig`) as the
    Serve application `name` and return the engine that dispatches to them; blocks until every
    replica has loaded its models (a load failure raises RuntimeError).

    `address=None`: a private Ray instance on this machine with `num_cpus` CPUs (default: one per
    replica), no dashboard, a `object_store_mb` object store, shut down by `engine.close()`.
    `address="auto"` or "HOST:6379": join that cluster; `close()` deletes the application only.
    """
    import ray
    from ray import serve

    from ..provenance.signing import SlotSigner

    cfg = profile if isinstance(profile, VortexConfig) else VortexConfig.load(profile)
    # Before the replicas start: a development key is then made once, here, not by N replicas at once
    # (each writes node.pem and node.key in turn: two at a time could leave a mismatched pair).
    signer = SlotSigner.from_config(cfg)
    address = address or os.environ.get("RAY_ADDRESS")  # ray.init would join it anyway: then it is not ours
    owns_ray, release = False, None
    if not ray.is_initialized():
        if address is None:
            release = _start_private_ray(num_cpus=num_cpus or replicas, include_dashboard=False,
                                         object_store_memory=object_store_mb * 1024 * 1024)
            owns_ray = True
        else:
            _ray_init(address=address)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    serve.start(proxy_location="Disabled", logging_config=QUIET)
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    args = AppArgs(replicas=replicas, env=env, health_check_period_s=health_check_period_s,
                   **({"config": cfg.model_dump(mode="json")} if isinstance(profile, VortexConfig)
                      else {"profile": cfg.profile}))
    try:
        handle = serve.run(build_app(args), name=name, route_prefix=None, logging_config=QUIET)
    except BaseException:
        if owns_ray:
            _shutdown(name, owns_ray, release)
        raise

    return RayEngine(handle, profile=cfg.profile, default_deadline_s=cfg.pipeline.generation_timeout_sec,
                     max_attempts=max_attempts, on_close=lambda: _shutdown(name, owns_ray, release), signer=signer)


def connect(address: Optional[str] = "auto", *, name: str = APP_NAME, max_attempts: int = 3,
            signing: Optional[VortexConfig] = None) -> RayEngine:
    """A `RayEngine` on an application someone else deployed (`serve deploy deploy/serve.yaml`);
    `close()` leaves it running. The replicas tell their profile and its default deadline. A channel on
    it signs its segments with `signing`'s identity (the replicas' own key, from the deploy's Secret);
    without it, nothing here signs."""
    import ray
    from ray import serve

    from ..provenance.signing import SlotSigner

    if not ray.is_initialized():
        _ray_init(address=address)
    handle = serve.get_deployment_handle(DEPLOYMENT, app_name=name)
    engine = RayEngine(handle, max_attempts=max_attempts,
                       signer=None if signing is None else SlotSigner.from_config(signing))
    replicas = engine.replicas()  # a broadcast: answered by busy replicas too
    if replicas:
        engine.profile = replicas[0]["profile"]
        engine.default_deadline_s = replicas[0]["generation_timeout_sec"]
    return engine


def _ray_init(**kwargs: Any) -> None:
    """ray.init, quiet, and without taking SIGTERM from the process: from the main thread Ray
    installs a handler that exits at once, which would skip `vortex serve`'s drain (absl's
    failure-signal handler is kept off SIGTERM in this package's __init__)."""
    import signal

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no phone-home from a render node
    logging.getLogger("ray").setLevel(logging.WARNING)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    ray.init(log_to_driver=False, configure_logging=False, **kwargs)
    if previous is not None:  # None: a handler set outside Python, nothing to put back
        signal.signal(signal.SIGTERM, previous)


def _start_private_ray(**kwargs: Any) -> Optional[threading.Event]:
    """A private Ray instance, started from a thread that outlives it. Ray binds its GCS and raylet
    to the starting *thread* (PR_SET_PDEATHSIG): started from a short-lived thread (a pool's, or
    `vortex serve`'s worker when it stops), they get SIGKILL when it ends, and every caller then
    waits 60 s for a GCS that is gone before Ray exits the process. Returns the Event that lets the
    owner thread end (after ray.shutdown), or None from the main thread."""
    if threading.current_thread() is threading.main_thread():
        _ray_init(**kwargs)
        return None
    ready, release, failed = threading.Event(), threading.Event(), []

    def own() -> None:
        try:
            _ray_init(**kwargs)
        except BaseException as exc:
            failed.append(exc)
            return
        finally:
            ready.set()
        release.wait()

    threading.Thread(target=own, name="vortex-ray-owner", daemon=True).start()
    ready.wait()
    if failed:
        raise failed[0]
    return release


def _shutdown(name: str, owns_ray: bool, release: Optional[threading.Event] = None) -> None:
    import ray
    from ray import serve

    try:
        if owns_ray:
            serve.shutdown()
            ray.shutdown()
        else:
            serve.delete(name)
    except Exception:  # closing on the way out: the cluster may be gone already
        log.warning("Ray Serve shutdown failed", exc_info=True)
    finally:
        if release is not None:
            release.set()  # only now may the thread that started Ray end
