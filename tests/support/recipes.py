"""The one recipe builder of the tests and the benchmarks: a short slot, every field a keyword.

A field given as None is left out, so the profile's default applies (no `fps`: the profile's; no
`voice`: the default voice; no `seed`: a fresh one)."""

from __future__ import annotations

from typing import Any, Optional

from vortex.recipe import Recipe


def short_recipe(slot_id: int = 1, seed: Optional[int] = None, duration: float = 1.5,
                 script: str = "Hello there, and welcome back.", *, fps: Optional[int] = 24,
                 voice: Optional[str] = "rick_c137", prompt: str = "studio portrait of a news anchor",
                 audio: Optional[dict[str, Any]] = None, **visual: Any) -> dict[str, Any]:
    """A recipe as a client sends it (a mapping); `audio` adds audio_track fields, `visual` visual_track ones."""
    params: dict[str, Any] = {"slot_id": slot_id, "duration_sec": duration}
    if fps is not None:
        params["fps"] = fps
    if seed is not None:
        params["seed"] = seed
    audio_track: dict[str, Any] = {"script": script}
    if voice is not None:
        audio_track["voice_id"] = voice
    audio_track.update(audio or {})
    return {"slot_params": params, "audio_track": audio_track, "visual_track": {"prompt": prompt, **visual}}


def recipe(*args: Any, **fields: Any) -> Recipe:
    """`short_recipe(*args, **fields)`, validated: what the engine takes."""
    return Recipe.from_dict(short_recipe(*args, **fields))
