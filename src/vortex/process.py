"""Settings that belong to the whole process, not to one engine: set by the process's owner (the
`vortex` command, `vortex serve`, the bench, the device check) before it builds an engine."""

from __future__ import annotations

from .config import VortexConfig


def configure_process(cfg: VortexConfig) -> None:
    """TF32 matmuls and convolutions on CUDA, as the profile asks (a process-wide torch switch:
    two engines in one process would otherwise overwrite each other's choice)."""
    if not cfg.device.is_cuda:
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = cfg.device.allow_tf32
    torch.backends.cudnn.allow_tf32 = cfg.device.allow_tf32
