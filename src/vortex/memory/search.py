"""When a plan is over: find a change of placement or precision that fits, by re-planning.

Candidate changes are tried least intrusive first (the order is the preference when several fit);
when none fits alone, a greedy combination (biggest saving first) is tried. Also the note on the
T5-XXL choice, which re-plans the other placement of the text encoders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from .figures import GIB, PlanFigures, gib

if TYPE_CHECKING:
    from ..config import VortexConfig
    from .census import Census


@dataclass(frozen=True)
class Change:
    """One setting to change: `path` names the field from the config's root."""

    path: tuple[str, ...]
    value: Any

    def override(self) -> dict[str, Any]:
        """The nested mapping `VortexConfig.with_changes` takes ({"models": {"flux": {...}}})."""
        nested: Any = self.value
        for key in reversed(self.path):
            nested = {key: nested}
        return nested

    def __str__(self) -> str:
        shown = str(self.value).lower() if isinstance(self.value, bool) else self.value
        return f"set {'.'.join(self.path)}: {shown}"


def _change(path: str, value: Any) -> Change:
    return Change(tuple(path.split(".")), value)


def apply(cfg: "VortexConfig", changes: list[Change]) -> "VortexConfig":
    for change in changes:
        cfg = cfg.with_changes(change.override())
    return cfg


def replan(cfg: "VortexConfig", changes: list[Change], measured: Mapping[str, int], census: "Census") -> PlanFigures:
    from .weigh import weigh

    return weigh(apply(cfg, changes), measured, census)


def suggestion(plan: PlanFigures, census: "Census") -> str:
    """When over: the biggest GPU components and a change that fits, found by re-planning."""
    if not plan.on_gpu or plan.fits:
        return "the plan fits; no change needed."
    biggest = ", ".join(f"{r.component} {gib(r.bytes)}" for r in plan.gpu_components()[:3])
    head = (f"{gib(plan.gpu_bytes)} needed on {plan.device}, {gib(plan.overage_bytes)} over the hard limit "
            f"of {gib(plan.hard_limit_bytes)}. Biggest GPU components: {biggest}.")
    if plan.config is None:
        return head
    cfg, measured = plan.config, plan.measured_activations
    tried = [(change, replan(cfg, [change], measured, census)) for change in candidate_changes(cfg)]
    fitting = [(c, p) for c, p in tried if p.fits]
    if fitting:
        change, best = fitting[0]
        also = "; ".join(f"{_describe([c], p, plan)}" for c, p in fitting[1:3])
        return (f"{head} Change that fits: {_describe([change], best, plan)}."
                + (f" Also fits: {also}." if also else ""))
    combo, best = _greedy_combination(cfg, tried, measured, census)
    if combo and best.fits:
        return f"{head} No single change fits; together these do: {_describe(combo, best, plan)}."
    floor = best.gpu_bytes if combo else plan.gpu_bytes
    changes = f" (after: {', '.join(str(c) for c in combo)})" if combo else ""
    return (f"{head} No change of placement or precision fits: the smallest plan reachable is "
            f"{gib(floor)}{changes}. It needs a card whose hard limit is at least {gib(floor)} "
            f"(set vram.hard_limit_gb: {math.ceil(floor / GIB * 10) / 10} only if the card has it).")


def candidate_changes(cfg: "VortexConfig") -> list[Change]:
    """Changes worth trying, least intrusive first (the order is the preference when several fit)."""
    from .weigh import placer

    m, f = cfg.models, cfg.models.flux
    on = placer(cfg)
    changes: list[Change] = []
    if on(f.text_placement) == "cuda":
        changes.append(_change("models.flux.text_placement", "cpu"))  # with the prompt cache, T5 rarely runs
        if f.t5_precision not in ("nf4", "int8"):
            changes.append(_change("models.flux.t5_precision", "nf4"))
        if f.clip_text_precision == "fp32":
            changes.append(_change("models.flux.clip_text_precision", "bf16"))
    if not m.share_clip_l_text_with_flux:
        changes.append(_change("models.share_clip_l_text_with_flux", True))
    for section in ("clip_b", "clip_l"):
        clip = getattr(m, section)
        if on(clip.placement) == "cuda" and clip.precision not in ("int8", "nf4"):
            changes.append(_change(f"models.{section}.precision", "int8"))
    if on(f.placement) == "cuda":
        if f.vae_precision == "fp32":
            changes.append(_change("models.flux.vae_precision", "bf16"))
        if f.precision != "nf4":
            changes.append(_change("models.flux.precision", "nf4"))
    if on(m.kokoro.placement) == "cuda":
        changes.append(_change("models.kokoro.placement", "cpu"))
    if cfg.pipeline.parallel_audio_actor:
        changes.append(_change("pipeline.parallel_audio_actor", False))
    return changes


def _greedy_combination(cfg: "VortexConfig", tried: list[tuple[Change, PlanFigures]], measured: Mapping[str, int],
                        census: "Census") -> tuple[list[Change], "PlanFigures | None"]:
    """Biggest single saving first; keep a change only if it still lowers the GPU total on top of
    the ones already kept (moving T5 to the host makes quantising it pointless for the GPU)."""
    combo: list[Change] = []
    plan = None
    for change, _ in sorted(tried, key=lambda cp: cp[1].gpu_bytes):
        candidate = replan(cfg, combo + [change], measured, census)
        if plan is None or candidate.gpu_bytes < plan.gpu_bytes:
            combo, plan = combo + [change], candidate
        if plan.fits:
            break
    return combo, plan


def _describe(changes: list[Change], plan: PlanFigures, before: PlanFigures) -> str:
    return (f"{', '.join(str(c) for c in changes)} (-{gib(before.gpu_bytes - plan.gpu_bytes)}, "
            f"plan {gib(plan.gpu_bytes)})")


# ---- the T5 decision -------------------------------------------------------------------------

def t5_notes(cfg: "VortexConfig", plan: PlanFigures, measured: Mapping[str, int], census: "Census") -> list[str]:
    from .weigh import Facts, t5_quant_note

    f = cfg.models.flux
    t5 = next(r for r in plan.rows if r.component == "flux.t5_xxl")
    if not plan.on_gpu:
        return [f"T5-XXL: on the host ({f.t5_precision}, {gib(t5.bytes)}); the device is {plan.device}."]
    if t5.placement == "cpu":
        on_gpu = [_change("models.flux.text_placement", "cuda"), _change("models.flux.t5_precision", "nf4"),
                  _change("models.flux.clip_text_precision", "bf16")]
        alt = replan(cfg, on_gpu, measured, census)
        alt_t5 = next(r for r in alt.rows if r.component == "flux.t5_xxl")
        verdict = "over" if not alt.fits else "under"
        return [f"T5-XXL choice: T5 and the CLIP-L text tower run on the host ({f.t5_precision}, {gib(t5.bytes)} of "
                f"host RAM for T5) and their prompt embeddings are cached ({f.prompt_cache_size} prompts), so a "
                f"recurring actor prompt never runs T5 again. On the GPU in nf4 T5 would take {gib(alt_t5.bytes)} "
                f"({t5_quant_note(Facts(census), 'nf4', 'cuda')}); with CLIP-L text in bf16 beside it the plan "
                f"would be {gib(alt.gpu_bytes)}, {verdict} the hard limit of {gib(alt.hard_limit_bytes)}."]
    alt = replan(cfg, [_change("models.flux.text_placement", "cpu")], measured, census)
    return [f"T5-XXL choice: on the GPU in {f.t5_precision} ({gib(t5.bytes)}); moving the text encoders to the host "
            f"would free {gib(plan.gpu_bytes - alt.gpu_bytes)} (plan {gib(alt.gpu_bytes)})."]
