"""The Serve application: `build_app` is the builder `serve deploy deploy/serve.yaml` imports
(`import_path: vortex.serving.app:build_app`, with `args: {profile, replicas, ...}`).

The profile decides the resources: a GPU profile (`device: cuda...`) asks one GPU per replica, a
CPU profile one CPU. A Serve config's `deployments:` section may still override any option
(`num_replicas`, `ray_actor_options`, health-check periods) by the deployment's name, VortexReplica.
"""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ray.serve import Application

from .deployment import VortexReplica, actor_options, resolve_config

DEPLOYMENT = "VortexReplica"
APP_NAME = "vortex"


class AppArgs(BaseModel):
    """`args:` of the application in a Serve config file."""

    model_config = ConfigDict(extra="forbid")

    profile: Optional[str] = None  # a shipped profile (`vortex profiles`); default cpu-preview
    config_path: Optional[str] = None  # or a config file readable on every node
    config: Optional[dict[str, Any]] = None  # or a whole config (VortexConfig.model_dump())
    replicas: int = Field(1, ge=1)
    env: dict[str, str] = Field(default_factory=dict)  # environment of every replica (VORTEX_CACHE, HF_HOME)
    health_check_period_s: Optional[float] = Field(None, gt=0)
    # DIR/node.pem + DIR/node.key on every node, like `--sign DIR` (deploy/k8s: the Secret's mount), so all
    # replicas sign with one identity; without it each uses its config's `signing` (default: a development key)
    sign: Optional[str] = None

    @model_validator(mode="after")
    def _one_source(self) -> "AppArgs":
        if sum(x is not None for x in (self.profile, self.config_path, self.config)) > 1:
            raise ValueError("give one of profile, config_path and config")
        return self


def build_app(args: dict[str, Any]) -> Application:
    """The application for `args` (a dict, as a Serve config passes it, or an `AppArgs`)."""
    a = args if isinstance(args, AppArgs) else AppArgs.model_validate(args or {})
    cfg = resolve_config(a.profile, a.config, a.config_path, sign=a.sign)  # a bad profile or key fails here
    options: dict[str, Any] = {"num_replicas": a.replicas, "ray_actor_options": actor_options(cfg, a.env),
                               "max_ongoing_requests": cfg.pipeline.max_in_flight}
    if a.health_check_period_s is not None:
        options["health_check_period_s"] = a.health_check_period_s
    return VortexReplica.options(**options).bind(profile=a.profile, config=a.config, config_path=a.config_path,
                                                 sign=a.sign)
