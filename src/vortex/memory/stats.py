"""Small readers of memory use, the same on a GPU and (as zeros) on a CPU-only machine."""

from __future__ import annotations

from dataclasses import dataclass

import torch

GIB = 2**30


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", GIB), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


@dataclass(frozen=True)
class VRAMStats:
    allocated: int  # bytes held by live tensors
    reserved: int  # bytes PyTorch's caching allocator holds from the driver
    max_allocated: int
    max_reserved: int
    total: int  # the device's capacity; 0 on CPU

    def as_gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in self.__dict__.items()}


def vram_stats(device: str | torch.device) -> VRAMStats:
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return VRAMStats(0, 0, 0, 0, 0)
    return VRAMStats(
        allocated=torch.cuda.memory_allocated(device),
        reserved=torch.cuda.memory_reserved(device),
        max_allocated=torch.cuda.max_memory_allocated(device),
        max_reserved=torch.cuda.max_memory_reserved(device),
        total=torch.cuda.get_device_properties(device).total_memory,
    )


def reset_peak(device: str | torch.device) -> None:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)


def module_bytes(module: torch.nn.Module) -> int:
    """Bytes of a loaded module's parameters and buffers, as they are stored (quantized or not)."""
    seen: set[int] = set()
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if t.device.type == "meta" or id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    for sub in module.modules():  # dynamically quantised Linear layers keep weights outside parameters()
        packed = getattr(sub, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            total += w.numel() * w.element_size() + (0 if b is None else b.numel() * b.element_size())
    return total
