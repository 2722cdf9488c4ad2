"""Slot and ad-break markers: ``EXT-X-DATERANGE`` tags (RFC 8216bis §4.4.5.1) and their SCTE-35.

Every item a channel airs (a slot, a live insert, a filler, a break) is one date range. A live
playlist is only ever appended to, so a range is written twice, with the same ID:

- when the item's first frame is published: ``ID``, ``CLASS``, ``START-DATE`` (its first frame's
  ``EXT-X-PROGRAM-DATE-TIME``, to the millisecond), ``PLANNED-DURATION`` and the ``X-`` attributes
  (``X-KIND`` slot | insert | filler | break, ``X-SLOT-ID``, ``X-RECIPE-DIGEST``); a break also
  carries ``SCTE35-OUT`` (a splice_insert, out of network, with its ``break_duration``);
- once it has ended (at the next item's first frame, or at the end of the stream): the same ID,
  CLASS and START-DATE, ``DURATION`` (what aired: a slot cut by an insert is shorter than planned)
  and, for a break, ``SCTE35-IN`` (the splice_insert that returns to the network).

The RFC allows it: tags with the same ID describe one range, and an attribute that appears in both
must have the same value. Server-side ad insertion (AWS MediaTailor and others) reads the
SCTE35-OUT / SCTE35-IN pair and replaces the break's segments.

This module only formats and reads tag text (threefive encodes the SCTE-35); the channel decides
where the tags go (vortex.channel.marking).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Optional

KINDS = ("slot", "insert", "filler", "break")
CLASS_PREFIX = "com.vortex."  # reverse-DNS, as the RFC asks of a CLASS: com.vortex.slot, com.vortex.break, ...
TAG = "#EXT-X-DATERANGE:"
SCTE35_PROGRAM_ID = 1  # unique_program_id of the channel's one program
# RFC 8216bis §4.2 attribute-list grammar: NAME=value, value a quoted-string (no '"', no CR/LF) or an
# unquoted token (a decimal, hexadecimal-sequence, enumerated string) without ',' or '"'.
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"\r\n]*"|[^",\r\n]*)(?:,|$)')
_QUOTED_SAFE = re.compile(r'^[^"\r\n]*$')


@dataclass(frozen=True)
class Marker:
    """One aired item's date range."""

    id: str  # unique in the playlist: "slot-12", "insert-ab12cd34"
    kind: str  # one of KINDS
    start: datetime  # its first frame's program date-time (timezone-aware)
    planned_sec: float  # its scheduled duration
    slot_id: str  # the channel slot index, or the insert's id
    recipe_digest: Optional[str] = None  # sha256 of the recipe's canonical JSON; None: a break
    extra: tuple[tuple[str, str], ...] = ()  # more X- attributes (quoted strings), e.g. (("X-FILLER-OF", "3"),)
    scte35_event_id: Optional[int] = None  # a break's splice_event_id (32 bits)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"marker kind {self.kind!r}: allowed {', '.join(KINDS)}")
        if self.start.tzinfo is None:
            raise ValueError(f"marker {self.id}: start {self.start!r} has no timezone")
        for name, value in (("ID", self.id), ("X-SLOT-ID", self.slot_id), *self.extra):
            if not _QUOTED_SAFE.match(value):
                raise ValueError(f"marker {self.id!r}: {name} {value!r} may not hold '\"' or a line break")
        if self.kind == "break" and self.scte35_event_id is None:
            raise ValueError(f"marker {self.id}: a break needs its scte35_event_id")


def format_date(moment: datetime) -> str:
    """The same text as the playlist's EXT-X-PROGRAM-DATE-TIME (ISO 8601, milliseconds, the UTC offset)."""
    return moment.isoformat(timespec="milliseconds")


def open_tag(marker: Marker) -> str:
    """The tag written before the item's first segment: PLANNED-DURATION (and a break's SCTE35-OUT)."""
    attrs = _common(marker) + [("PLANNED-DURATION", f"{marker.planned_sec:.3f}")] + _x(marker)
    if marker.kind == "break":
        attrs.append(("SCTE35-OUT", splice_insert(marker.scte35_event_id, out=True, duration_sec=marker.planned_sec)))
    return _tag(attrs)


def close_tag(marker: Marker, duration_sec: float) -> str:
    """The tag written once the item has ended: DURATION (what aired) and a break's SCTE35-IN."""
    if duration_sec < 0:
        raise ValueError(f"marker {marker.id}: duration {duration_sec} < 0")
    attrs = _common(marker) + [("DURATION", f"{duration_sec:.3f}")]
    if marker.kind == "break":
        attrs.append(("SCTE35-IN", splice_insert(marker.scte35_event_id, out=False)))
    return _tag(attrs)


def splice_insert(event_id: int, *, out: bool, duration_sec: Optional[float] = None) -> str:
    """A SCTE-35 splice_info_section holding a splice_insert, as the RFC's hexadecimal-sequence (0x + A-F).

    ``out``: out of network (the break starts), with ``break_duration`` (90 kHz ticks) and
    auto-return; else the return to the network. Immediate (no pts_time): the DATERANGE's START-DATE
    says where it applies.
    """
    from threefive import Cue, SpliceInsert

    if not 0 <= event_id < 2 ** 32:
        raise ValueError(f"splice_event_id {event_id} does not fit 32 bits")
    command = SpliceInsert()
    command.splice_event_id = event_id
    command.splice_event_cancel_indicator = False
    command.out_of_network_indicator = out
    command.program_splice_flag = True
    command.splice_immediate_flag = True
    command.event_id_compliance_flag = True
    command.time_specified_flag = False
    command.duration_flag = out
    if out:
        if duration_sec is None or duration_sec <= 0:
            raise ValueError(f"splice_event_id {event_id}: a splice out needs its break duration > 0")
        command.break_auto_return = True
        command.break_duration = round(duration_sec * 90000) / 90000  # the 90 kHz clock it is written in
    command.unique_program_id = SCTE35_PROGRAM_ID
    command.avail_num, command.avails_expected = 0, 0
    cue = Cue()
    cue.command = command
    cue.encode()
    return "0x" + cue.hex()[2:].upper()  # hexadecimal-sequence: [0-9A-F] after the 0x (RFC 8216 §4.2)


def attributes(line: str) -> dict[str, str]:
    """A DATERANGE line's attributes, quoted values unquoted (an unquoted value as written)."""
    if not line.startswith(TAG):
        raise ValueError(f"not an EXT-X-DATERANGE tag: {line[:80]!r}")
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTRIBUTE.findall(line[len(TAG):])}


def unclosed(lines) -> list[dict[str, str]]:
    """The ranges opened in ``lines`` (DATERANGE tags in playlist order) that no tag has given a
    DURATION: what a run that stopped (a crash, a takeover) left open. Each: the opening tag's attributes."""
    opened: dict[str, dict[str, str]] = {}
    closed: set[str] = set()
    for line in lines:
        a = attributes(line)
        if "DURATION" in a or "END-DATE" in a:
            closed.add(a["ID"])
        elif a.get("ID") and a["ID"] not in opened:
            opened[a["ID"]] = a
    return [a for i, a in opened.items() if i not in closed]


def close_recovered(opening: dict[str, str], duration_sec: float) -> str:
    """The closing tag of a range a stopped run left open (``unclosed``), from its opening tag's attributes."""
    attrs = [(k, _quote(opening[k])) for k in ("ID", "CLASS", "START-DATE") if k in opening]
    attrs.append(("DURATION", f"{max(0.0, duration_sec):.3f}"))
    if "SCTE35-OUT" in opening:
        from threefive import Cue

        cue = Cue(opening["SCTE35-OUT"])
        cue.decode()
        attrs.append(("SCTE35-IN", splice_insert(int(cue.command.splice_event_id), out=False)))
    return _tag(attrs)


def _common(marker: Marker) -> list[tuple[str, str]]:
    return [("ID", _quote(marker.id)), ("CLASS", _quote(CLASS_PREFIX + marker.kind)),
            ("START-DATE", _quote(format_date(marker.start)))]


def _x(marker: Marker) -> list[tuple[str, str]]:
    attrs = [("X-KIND", _quote(marker.kind)), ("X-SLOT-ID", _quote(marker.slot_id))]
    if marker.recipe_digest is not None:
        attrs.append(("X-RECIPE-DIGEST", _quote(marker.recipe_digest)))
    return attrs + [(k, _quote(v)) for k, v in marker.extra]


def _quote(value: str) -> str:
    return f'"{value}"'


def _tag(attrs: list[tuple[str, str]]) -> str:
    return TAG + ",".join(f"{k}={v}" for k, v in attrs)
