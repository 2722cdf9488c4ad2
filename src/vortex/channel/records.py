"""``DIR/channel.json``: every attempt and decision of a channel run, written atomically.

It is also what a restart reads: which slots were appended (with their first global frame, so
that the playlist's listed frames tell how far the stream really got), the schedule's epochs
(a restart that missed its air times starts a new one) and the last good slot MP4 for fillers.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

STATE_NAME = "channel.json"
LATE_GRACE_S = 0.5  # a "now" slot airs the moment it is ready: its append follows by milliseconds
Decision = str  # "aired" | "filler:last_good" | "filler:standby" | "break" (a slate: breaks.py)


@dataclass
class Attempt:
    seed: int
    outcome: str  # "ok" | "failed"
    error_kind: Optional[str]
    error: Optional[str]
    seconds: float
    replica: Optional[str] = None  # the engine replica that ran it (`vortex serve --engine ray`)
    cpu_s: Optional[dict] = None  # CPU seconds per engine stage, where the engine's result has `cpu_s`
    loudness: Optional[dict] = None  # the slot's audio as made: {integrated_lufs, true_peak_dbtp, target_lufs}


@dataclass
class SlotRecord:
    index: int  # the channel's slot number, 0, 1, 2, ... (a looped list repeats its recipes)
    position: int  # the entry of the definition's slot list
    recipe: str  # its path as written, or "inline"
    duration_sec: float
    n_frames: int
    air_time: Optional[str] = None  # ISO 8601; the scheduled first frame
    deadline: Optional[str] = None  # air time - margin (None: "now" start, or --pace asap)
    attempts: list[Attempt] = field(default_factory=list)
    decision: Optional[Decision] = None
    ready_at: Optional[str] = None
    lead_time_sec: Optional[float] = None  # air time - ready time
    filler_of: Optional[int] = None  # the slot index a last_good filler re-aired
    first_frame: Optional[int] = None  # global frame index, set just before the append
    appended_at: Optional[str] = None
    aired_frames: Optional[int] = None  # fewer than n_frames: a live insert cut it there (None: all aired)

    @property
    def retries(self) -> int:
        """Attempts started beyond the first (a skipped attempt never started)."""
        return max(0, sum(a.outcome != "skipped" for a in self.attempts) - 1)

    @property
    def skipped(self) -> int:
        return sum(a.outcome == "skipped" for a in self.attempts)

    @property
    def late(self) -> bool:
        """Appended after its air time: a player at the live edge would wait there (a stall)."""
        if self.appended_at is None or self.air_time is None:
            return False
        return parse_iso(self.appended_at) > parse_iso(self.air_time) + timedelta(seconds=LATE_GRACE_S)


@dataclass
class Epoch:
    first_index: int
    start: Optional[str]  # air time of first_index; None until known ("now": when it is ready)
    resumed: bool
    started_at: str


@dataclass
class ChannelState:
    channel: str
    definition: Optional[str]
    width: int
    height: int
    fps: int
    sample_rate: int
    epochs: list[Epoch] = field(default_factory=list)
    slots: list[SlotRecord] = field(default_factory=list)
    last_good: Optional[int] = None  # slot index whose MP4 (slots/slot-NNNNN.mp4) a filler re-airs
    ended: bool = False
    inserts: list[dict] = field(default_factory=list)  # live inserts (live.InsertRecord), in request order
    program: Optional[dict] = None  # a PATCHed ticker / lower third in force (program_text.py); None: none

    def save(self, folder: Path) -> None:
        """Write to a temporary, fsync, rename: a reader (or a restart after kill -9) sees old or new."""
        folder = Path(folder)
        temp = folder / f".{STATE_NAME}.{secrets.token_hex(4)}.tmp"
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, folder / STATE_NAME)

    @classmethod
    def load(cls, folder: Path) -> Optional[ChannelState]:
        path = Path(folder) / STATE_NAME
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        slots = [SlotRecord(**{**s, "attempts": [Attempt(**a) for a in s["attempts"]]}) for s in data.pop("slots")]
        epochs = [Epoch(**e) for e in data.pop("epochs")]
        return cls(**data, slots=slots, epochs=epochs)

    def record(self, index: int) -> Optional[SlotRecord]:
        return self.slots[index] if 0 <= index < len(self.slots) else None


def iso(when: Optional[datetime]) -> Optional[str]:
    return None if when is None else when.isoformat(timespec="milliseconds")


def parse_iso(text: Optional[str]) -> Optional[datetime]:
    return None if text is None else datetime.fromisoformat(text)
