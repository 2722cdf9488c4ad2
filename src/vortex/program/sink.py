"""The program picture in a slot's MP4 (`vortex generate` with a config's `program:` block): a
FrameSink wrapper that composites each of the engine's 512² frames into the program before the
MP4 writer sees it. Without the block a slot stays the engine's square.

The config holds the block as written (vortex.config cannot import this layer); ``config_program``
parses and checks it, each problem a ConfigFieldError on ``program.<field>`` (exit 2), before any
model loads. Each slot gets its own compositor (0.18 s to render the layers at 1280x720), since
slots may run side by side; its ticker starts at the slot's first frame.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import numpy as np

from ..config import ConfigFieldError
from ..contracts.sinks import MediaShape
from .compose import ProgramCompositor
from .graphics import check_lower_third, check_program, slot_lower_third
from .spec import ProgramError, ProgramSpec, parse_program


def config_program(cfg: Any, recipe: Any = None) -> Optional[ProgramSpec]:
    """The config's program (None without a block), checked; with ``recipe``, its lower third too."""
    block = getattr(cfg, "program", None)
    if block is None:
        return None
    try:
        spec = parse_program(block)
        check_program(spec)
        if recipe is not None:
            check_lower_third(spec, slot_lower_third(recipe), "(recipe) visual_track.lower_third")
    except ProgramError as exc:
        raise ConfigFieldError(f"config '{cfg.profile}'", f"program.{exc.field}", exc.problem) from None
    return spec


class ProgramSink:
    """Wraps a FrameSink that takes RGB frames (the MP4's): it opens at the program's size and gets
    each frame composited (the recipe's lower third wins over the program's)."""

    def __init__(self, inner: Any, spec: ProgramSpec, recipe: Any = None, cues: tuple = ()):
        self.inner = inner
        self.cpu_stage = getattr(inner, "cpu_stage", "encode")
        self.compositor = ProgramCompositor(spec)
        self._lower, self._cues = slot_lower_third(recipe), tuple(cues)  # cues: burned with `captions: burn`

    def open(self, shape: MediaShape) -> None:
        self.compositor.anchor_size = (shape.width, shape.height)
        self.compositor.begin_slot(lower_third=self._lower, cues=self._cues, first_frame=0, fps=shape.fps)
        self.inner.open(replace(shape, width=self.compositor.width, height=self.compositor.height))

    def write_audio(self, chunk: np.ndarray) -> None:
        self.inner.write_audio(chunk)

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self.inner.write_frame(index, self.compositor.compose_rgb(frame, index))

    def finish(self) -> None:
        self.inner.finish()

    def abort(self) -> None:
        self.inner.abort()
