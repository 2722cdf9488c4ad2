"""Static residency: every component is loaded once when the engine starts and stays loaded.

The engine's, not a model's: it composes every model family with the faces, the speech check and the
memory readers (vortex.memory.stats)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import VortexConfig
from ..errors import VortexError, VortexInitializationError
from ..memory.stats import format_bytes, module_bytes, vram_stats

log = logging.getLogger("vortex.registry")

Loader = Callable[[dict[str, Any]], Any]  # receives the components loaded so far (for sharing)


@dataclass(frozen=True)
class LoadRecord:
    name: str
    seconds: float
    weight_bytes: int  # bytes of the loaded modules' parameters and buffers, as stored
    vram_delta: int  # allocator growth on the device while loading (0 on CPU)


def default_loaders(cfg: VortexConfig) -> dict[str, Loader]:
    """The real components, in load order: Flux first, since the verifier shares its CLIP-L text tower."""
    from ..models.clip import ClipVerifier, SharedTextTower
    from ..models.kokoro import KokoroVoice
    from ..models.liveportrait.animator import LivePortraitAnimator

    device, cache = cfg.device.name, cfg.cache_path
    m = cfg.models

    def load_clip(loaded: dict[str, Any]) -> ClipVerifier:
        actor = loaded.get("flux")
        shared = None
        if m.share_clip_l_text_with_flux and actor is not None:
            shared = SharedTextTower(model=actor.text_encoder, tokenizer=actor.tokenizer, device=actor.text_device)
        return ClipVerifier.load(m.clip_b, m.clip_l, cfg.verification, device, cache, shared_l_text=shared)

    loaders: dict[str, Loader] = {}
    if cfg.pipeline.actor == "flux":  # the astronaut stand-in needs no generator (nor diffusers' import)
        from ..models.flux import FluxActor

        loaders["flux"] = lambda _: FluxActor.load(m.flux, device, cache)
    loaders["kokoro"] = lambda _: KokoroVoice.load(m.kokoro, device, cache, voice_calls=cfg.pipeline.voice_calls)
    loaders["clip"] = load_clip
    if cfg.pipeline.animation == "liveportrait":
        loaders["liveportrait"] = lambda _: LivePortraitAnimator.load(m.liveportrait, device, cache)
    elif cfg.pipeline.animation == "preview":
        from ..models.preview import PreviewAnimator

        loaders["preview"] = lambda _: PreviewAnimator(size=cfg.faces.crop_size)
    if cfg.faces.framing:  # dlib on the CPU: framing, and the identity and lip-sync checks it enables
        from ..faces import FaceAnalyzer

        loaders["faces"] = lambda _: FaceAnalyzer.load(cfg.faces)
    if cfg.verification.speech_check:
        from ..asr import WhisperTranscriber

        loaders["whisper"] = lambda _: WhisperTranscriber.load(m.whisper, device)
    return loaders


class ModelRegistry:
    def __init__(self, models: dict[str, Any], records: list[LoadRecord]):
        self._models = models
        self.records = records

    @classmethod
    def load(cls, cfg: VortexConfig, loaders: dict[str, Loader] | None = None) -> "ModelRegistry":
        loaders = default_loaders(cfg) if loaders is None else loaders
        models: dict[str, Any] = {}
        records: list[LoadRecord] = []
        for name, loader in loaders.items():
            before = vram_stats(cfg.device.name).allocated
            start = time.perf_counter()
            try:
                models[name] = loader(models)
            except torch.OutOfMemoryError as exc:
                raise VortexInitializationError(
                    f"out of GPU memory while loading '{name}' ({_first_line(exc)}). Loaded so far: "
                    f"{', '.join(models) or 'nothing'}. Check `vortex plan --profile {cfg.profile}` against the "
                    "card's free memory (`nvidia-smi`: other processes count too), or move a component to the "
                    "host (e.g. models.flux.text_placement: cpu) or to a smaller precision."
                ) from None
            except VortexError:
                raise
            except Exception as exc:
                raise VortexInitializationError(f"could not load '{name}': {type(exc).__name__}: {exc}") from exc
            seconds = time.perf_counter() - start
            weight_bytes = sum(module_bytes(mod) for mod in _modules_of(models[name]).values())
            delta = vram_stats(cfg.device.name).allocated - before
            records.append(LoadRecord(name, seconds, weight_bytes, delta))
            log.info(
                "component loaded",
                extra={"event": "load", "component": name, "ms": round(seconds * 1000, 1),
                       "weight_bytes": weight_bytes, "vram_delta": delta},
            )
        return cls(models, records)

    def get_model(self, name: str) -> Any:
        try:
            return self._models[name]
        except KeyError:
            raise KeyError(f"no component named '{name}'; loaded: {', '.join(self._models)}") from None

    @property
    def names(self) -> list[str]:
        return list(self._models)

    def summary(self) -> str:
        return "\n".join(
            f"  {r.name:<8} {r.seconds:6.2f} s  torch weights {format_bytes(r.weight_bytes) if r.weight_bytes else 'none (runtime outside torch)':>10}"
            f"  vram +{format_bytes(r.vram_delta)}"
            for r in self.records
        )


def _modules_of(component: Any) -> dict[str, torch.nn.Module]:
    if isinstance(component, torch.nn.Module):
        return {"module": component}
    get = getattr(component, "modules", None)  # each component lists the networks it holds
    return get() if callable(get) else {}


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
