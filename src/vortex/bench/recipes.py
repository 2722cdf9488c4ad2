"""The bench's built-in recipe (a news read cut to the slot's length) and its default slot lengths.

Default slot length: 45 s (a full slot) on a GPU profile; 6 s on a CPU profile, where the real
Kokoro voice alone runs at about half real time on 2 cores (a 45 s slot would take ~30 s each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..recipe import MAX_DURATION_SEC, Recipe

if TYPE_CHECKING:
    from ..config import VortexConfig

DEFAULT_DURATION_GPU = 45.0
DEFAULT_DURATION_CPU = 6.0

# A news read in short sentences, about 35 s for a 45 s slot at Kokoro's normal speed. Shorter
# slots take the leading sentences that fit (WORDS_PER_SECOND, with headroom), so the voice need
# not speed up; the first sentence is short enough for a 1 s slot.
BENCH_SCRIPT = (
    "Good evening.",
    "Welcome back to the news hour.",
    "Tonight, a cold front reaches the citadel.",
    "Expect light rain in the morning.",
    "Skies clear by the afternoon.",
    "In science news, a pocket portal gun.",
    "Its makers say it is perfectly safe.",
    "They would not say where the last volunteer went.",
    "Markets were calm across the galaxy today.",
    "Plumbus prices held steady for a third week.",
    "The festival of lights begins on Friday at sunset.",
    "Stay with us for the rest of the stories.",
)
BENCH_PROMPT = "studio portrait of a news anchor in a grey suit, looking at the camera, soft light"
WORDS_PER_SECOND = 1.6  # below what Kokoro speaks at speed 1.0 (1.8 with the packaged voices, ~2.5 English)


def bench_recipe(duration_sec: float, fps: int = 24, voice_id: str = "rick_c137") -> Recipe:
    """The built-in recipe: as many sentences of BENCH_SCRIPT as fit `duration_sec` comfortably."""
    if not 0 < duration_sec <= MAX_DURATION_SEC:
        raise ConfigError(f"bench duration must be in (0, {MAX_DURATION_SEC:g}] seconds, got {duration_sec:g}")
    budget = duration_sec * WORDS_PER_SECOND
    sentences = [BENCH_SCRIPT[0]]
    for sentence in BENCH_SCRIPT[1:]:
        if len(" ".join(sentences + [sentence]).split()) > budget:
            break
        sentences.append(sentence)
    return Recipe.from_dict({
        "slot_params": {"slot_id": 1, "duration_sec": duration_sec, "fps": fps},
        "audio_track": {"script": " ".join(sentences), "voice_id": voice_id},
        "visual_track": {"prompt": BENCH_PROMPT},
    })


def with_duration(recipe: Recipe, duration_sec: float) -> Recipe:
    """`recipe` with its slot length replaced, validated again (the frame count follows)."""
    params = recipe.slot_params.model_copy(update={"duration_sec": duration_sec})
    return Recipe.from_dict(recipe.model_copy(update={"slot_params": params}).model_dump(mode="json"))


def default_duration(cfg: "VortexConfig") -> float:
    return DEFAULT_DURATION_GPU if cfg.device.is_cuda else DEFAULT_DURATION_CPU
