"""A caption cue: what the engine's slot result carries (vortex.program.captions makes them; the
slot's MP4 and WebVTT file and the channel's subtitle rendition are written from them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cue:
    """Seconds from the slot's first sample; `text` is the script's words (lines joined by "\\n");
    `chunks` are the speech chunks its words come from (a chunk that airs as the card drops the cue)."""

    start: float
    end: float
    text: str
    chunks: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"start": round(self.start, 3), "end": round(self.end, 3), "text": self.text,
                "chunks": list(self.chunks)}

    @classmethod
    def of(cls, d: dict[str, Any]) -> "Cue":
        return cls(float(d["start"]), float(d["end"]), str(d["text"]), tuple(int(c) for c in d.get("chunks", ())))
