"""The channel's HLS media playlist (``index.m3u8``): dataclasses, their text form, and an atomic write.

The playlist is an EVENT playlist (RFC 8216 §4.3.3.5): segments are only ever appended, so a
player that joined late can still seek back, and a restart after a crash can trust that every
listed segment is final. Each segment carries its exact duration (``#EXTINF`` to the
microsecond: frames / fps) and its air time (``#EXT-X-PROGRAM-DATE-TIME``, ISO 8601 with
milliseconds and the UTC offset), and ``#EXT-X-DISCONTINUITY`` marks where the encoder truly
restarted (after a crash). ``#EXT-X-ENDLIST`` closes a finished stream.

Low-Latency HLS (RFC 8216bis §4.4.4.9, §4.4.5.3, §6.2.2): with ``part_target`` set the playlist
also lists the parts (``#EXT-X-PART``) of the segments near its end and of the segment being made
(``open``), declares ``#EXT-X-PART-INF`` and ``#EXT-X-SERVER-CONTROL`` (blocking reload, and
PART-HOLD-BACK = 4 part targets: the spec's floor is 2, 3 its recommendation), and hints the
next part (``#EXT-X-PRELOAD-HINT``). Parts are listed for the segments that end within three
target durations of the playlist's end (§6.2.2: "SHOULD be removed ... after they are greater than
three Target Durations from the end"); an EVENT playlist may drop only those tags. ``#EXT-X-MAP``
names the fMP4 init segment, again wherever it changes (after a restart).
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Optional

PLAYLIST_NAME = "index.m3u8"
VERSION = 6  # EXT-X-MAP in a media playlist needs version 6 (RFC 8216 §7); the LL-HLS tags need none
# PART-HOLD-BACK in part targets (the spec: at least 2, "SHOULD" 3). It is the viewer's buffer: the
# player sits that far behind the newest part. With 3 (1.5 s) hls.js played 1.2 s behind the wall
# clock, but on the loaded 2-core box (load 7.8) a filler decided 0.25 s after its air time froze the
# edge long enough for one stall; 4 (2 s) buys half a second more for about as much latency.
PART_HOLD_BACK_PARTS = 4
PART_WINDOW_TARGETS = 3  # parts stay listed while their segment ends within 3 target durations of the end
_SEGMENT_NUMBER = re.compile(r"seg-(\d+)\.(?:ts|m4s)$")
_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class PlaylistPart:
    uri: str  # "part-00012.3.m4s": part 3 of segment 12
    duration_sec: float  # exact: the part's frames / fps
    independent: bool = False  # starts with a keyframe (INDEPENDENT=YES)


@dataclass(frozen=True)
class PlaylistSegment:
    uri: str  # relative to the playlist: "seg-00001.m4s" (or "seg-00001.ts" from before LL-HLS)
    duration_sec: float  # exact: the segment's frames / fps
    program_date_time: datetime  # air time of the segment's first frame (timezone-aware)
    discontinuity: bool = False  # the encoder restarted before this segment
    map_uri: Optional[str] = None  # the fMP4 init segment (EXT-X-MAP) it decodes with; None: MPEG-TS
    # Listed while near the live edge only; not part of a segment's identity.
    parts: tuple[PlaylistPart, ...] = field(default=(), compare=False)
    # EXT-X-DATERANGE lines written just before it (vortex.program.markers), kept verbatim: never rewritten.
    dateranges: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        """The number in the file name (``seg-00012.m4s`` → 12)."""
        match = _SEGMENT_NUMBER.search(self.uri)
        if match is None:
            raise ValueError(f"segment URI {self.uri!r} is not named seg-NNNNN.m4s (or .ts)")
        return int(match.group(1))


@dataclass(frozen=True)
class OpenSegment:
    """The segment being made: its parts so far (no URI of its own until it is complete)."""

    program_date_time: datetime
    parts: tuple[PlaylistPart, ...]
    discontinuity: bool = False
    map_uri: Optional[str] = None
    dateranges: tuple[str, ...] = ()  # EXT-X-DATERANGE lines before it (PlaylistSegment.dateranges)

    @property
    def duration_sec(self) -> float:
        return sum(p.duration_sec for p in self.parts)


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int  # whole seconds, ≥ every EXTINF rounded (RFC 8216 §4.3.3.1)
    segments: tuple[PlaylistSegment, ...] = field(default_factory=tuple)
    media_sequence: int = 0
    ended: bool = False
    part_target: Optional[float] = None  # seconds; None: plain HLS, no LL-HLS tags
    open: Optional[OpenSegment] = None
    preload_hint: Optional[str] = None  # URI of the next part
    # EXT-X-DATERANGE lines after the last item (a range closed at the stream's end); the next
    # segment takes them over as its own, so they stay where they are in the text.
    dateranges: tuple[str, ...] = ()

    def with_segment(self, segment: PlaylistSegment) -> MediaPlaylist:
        return replace(self, segments=_trim_parts(self.segments + (segment,), self.target_duration), open=None)

    def with_part(self, part: PlaylistPart, *, program_date_time: datetime, discontinuity: bool,
                  map_uri: Optional[str], hint: Optional[str], dateranges: tuple[str, ...] = ()) -> MediaPlaylist:
        """Add ``part`` to the open segment (opening one with these attributes if there is none; it
        takes over the playlist's trailing DATERANGE lines, then ``dateranges``)."""
        if self.open is not None:
            return replace(self, open=replace(self.open, parts=self.open.parts + (part,)), preload_hint=hint)
        opened = OpenSegment(program_date_time, (part,), discontinuity, map_uri, self.dateranges + tuple(dateranges))
        return replace(self, open=opened, preload_hint=hint, dateranges=())

    @property
    def next_msn(self) -> int:
        """The media sequence number of the segment being made (or of the next one)."""
        return self.media_sequence + len(self.segments)

    def listed_frames(self, fps: int) -> int:
        """Frames the playlist lists: every segment's and the open segment's parts."""
        parts = self.open.parts if self.open is not None else ()
        return sum(round(s.duration_sec * fps) for s in self.segments) + sum(round(p.duration_sec * fps) for p in parts)

    def has_part(self, msn: int, part: int) -> bool:
        """Whether part ``part`` of segment ``msn`` (or anything after it) is listed (RFC 8216bis §6.2.5.2)."""
        if msn < self.media_sequence:
            return True
        if msn < self.next_msn:
            parts = self.segments[msn - self.media_sequence].parts
            # A part index past the segment's last part asks for part 0 of the next segment (§6.2.5.2).
            return not parts or part < len(parts) or self.has_part(msn + 1, 0)
        return msn == self.next_msn and self.open is not None and part < len(self.open.parts)

    def render(self) -> str:
        return PlaylistText().render(self)


class PlaylistText:
    """Renders the playlists of one stream, one after another, keeping the lines of the segments
    whose parts are no longer listed: they never change again (an EVENT playlist only appends), so
    each is formatted once. A day of 2 s segments (43,200) took 160-230 ms to render whole on the
    2-core box; the writer renders after every 0.5 s part."""

    def __init__(self) -> None:
        self._frozen, self._text, self._map = 0, "", None  # segments rendered, their lines, the MAP in force

    def render(self, playlist: MediaPlaylist) -> str:
        segments = playlist.segments
        if len(segments) < self._frozen:  # not the stream rendered so far: start over
            self._frozen, self._text, self._map = 0, "", None
        # Segments only ever lose their parts, oldest first: look from the last settled one on.
        settled = next((i for i in range(self._frozen, len(segments)) if segments[i].parts), len(segments))
        if settled > self._frozen:
            lines, self._map = _item_lines(segments[self._frozen:settled], self._map)
            self._text += "".join(line + "\n" for line in lines)
            self._frozen = settled
        items: list = list(segments[settled:]) + ([playlist.open] if playlist.open is not None else [])
        tail, _ = _item_lines(items, self._map)
        tail += playlist.dateranges
        if playlist.preload_hint is not None and not playlist.ended:
            tail.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{playlist.preload_hint}"')
        if playlist.ended:
            tail.append("#EXT-X-ENDLIST")
        return "\n".join(_header(playlist)) + "\n" + self._text + "".join(line + "\n" for line in tail)


def _header(p: MediaPlaylist) -> list[str]:
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{p.target_duration}"]
    if p.part_target is not None:
        lines.append(f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={PART_HOLD_BACK_PARTS * p.part_target:.3f}")
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={p.part_target:.3f}")
    return lines + [
        f"#EXT-X-MEDIA-SEQUENCE:{p.media_sequence}",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",  # every segment starts with an IDR frame
    ]


def _item_lines(items, current_map: Optional[str]) -> tuple[list[str], Optional[str]]:
    """The lines of segments (and of an open segment), and the EXT-X-MAP in force after them."""
    lines = []
    for item in items:
        lines += item.dateranges
        if item.discontinuity:
            lines.append("#EXT-X-DISCONTINUITY")
        if item.map_uri is not None and item.map_uri != current_map:
            lines.append(f'#EXT-X-MAP:URI="{item.map_uri}"')
            current_map = item.map_uri
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(item.program_date_time)}")
        for part in item.parts:
            lines.append(f'#EXT-X-PART:DURATION={part.duration_sec:.5f},URI="{part.uri}"'
                         + (",INDEPENDENT=YES" if part.independent else ""))
        if isinstance(item, PlaylistSegment):
            lines.append(f"#EXTINF:{item.duration_sec:.6f},")
            lines.append(item.uri)
    return lines, current_map


def _trim_parts(segments: tuple[PlaylistSegment, ...], target: int) -> tuple[PlaylistSegment, ...]:
    """Drop the part lists of segments that end more than ``PART_WINDOW_TARGETS`` target durations from the end."""
    out, behind = list(segments), 0.0
    for i in range(len(out) - 1, -1, -1):
        if behind > PART_WINDOW_TARGETS * target:
            if not out[i].parts:
                break  # older ones were trimmed before
            out[i] = replace(out[i], parts=())
        behind += out[i].duration_sec
    return tuple(out)


def format_date_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"program date-time {moment!r} has no timezone: pass an aware datetime (e.g. UTC)")
    return moment.isoformat(timespec="milliseconds")


def target_duration_for(segment_seconds: float) -> int:
    # EXTINF rounded to the nearest integer must not exceed it; ceil also covers 2.5 s segments
    return max(1, math.ceil(segment_seconds - 1e-9))


def attributes(value: str) -> dict[str, str]:
    """An attribute list (``DURATION=0.5,URI="x"``) as a dict, quotes removed."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTRIBUTE.findall(value)}


def parse_playlist(text: str, source: str = PLAYLIST_NAME) -> MediaPlaylist:
    """Read a playlist this module wrote; anything it does not understand is an error naming the line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError(f"{source}: not an HLS playlist (first line must be #EXTM3U)")
    target, sequence, ended, part_target, hint = None, 0, False, None, None
    segments: list[PlaylistSegment] = []
    duration: float | None = None
    pdt: datetime | None = None
    discontinuity, map_uri, parts = False, None, []
    ranges: list[str] = []  # EXT-X-DATERANGE lines since the last segment
    for number, line in enumerate(lines[1:], start=2):
        tag, _, value = line.partition(":")
        try:
            if tag == "#EXT-X-TARGETDURATION":
                target = int(value)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                sequence = int(value)
            elif tag == "#EXT-X-PART-INF":
                part_target = float(attributes(value)["PART-TARGET"])
            elif tag == "#EXT-X-DISCONTINUITY":
                discontinuity = True
            elif tag == "#EXT-X-MAP":
                map_uri = attributes(value)["URI"]
            elif tag == "#EXT-X-PROGRAM-DATE-TIME":
                pdt = datetime.fromisoformat(value)
            elif tag == "#EXT-X-PART":
                a = attributes(value)
                parts.append(PlaylistPart(a["URI"], float(a["DURATION"]), a.get("INDEPENDENT") == "YES"))
            elif tag == "#EXT-X-PRELOAD-HINT":
                hint = attributes(value)["URI"]
            elif tag == "#EXTINF":
                duration = float(value.split(",", 1)[0])
            elif tag == "#EXT-X-ENDLIST":
                ended = True
            elif tag == "#EXT-X-DATERANGE":
                ranges.append(line)
            elif line.startswith("#"):
                continue  # VERSION, PLAYLIST-TYPE, INDEPENDENT-SEGMENTS, SERVER-CONTROL: fixed by render()
            else:
                if duration is None or pdt is None:
                    raise ValueError("lacks #EXTINF or #EXT-X-PROGRAM-DATE-TIME")
                segments.append(PlaylistSegment(line, duration, pdt, discontinuity, map_uri, tuple(parts), tuple(ranges)))
                duration, pdt, discontinuity, parts, ranges = None, None, False, [], []
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{source} line {number}: {line[:120]!r}: {exc}") from None
    if target is None:
        raise ValueError(f"{source}: no #EXT-X-TARGETDURATION")
    open_segment = None
    if parts:
        if pdt is None:
            raise ValueError(f"{source}: the parts after the last segment lack #EXT-X-PROGRAM-DATE-TIME")
        open_segment = OpenSegment(pdt, tuple(parts), discontinuity, map_uri, tuple(ranges))
        ranges = []
    return MediaPlaylist(target, tuple(segments), sequence, ended, part_target, open_segment, hint, tuple(ranges))


def read_playlist(folder: Path) -> MediaPlaylist:
    path = Path(folder) / PLAYLIST_NAME
    return parse_playlist(path.read_text(encoding="utf-8"), str(path))


def write_playlist(folder: Path, playlist: MediaPlaylist, text: Optional[PlaylistText] = None) -> Path:
    """Write ``index.m3u8`` atomically: a reader sees the old list or the new one, never half of it.
    ``text`` renders it incrementally (the writer keeps one per stream)."""
    path = Path(folder) / PLAYLIST_NAME
    temp = path.with_name(f".{PLAYLIST_NAME}.{secrets.token_hex(4)}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(playlist.render() if text is None else text.render(playlist))
        f.flush()
        os.fsync(f.fileno())  # the rename must not overtake the data after a power cut
    os.replace(temp, path)
    return path
