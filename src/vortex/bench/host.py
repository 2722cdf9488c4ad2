"""What the bench reports about the machine it ran on: load, device name, commit, card capacity.

torch is imported only for a CUDA device, so a CPU report (and the table) needs none.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Optional


def host_load() -> list[float]:
    """The 1, 5 and 15-minute load averages (other processes competing for the cores), if known."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def device_name(device: str) -> str:
    """The GPU's name, or the CPU's model and core count."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def current_commit() -> Optional[str]:
    """$VORTEX_COMMIT (a copied tree has no .git), else the checkout's HEAD, else None."""
    if os.environ.get("VORTEX_COMMIT"):
        return os.environ["VORTEX_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def vram_total(device: str) -> int:
    """The card's capacity in bytes; 0 on a CPU."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_properties(torch.device(device)).total_memory
    return 0
