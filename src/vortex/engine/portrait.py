"""The actor stage: where the slot's portrait comes from, and how its face is framed.

Three sources, in order of precedence: the recipe's `visual_track.actor_image`; the named stand-in
of `pipeline.actor: astronaut` (scikit-image's public-domain NASA portrait, for machines with no
Flux weights); FLUX.1-schnell from the prompt. With `faces.framing` on, the face is found and
framed as LivePortrait's public pipeline frames it (vortex.faces.framing): the animator works on
that crop and every frame is pasted back into the whole portrait.

A recipe's portrait without a face is bad input (`visual_track.actor_image`); a generated one is
generated again with the next seed while the deadline allows, then the slot fails saying why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ..errors import RecipeError, VortexError

ASTRONAUT = "astronaut"
# A Flux portrait without a detectable face is tried again with seed+1, +2: three takes in all.
# Each take at 512² is ~0.5 s on a 3060-class GPU; the deadline check stops earlier.
PORTRAIT_ATTEMPTS = 3


class NoFaceError(VortexError):
    """A generated portrait held no detectable face, in every take the deadline allowed."""


@dataclass
class ActorPortrait:
    image: np.ndarray  # (H, W, 3) uint8: the whole portrait at the frame buffer's size
    origin: str  # "actor_image" | "astronaut (stand-in)" | "flux" | "flux (stand-in)"
    seed: Optional[int] = None  # the seed of the Flux take that was kept
    takes: int = 1
    framing: Any = None  # vortex.faces.Framing, or None (framing off, or no face in a stand-in)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        f = self.framing
        return {
            "origin": self.origin, "seed": self.seed, "takes": self.takes, "framed": f is not None,
            "face_box": None if f is None else [f.box.left, f.box.top, f.box.right, f.box.bottom],
            "crop_size": None if f is None else f.crop_size, "notes": self.notes,
        }


def fit_to_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the frame's aspect and resize (Lanczos): the whole portrait the video shows."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image))
    scale = max(width / im.width, height / im.height)
    im = im.resize((max(width, round(im.width * scale)), max(height, round(im.height * scale))), Image.LANCZOS)
    left, top = (im.width - width) // 2, (im.height - height) // 2
    return np.asarray(im.crop((left, top, left + width, top + height)).convert("RGB"), dtype=np.uint8)


def load_portrait(path: str, height: int, width: int) -> np.ndarray:
    """The recipe's actor_image, read through the one safe image reader (size, pixels, file kind)."""
    from ..inputs import open_image

    with open_image(path, "visual_track.actor_image") as im:
        try:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except OSError as exc:
            raise RecipeError("visual_track.actor_image", f"cannot decode image '{path}': {exc}") from None
    return fit_to_frame(rgb, height, width)


def stand_in_portrait(name: str, height: int, width: int) -> np.ndarray:
    if name != ASTRONAUT:
        raise VortexError(f"pipeline.actor: unknown stand-in portrait '{name}'")
    from skimage import data  # ships the image inside the package: nothing downloads

    return fit_to_frame(data.astronaut(), height, width)


def frame_face(analyzer: Any, image: np.ndarray, faces_cfg: Any) -> Any:
    from ..faces import frame_portrait

    return frame_portrait(analyzer, image, faces_cfg)


def make_portrait(
    *,
    actor_image: Optional[str],
    stand_in: Optional[str],
    generate: Optional[Callable[[int], np.ndarray]],
    seed: int,
    height: int,
    width: int,
    analyzer: Any,
    faces_cfg: Any,
    frame: bool,
    time_left: Callable[[], float],
    generated_is_stand_in: bool = False,
) -> ActorPortrait:
    """The slot's portrait and its framing. `frame`: find and frame the face (faces.framing, and a
    source that can hold one); `generate(seed)`: a Flux take; `time_left()`: seconds of deadline."""
    if actor_image:
        portrait = ActorPortrait(load_portrait(actor_image, height, width), "actor_image")
    elif stand_in:
        portrait = ActorPortrait(stand_in_portrait(stand_in, height, width), f"{stand_in} (stand-in)")
    else:
        if generate is None:
            raise VortexError("no portrait source: pipeline.actor is 'flux' but Flux is not loaded")
        return _generated(generate, seed, analyzer, faces_cfg, frame, time_left, generated_is_stand_in)
    if frame:
        portrait.framing = frame_face(analyzer, portrait.image, faces_cfg)
        if portrait.framing is None:
            if portrait.origin == "actor_image":
                raise RecipeError("visual_track.actor_image",
                                  f"no face found in '{actor_image}': the actor must show one face, frontal, "
                                  "at least ~40 px wide in the portrait after it is fitted to the frame")
            raise VortexError(f"the stand-in portrait '{stand_in}' shows no detectable face")
    return portrait


def _generated(generate, seed, analyzer, faces_cfg, frame, time_left, is_stand_in) -> ActorPortrait:
    origin = "flux (stand-in)" if is_stand_in else "flux"
    if not frame:
        return ActorPortrait(generate(seed), origin, seed=seed)
    tried = []
    for take in range(PORTRAIT_ATTEMPTS):
        take_seed = (seed + take) % 2**63
        image = generate(take_seed)
        tried.append(take_seed)
        framing = frame_face(analyzer, image, faces_cfg)
        if framing is not None:
            notes = [] if take == 0 else [f"portrait seeds {tried[:-1]} held no face; seed {take_seed} did"]
            return ActorPortrait(image, origin, seed=take_seed, takes=take + 1, framing=framing, notes=notes)
        if time_left() <= 0:
            break
    raise NoFaceError(f"the generated portrait held no detectable face in {len(tried)} take(s) "
                      f"(seeds {', '.join(map(str, tried))}); try another visual_track.prompt or an actor_image")
