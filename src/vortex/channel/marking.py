"""Where the channel's markers go: one EXT-X-DATERANGE range per aired item (vortex.program.markers).

The appender calls ``Marks.begin`` just before an item's first frame goes to the writer (a slot, a
filler, a break, a live insert): the writer starts a segment there (an IDR, so the marker and a
splice fall on a segment boundary, as server-side ad insertion wants), the item's opening tag
(PLANNED-DURATION; a break's SCTE35-OUT) is listed before that segment, and the item before it is
closed in the same place (DURATION: what aired; a break's SCTE35-IN). ``end`` closes the last
item when the run stops; its tag follows the last segment, and a restart's first segment takes it
over where it stands.

A run that was killed (or lost its channel to another node) left its last range open: ``recover``,
called once the writer resumed the playlist, closes each open range with the DURATION the playlist
shows it aired, before the first new segment. Nothing listed is ever rewritten.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

from ..program.markers import Marker, close_recovered, close_tag, open_tag, unclosed

SCTE35_EVENT_SPACE = 2 ** 32  # splice_event_id is 32 bits: a break's is its slot index + 1, wrapped


class Marks:
    """The markers of one appender's run: the item on air (its marker and first frame)."""

    def __init__(self) -> None:
        self._on: Optional[tuple[Marker, int]] = None

    def begin(self, writer: Any, *, kind: str, id: str, planned_sec: float, slot_id: str,
              recipe_digest: Optional[str] = None, extra: tuple[tuple[str, str], ...] = (),
              scte35_event_id: Optional[int] = None) -> Marker:
        """Mark the next frame appended to ``writer`` (an HlsChannelWriter) as the item's first."""
        frame = writer.frames_appended
        marker = Marker(id, kind, writer.air_time_at(frame), planned_sec, slot_id, recipe_digest, extra,
                        scte35_event_id)
        writer.mark(self._closing(writer) + [open_tag(marker)], cut=True)
        self._on = (marker, frame)
        return marker

    def end(self, writer: Any) -> None:
        """The run stops: close the item on air (its tag after the last segment)."""
        lines = self._closing(writer)
        if lines:
            writer.mark(lines, cut=False)

    def recover(self, writer: Any) -> int:
        """After ``HlsChannelWriter.resume``: close the ranges the stopped run left open; how many."""
        playlist = writer.playlist
        if not playlist.segments:
            return 0
        lines = [line for s in playlist.segments for line in s.dateranges] + list(playlist.dateranges)
        last = playlist.segments[-1]
        listed_end = last.program_date_time + timedelta(seconds=last.duration_sec)
        closing = []
        for opening in unclosed(lines):
            start = _parse_date(opening.get("START-DATE"))
            aired = (listed_end - start).total_seconds() if start is not None else 0.0
            closing.append(close_recovered(opening, aired))
        if closing:
            writer.mark(closing, cut=False)  # the first new segment starts the run anyway
        return len(closing)

    def _closing(self, writer: Any) -> list[str]:
        if self._on is None:
            return []
        marker, first = self._on
        self._on = None
        return [close_tag(marker, (writer.frames_appended - first) / writer.fps)]


def slot_fields(record: Any, definition: Any) -> dict:
    """``Marks.begin``'s fields for a schedule item (records.SlotRecord): a slot, a filler or a break."""
    entry = definition.slots[record.position]
    fields = dict(id=f"slot-{record.index}", planned_sec=record.n_frames / definition.fps, slot_id=str(record.index))
    if getattr(entry, "is_break", False):
        return dict(fields, kind="break", scte35_event_id=(record.index + 1) % SCTE35_EVENT_SPACE)
    digest = entry.recipe.sha256()
    if record.decision == "aired":
        return dict(fields, kind="slot", recipe_digest=digest)
    extra = (("X-FILLER", record.decision.partition(":")[2] or record.decision),)
    if record.filler_of is not None:
        extra += (("X-FILLER-OF", str(record.filler_of)),)
    return dict(fields, kind="filler", recipe_digest=digest, extra=extra)  # the recipe it stands in for


def insert_fields(insert: Any, fps: int) -> dict:
    """``Marks.begin``'s fields for a live insert (live.LiveInsert)."""
    extra = (("X-CUT-SLOT", str(insert.record.cut_slot)),) if insert.record.cut_slot is not None else ()
    return dict(kind="insert", id=f"insert-{insert.id}", planned_sec=insert.n_frames / fps, slot_id=insert.id,
                recipe_digest=insert.recipe.sha256(), extra=extra)


def _parse_date(text: Optional[str]):
    from datetime import datetime

    try:
        return None if text is None else datetime.fromisoformat(text)
    except ValueError:
        return None
