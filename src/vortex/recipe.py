"""The recipe a director node sends for one slot: validated once, at the door.

Accepts the bare shape and the wrapped one (`{"recipe": {...}, "slot_id": N, "seed": N}`),
from a dict, a JSON or YAML string, or a file (read through `vortex.inputs`: regular files only,
1 MiB at most, UTF-8, JSON parsed as JSON). Every problem becomes a `RecipeError` that names the
field and what is allowed, or a `RecipeFileError` ("recipe file '...'") about the file itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import inputs
from .errors import RecipeError
from .inputs import RecipeFileError

__all__ = ["Recipe", "RecipeError", "RecipeFileError", "MAX_DURATION_SEC", "WORDS_PER_SEC_BOUND"]

MAX_DURATION_SEC = 45.0  # the frame/audio buffers are sized for 45 s (1080 frames at 24 fps)
SPEED_RANGE = (0.5, 2.0)
FPS_RANGE = (1, 60)
# The most words per second a voice could speak at speed 1.0, deliberately generous so that speech
# that might fit is never refused: Kokoro-82M (int8 ONNX, three voices) speaks prose at 2.2-2.4
# words/s per unit of speed and its fastest real script, one-letter words ("a-a-a ..."), at 13.1;
# 20 is 1.5x that. (A word repeated verbatim, "I I I ...", is folded by the G2P into a few
# phonemes and runs faster still: that is not speech, and no bound on words can follow it.)
WORDS_PER_SEC_BOUND = 20.0
# A word as speech counts it: letters or digits of any script, with inner apostrophes ("don't" is one).
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


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

    @model_validator(mode="after")
    def _at_least_one_frame(self) -> "SlotParams":
        # Raised as a RecipeError (not a ValueError) so that it names duration_sec, not slot_params.
        if self.n_frames < 1:
            raise RecipeError(
                "slot_params.duration_sec",
                f"{self.duration_sec:g} s gives 0 frames at {self.fps} fps; the shortest slot is one frame, "
                f"{1 / self.fps:.4g} s at {self.fps} fps",
            )
        return self


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
        if not _WORD.search(v):
            raise ValueError("has no pronounceable word: it needs at least one letter or digit (in any script)")
        return v

    @property
    def n_words(self) -> int:
        return len(_WORD.findall(self.script))


class LowerThirdText(_Strict):
    """The slot's on-screen name and title in a program picture (vortex.program); it wins over the program's."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]*\S[^\x00-\x1f]*$")
    title: str = Field(default="", max_length=200, pattern=r"^[^\x00-\x1f]*$")


class VisualTrack(_Strict):
    prompt: str = Field(min_length=1)
    negative_prompt: str = ""
    expression_preset: str = "neutral"
    expression_sequence: list[str] = Field(default_factory=list)
    driving_source: Optional[str] = None
    actor_image: Optional[str] = None  # a portrait to animate instead of generating one
    lower_third: Optional[LowerThirdText] = None  # only a program picture shows it

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
    def from_dict(cls, data: Any, base_dir: Path | None = None, source: str | None = None) -> "Recipe":
        """`source` names the file (or text) the dict came from, for errors about its shape."""
        data = _unwrap(data, source)
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
    def from_text(cls, text: str, base_dir: Path | None = None, source: str | None = None) -> "Recipe":
        """JSON (text opening with '{' or '[') or YAML; `source` is the file it came from, if any."""
        return cls.from_dict(inputs.parse_text(text, "recipe", source=source), base_dir, source)

    @classmethod
    def from_file(cls, path: str | Path) -> "Recipe":
        """A `.json` file is parsed as JSON, `.yaml`/`.yml` as YAML, any other name by its content."""
        path = Path(path)
        return cls.from_dict(inputs.load_file(path, "recipe"), base_dir=path.parent, source=str(path))

    # ---- derived values -----------------------------------------------------------------
    def canonical_json(self) -> str:
        """A byte-stable serialisation: sorted keys, no whitespace; the input to the proof."""
        data = self.model_dump(mode="json")
        if data["visual_track"].get("lower_third") is None:  # recipes without one keep the digest they had
            data["visual_track"].pop("lower_third", None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()

    def with_overrides(self, slot_id: int | None = None, seed: int | None = None) -> "Recipe":
        params = self.slot_params.model_copy(
            update={k: v for k, v in (("slot_id", slot_id), ("seed", seed)) if v is not None}
        )
        return self.model_copy(update={"slot_params": params})

    def check_speakable(self, max_speed: float) -> None:
        """Refuse a script that no allowed speed can fit in the slot, before any synthesis: at most
        duration x speed x WORDS_PER_SEC_BOUND words, where speed is the fastest the voice may go
        (`max(max_speed, the recipe's speed)`, as the voice's re-synthesis allows)."""
        a, d = self.audio_track, self.slot_params.duration_sec
        speed = max(max_speed, a.speed)
        limit = int(d * speed * WORDS_PER_SEC_BOUND + 1e-9)  # 2.5 s x 2 x 20 is 100 words, not 99
        words = a.n_words
        if words > limit:
            raise RecipeError(
                "audio_track.script",
                f"{words} words cannot be spoken in {d:g} s even at speed {speed:g}: at most {limit} words fit "
                f"(a generous bound of {WORDS_PER_SEC_BOUND:g} words/s at speed 1.0; Kokoro speaks prose at about 2.3); "
                f"shorten the script or lengthen slot_params.duration_sec",
            )

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
        try:
            inputs.check_regular_file(path, "visual_track.driving_source", ref=ref)
        except RecipeError as exc:
            raise RecipeError(
                "visual_track.driving_source",
                f"motion template {exc.problem} (a LivePortrait motion template .pkl, relative to the recipe)",
            ) from None
        return str(path.resolve())

    def _resolve_actor_image(self, base_dir: Path | None) -> str | None:
        ref = self.visual_track.actor_image
        if ref is None:
            return None
        path = _relative_to(ref, base_dir)
        # The header and structure only: the pipeline decodes it (through the same gate) when it runs.
        inputs.open_image(path, "visual_track.actor_image", ref=ref, decode=False)
        return str(path.resolve())


def _relative_to(ref: str, base_dir: Path | None) -> Path:
    """A path in a recipe is relative to the recipe's own folder, like an include."""
    path = Path(ref)
    try:
        path = path.expanduser()
    except RuntimeError:  # "~nosuchuser/x": no such home; left as written, so the file check names it
        pass
    return base_dir / path if not path.is_absolute() and base_dir is not None else path


def _unwrap(data: Any, source: str | None = None) -> Any:
    """Accept `{"recipe": {...}, "slot_id": N, "seed": N}` as well as the bare recipe."""
    if not isinstance(data, dict):
        raise RecipeFileError(source, f"must hold a JSON/YAML object (the recipe), got {_type_name(data)}")
    if "recipe" not in data:
        return data
    inner = data["recipe"]
    if not isinstance(inner, dict):
        raise RecipeError("recipe", f"the wrapped 'recipe' must be an object, got {_type_name(inner)}")
    inner = dict(inner)
    params = dict(inner.get("slot_params") or {})
    for key in ("slot_id", "seed"):
        if key in data:
            params[key] = data[key]
    inner["slot_params"] = params
    return inner


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), type(value).__name__)


_ALLOWED = {
    "slot_params.duration_sec": f"a number of seconds > 0 and <= {MAX_DURATION_SEC:g}",
    "slot_params.fps": f"an integer frame rate from {FPS_RANGE[0]} to {FPS_RANGE[1]}",
    "slot_params.slot_id": "an integer",
    "slot_params.seed": "an integer from 0 to 2^63-1, or absent for a fresh seed",
    "audio_track.speed": f"a number from {SPEED_RANGE[0]} to {SPEED_RANGE[1]}",
    "audio_track.emotion": "one of " + ", ".join(e.value for e in Emotion),
    "audio_track.script": "non-empty text to speak, with at least one letter or digit",
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
        problem = f"{err['msg'].removeprefix('Value error, ').lower()}{got_text}"
    allowed = _ALLOWED.get(field)
    if allowed:
        problem += f"; allowed: {allowed}"
    if len(exc.errors()) > 1:
        problem += f" (and {len(exc.errors()) - 1} more problem(s))"
    return RecipeError(field, problem)
