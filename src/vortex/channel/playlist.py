"""The channel's HLS media playlist (``index.m3u8``): a dataclass, its text form, and an atomic write.

The playlist is an EVENT playlist (RFC 8216 §4.3.3.5): segments are only ever appended, so a
player that joined late can still seek back, and a restart after a crash can trust that every
listed segment is final. Each segment carries its exact duration (``#EXTINF`` to the
microsecond: frames / fps) and its air time (``#EXT-X-PROGRAM-DATE-TIME``, ISO 8601 with
milliseconds and the UTC offset), and ``#EXT-X-DISCONTINUITY`` marks where the encoder truly
restarted (after a crash). ``#EXT-X-ENDLIST`` closes a finished stream.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

PLAYLIST_NAME = "index.m3u8"
VERSION = 3  # EXTINF as decimal seconds needs version 3; nothing here needs more
_SEGMENT_NUMBER = re.compile(r"seg-(\d+)\.ts$")


@dataclass(frozen=True)
class PlaylistSegment:
    uri: str  # relative to the playlist: "seg-00001.ts"
    duration_sec: float  # exact: the segment's frames / fps
    program_date_time: datetime  # air time of the segment's first frame (timezone-aware)
    discontinuity: bool = False  # the encoder restarted before this segment

    @property
    def number(self) -> int:
        """The number in the file name (``seg-00012.ts`` → 12)."""
        match = _SEGMENT_NUMBER.search(self.uri)
        if match is None:
            raise ValueError(f"segment URI {self.uri!r} is not named seg-NNNNN.ts")
        return int(match.group(1))


@dataclass(frozen=True)
class MediaPlaylist:
    target_duration: int  # whole seconds, ≥ every EXTINF rounded (RFC 8216 §4.3.3.1)
    segments: tuple[PlaylistSegment, ...] = field(default_factory=tuple)
    media_sequence: int = 0
    ended: bool = False

    def with_segment(self, segment: PlaylistSegment) -> MediaPlaylist:
        return replace(self, segments=self.segments + (segment,))

    def render(self) -> str:
        lines = [
            "#EXTM3U",
            f"#EXT-X-VERSION:{VERSION}",
            f"#EXT-X-TARGETDURATION:{self.target_duration}",
            f"#EXT-X-MEDIA-SEQUENCE:{self.media_sequence}",
            "#EXT-X-PLAYLIST-TYPE:EVENT",
            "#EXT-X-INDEPENDENT-SEGMENTS",  # every segment starts with an IDR frame
        ]
        for seg in self.segments:
            if seg.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{format_date_time(seg.program_date_time)}")
            lines.append(f"#EXTINF:{seg.duration_sec:.6f},")
            lines.append(seg.uri)
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"


def format_date_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"program date-time {moment!r} has no timezone: pass an aware datetime (e.g. UTC)")
    return moment.isoformat(timespec="milliseconds")


def target_duration_for(segment_seconds: float) -> int:
    # EXTINF rounded to the nearest integer must not exceed it; ceil also covers 2.5 s segments
    return max(1, math.ceil(segment_seconds - 1e-9))


def parse_playlist(text: str, source: str = PLAYLIST_NAME) -> MediaPlaylist:
    """Read a playlist this module wrote; anything it does not understand is an error naming the line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ValueError(f"{source}: not an HLS playlist (first line must be #EXTM3U)")
    target, sequence, ended = None, 0, False
    segments: list[PlaylistSegment] = []
    duration: float | None = None
    pdt: datetime | None = None
    discontinuity = False
    for number, line in enumerate(lines[1:], start=2):
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-TARGETDURATION":
            target = int(value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            sequence = int(value)
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            pdt = datetime.fromisoformat(value)
        elif tag == "#EXTINF":
            duration = float(value.split(",", 1)[0])
        elif tag == "#EXT-X-ENDLIST":
            ended = True
        elif line.startswith("#"):
            continue  # VERSION, PLAYLIST-TYPE, INDEPENDENT-SEGMENTS: fixed by render()
        else:
            if duration is None or pdt is None:
                raise ValueError(f"{source} line {number}: segment {line!r} lacks #EXTINF or #EXT-X-PROGRAM-DATE-TIME")
            segments.append(PlaylistSegment(line, duration, pdt, discontinuity))
            duration, pdt, discontinuity = None, None, False
    if target is None:
        raise ValueError(f"{source}: no #EXT-X-TARGETDURATION")
    return MediaPlaylist(target_duration=target, segments=tuple(segments), media_sequence=sequence, ended=ended)


def read_playlist(folder: Path) -> MediaPlaylist:
    path = Path(folder) / PLAYLIST_NAME
    return parse_playlist(path.read_text(encoding="utf-8"), str(path))


def write_playlist(folder: Path, playlist: MediaPlaylist) -> Path:
    """Write ``index.m3u8`` atomically: a reader sees the old list or the new one, never half of it."""
    path = Path(folder) / PLAYLIST_NAME
    temp = path.with_name(f".{PLAYLIST_NAME}.{secrets.token_hex(4)}.tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(playlist.render())
        f.flush()
        os.fsync(f.fileno())  # the rename must not overtake the data after a power cut
    os.replace(temp, path)
    return path
