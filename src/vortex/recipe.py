"""The recipe a director node sends for one slot: validated once, at the door.

Accepts the bare shape and the wrapped one (`{"recipe": {...}, "slot_id": N, "seed": N}`),
from a dict, a JSON or YAML string, or a file. Every problem becomes a `RecipeError` that names
the field and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RecipeError

MAX_DURATION_SEC = 45.0  # the frame/audio buffers are sized for 45 s (1080 frames at 24 fps)
SPEED_RANGE = (0.5, 2.0)
FPS_RANGE = (1, 60)


class Emotion(str, Enum):
    neutral = "neutral"
    excited = "excited"
    sad = "sad"
    angry = "angry"
    manic = "manic"


class _Strict(BaseModel):
    # Unknown keys are ignored (director nodes may send more than we use); types are not coerced
    # from strings, so `"duration_sec": "ten"` is an error, not a surprise.
    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)


class SlotParams(_Strict):
    slot_id: int
    duration_sec: float = Field(gt=0, le=MAX_DURATION_SEC)
    fps: int = Field(default=24, ge=FPS_RANGE[0], le=FPS_RANGE[1])
    seed: Optional[int] = Field(default=None, ge=0, lt=2**63)

    @property
    def n_frames(self) -> int:
        return round(self.duration_sec * self.fps)

    def n_samples(self, sample_rate: int) -> int:
        return round(self.duration_sec * sample_rate)


class AudioTrack(_Strict):
    script: str = Field(min_length=1)
    voice_id: str = "rick_c137"
    speed: float = Field(default=1.0, ge=SPEED_RANGE[0], le=SPEED_RANGE[1])
    emotion: Emotion = Emotion.neutral

    @field_validator("script")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must contain words to speak, not only whitespace")
        return v


class VisualTrack(_Strict):
    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    expression_preset: str = "neutral"
    expression_sequence: list[str] = Field(default_factory=list)
    driving_source: Optional[str] = None
    actor_image: Optional[str] = None  # a portrait to animate instead of generating one

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must describe the actor, not be only whitespace")
        return v


class SemanticConstraints(_Strict):
    # On the raw-cosine scale of the CLIP ensemble (see models/clip.py); None = profile default.
    clip_threshold: Optional[float] = Field(default=None, ge=0.0, le=1.0)


class Recipe(_Strict):
    slot_params: SlotParams
    audio_track: AudioTrack
    visual_track: VisualTrack
    semantic_constraints: SemanticConstraints = Field(default_factory=SemanticConstraints)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, base_dir: Path | None = None) -> "Recipe":
        data = _unwrap(data)
        try:
            recipe = cls.model_validate(data)
        except ValidationError as exc:
            raise _as_recipe_error(exc) from None
        files = {
            "actor_image": recipe._resolve_actor_image(base_dir),
            "driving_source": recipe._resolve_driving_source(base_dir),
        }
        files = {k: v for k, v in files.items() if v is not None}
        if files:
            recipe = recipe.model_copy(update={"visual_track": recipe.visual_track.model_copy(update=files)})
        return recipe

    @classmethod
    def from_text(cls, text: str, base_dir: Path | None = None, source: str = "recipe") -> "Recipe":
        try:
            data = yaml.safe_load(text)  # YAML is a superset of JSON: one parser for both
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise RecipeError(source, f"is not valid JSON or YAML{where}: {getattr(exc, 'problem', exc)}") from None
        return cls.from_dict(data, base_dir)

    @classmethod
    def from_file(cls, path: str | Path) -> "Recipe":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(str(path), f"cannot be read: {exc}") from None
        return cls.from_text(text, base_dir=path.parent, source=str(path))

    # ---- derived values -----------------------------------------------------------------
    def canonical_json(self) -> str:
        """A byte-stable serialisation: sorted keys, no whitespace; the input to the proof."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def with_overrides(self, slot_id: int | None = None, seed: int | None = None) -> "Recipe":
        params = self.slot_params.model_copy(
            update={k: v for k, v in (("slot_id", slot_id), ("seed", seed)) if v is not None}
        )
        return self.model_copy(update={"slot_params": params})

    def check_voice(self, known_voices: list[str]) -> None:
        if self.audio_track.voice_id not in known_voices:
            raise RecipeError(
                "audio_track.voice_id",
                f"unknown voice '{self.audio_track.voice_id}'; this profile knows: {', '.join(sorted(known_voices))}",
            )

    def _resolve_driving_source(self, base_dir: Path | None) -> str | None:
        ref = self.visual_track.driving_source
        if ref is None:
            return None
        path = _relative_to(ref, base_dir)
        if not path.is_file():
            raise RecipeError(
                "visual_track.driving_source",
                f"motion template '{ref}' does not exist (a LivePortrait motion template .pkl, relative to the recipe)",
            )
        return str(path.resolve())

    def _resolve_actor_image(self, base_dir: Path | None) -> str | None:
        ref = self.visual_track.actor_image
        if ref is None:
            return None
        path = _relative_to(ref, base_dir)
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as im:
                im.verify()
        except (OSError, UnidentifiedImageError) as exc:
            raise RecipeError("visual_track.actor_image", f"cannot read image '{ref}': {exc}") from None
        return str(path.resolve())


def _relative_to(ref: str, base_dir: Path | None) -> Path:
    """A path in a recipe is relative to the recipe's own folder, like an include."""
    path = Path(ref).expanduser()
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _unwrap(data: Any) -> Any:
    """Accept `{"recipe": {...}, "slot_id": N, "seed": N}` as well as the bare recipe."""
    if not isinstance(data, dict):
        raise RecipeError("recipe", f"must be a JSON/YAML object, got {type(data).__name__}")
    if "recipe" not in data:
        return data
    inner = data["recipe"]
    if not isinstance(inner, dict):
        raise RecipeError("recipe", f"the wrapped 'recipe' must be an object, got {type(inner).__name__}")
    inner = dict(inner)
    params = dict(inner.get("slot_params") or {})
    for key in ("slot_id", "seed"):
        if key in data:
            params[key] = data[key]
    inner["slot_params"] = params
    return inner


_ALLOWED = {
    "slot_params.duration_sec": f"a number of seconds > 0 and <= {MAX_DURATION_SEC:g}",
    "slot_params.fps": f"an integer frame rate from {FPS_RANGE[0]} to {FPS_RANGE[1]}",
    "slot_params.slot_id": "an integer",
    "slot_params.seed": "an integer from 0 to 2^63-1, or absent for a fresh seed",
    "audio_track.speed": f"a number from {SPEED_RANGE[0]} to {SPEED_RANGE[1]}",
    "audio_track.emotion": "one of " + ", ".join(e.value for e in Emotion),
    "audio_track.script": "non-empty text to speak",
    "visual_track.prompt": "a non-empty description of the actor",
    "semantic_constraints.clip_threshold": "a number from 0 to 1 (raw CLIP cosine scale)",
}


def _as_recipe_error(exc: ValidationError) -> RecipeError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "recipe"
    if err["type"] == "missing":
        problem = "is required"
    else:
        got = err.get("input")
        got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
        problem = f"{err['msg'].lower()}{got_text}"
    allowed = _ALLOWED.get(field)
    if allowed:
        problem += f"; allowed: {allowed}"
    if len(exc.errors()) > 1:
        problem += f" (and {len(exc.errors()) - 1} more problem(s))"
    return RecipeError(field, problem)
