"""Put the channel's parts, segments and init segment on disk, and list them: always in that order.

Every file is written under a temporary name (``.NAME.tmp``), fsynced and renamed before the
playlist names it, and the playlist itself is replaced atomically (playlist.py), so a reader (a
player, ``vortex serve``, a restart after kill -9) never sees a listed name without its complete
bytes. Names never get new bytes once listed: ``part-00012.3.m4s`` (part 3 of segment 12),
``seg-00012.m4s`` (the concatenation of its parts: one moof+mdat per part), ``init-<hash>.mp4``
(named by its content, so a restart whose encoder makes the same init reuses it, and one that
makes another init writes a new file and a new EXT-X-MAP).

Part files are removed once their tags left the playlist and clients had three more target
durations to fetch them (RFC 8216bis §6.2.2); the segment files keep the same media for good.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Optional

from . import fmp4
from .cutter import CutPart
from .playlist import PART_WINDOW_TARGETS, MediaPlaylist, PlaylistPart, PlaylistSegment, PlaylistText, write_playlist

TEMP = re.compile(r"^\..*\.tmp$")
SEGMENT = re.compile(r"^seg-(\d+)\.(?:ts|m4s)$")
PART = re.compile(r"^part-(\d+)\.(\d+)\.m4s$")
INIT = re.compile(r"^init-[0-9a-f]{8}\.mp4$")


@dataclass(frozen=True)
class PublishedPart:
    """What ``on_part`` hears right after a part was listed."""

    uri: str
    msn: int  # media sequence number of its segment
    index: int  # its index within the segment
    start_frame: int
    end_frame: int
    independent: bool


def write_atomic(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before any name points at them
    os.replace(temp, path)


class Publisher:
    """Writes one run of the stream into ``folder`` and keeps ``playlist`` in step with the files."""

    def __init__(self, folder: Path, playlist: MediaPlaylist, *, fps: int, sample_rate: int, width: int, height: int,
                 audio_bitrate: int, segment_seconds: float, next_number: int, discontinuity: bool,
                 pdt_of: Callable[[int], datetime], on_part: Optional[Callable[[PublishedPart], None]] = None,
                 on_segment: Optional[Callable[[PlaylistSegment], None]] = None) -> None:
        if fmp4.VIDEO_TIMESCALE % fps:
            raise ValueError(f"fps {fps} does not divide the 90 kHz video clock: use 24, 25, 30, 50 or 60")
        self.folder, self.playlist = folder, playlist
        self.fps, self.sample_rate, self.width, self.height = fps, sample_rate, width, height
        self._tick = fmp4.VIDEO_TIMESCALE // fps
        self._audio_bitrate = audio_bitrate
        self._number, self._index, self._discontinuity = next_number, 0, discontinuity
        self._pdt_of, self._on_part, self._on_segment = pdt_of, on_part, on_segment
        self._map: Optional[str] = None  # init segment of this run, written with its first part
        self._segment_bytes: list[bytes] = []
        self._segment_start: Optional[int] = None
        # Part files of the segments whose parts may still be fetched: listed, or unlisted < 3 target durations.
        # Counted in seconds, not segments: an item's first frame starts a segment (channel/marking.py),
        # so segments may be shorter than segment_seconds (16 s: 8 segments of 2 s, as before).
        self._keep_seconds = 2 * PART_WINDOW_TARGETS * playlist.target_duration + 2 * segment_seconds
        self._listed_seconds = 0.0  # the end of the last listed segment, on the playlist's timeline
        self._parts_on_disk: deque[tuple[float, list[str]]] = deque()  # (its segment's end, its part files)
        for s in playlist.segments:
            self._listed_seconds += s.duration_sec
            if s.parts:
                self._parts_on_disk.append((self._listed_seconds, [p.uri for p in s.parts]))
        self.frames_published: Optional[int] = None
        self._text = PlaylistText()
        self._ranges: list[tuple[int, str]] = []  # (frame, EXT-X-DATERANGE line) waiting for their segment

    def add_daterange(self, frame: int, line: str) -> None:
        """List ``line`` before the segment that starts at ``frame`` (or, at the end, after the last one)."""
        self._ranges.append((frame, line))

    def publish(self, part: CutPart) -> None:
        if part.segment_start != (self._index == 0):
            raise RuntimeError(f"part at frame {part.start}: segment start {part.segment_start}, "
                               f"but {self._index} parts of segment {self._number} are out")
        if self._map is None:
            self._map = self._write_init(part)
        data = self._fragment(part)
        uri = f"part-{self._number:05d}.{self._index}.m4s"
        write_atomic(self.folder / uri, data)
        self._segment_bytes.append(data)
        if self._segment_start is None:
            self._segment_start = part.start
        listed = PlaylistPart(uri, (part.end - part.start) / self.fps, part.segment_start)
        msn, index = self.playlist.next_msn, self._index
        hint = f"part-{self._number + 1:05d}.0.m4s" if part.segment_end else f"part-{self._number:05d}.{index + 1}.m4s"
        ranges = ()
        if part.segment_start:
            ranges = tuple(line for frame, line in self._ranges if frame <= part.start)
            self._ranges = [(frame, line) for frame, line in self._ranges if frame > part.start]
        playlist = self.playlist.with_part(listed, program_date_time=self._pdt_of(self._segment_start),
                                           discontinuity=self._discontinuity, map_uri=self._map, hint=hint,
                                           dateranges=ranges)
        segment = None
        if part.segment_end:
            segment = self._close_segment(playlist, part.end)
            playlist = playlist.with_segment(segment)
        else:
            self._index += 1
        self.playlist = playlist
        write_playlist(self.folder, playlist, self._text)
        self.frames_published = part.end
        if self._on_part is not None:
            self._on_part(PublishedPart(uri, msn, index, part.start, part.end, part.segment_start))
        if segment is not None and self._on_segment is not None:
            self._on_segment(segment)

    def finish(self, *, ended: bool) -> MediaPlaylist:
        """The run is over: no part will be hinted any more; ``ended`` adds ``#EXT-X-ENDLIST``."""
        ranges = self.playlist.dateranges + tuple(line for _, line in self._ranges)  # ranges closed at the end
        self._ranges = []
        self.playlist = replace(self.playlist, preload_hint=None, ended=ended, dateranges=ranges)
        write_playlist(self.folder, self.playlist, self._text)
        return self.playlist

    # -- internals -------------------------------------------------------------------------------

    def _close_segment(self, playlist: MediaPlaylist, end: int) -> PlaylistSegment:
        uri = f"seg-{self._number:05d}.m4s"
        write_atomic(self.folder / uri, b"".join(self._segment_bytes))
        opened = playlist.open
        segment = PlaylistSegment(uri, (end - self._segment_start) / self.fps, opened.program_date_time,
                                  opened.discontinuity, opened.map_uri, opened.parts, opened.dateranges)
        self._listed_seconds += segment.duration_sec
        self._parts_on_disk.append((self._listed_seconds, [p.uri for p in opened.parts]))
        while self._listed_seconds - self._parts_on_disk[0][0] >= self._keep_seconds - 1e-6:
            for old in self._parts_on_disk.popleft()[1]:
                (self.folder / old).unlink(missing_ok=True)
        self._segment_bytes, self._segment_start = [], None
        self._number, self._index, self._discontinuity = self._number + 1, 0, False
        return segment

    def _write_init(self, part: CutPart) -> str:
        first = part.video[0] if part.video else None
        sets = fmp4.parameter_sets(first.data) if first is not None and first.key else None
        if sets is None:
            raise RuntimeError(f"the run's first part (frame {part.start}) does not open with an IDR carrying SPS/PPS")
        data = fmp4.init_segment(width=self.width, height=self.height, sps=sets[0], pps=sets[1],
                                 sample_rate=self.sample_rate, audio_bitrate=self._audio_bitrate)
        name = f"init-{hashlib.sha256(data).hexdigest()[:8]}.mp4"
        if not (self.folder / name).is_file():
            write_atomic(self.folder / name, data)
        return name

    def _fragment(self, part: CutPart) -> bytes:
        tick = self._tick
        video = [fmp4.Sample(fmp4.avcc_sample(c.data), c.duration * tick, c.key, (c.pts - c.dts) * tick)
                 for c in part.video]
        audio = [fmp4.Sample(c.data, c.duration) for c in part.audio]
        # Decode times run 1 s late (like MPEG-TS's shift before): the AAC priming frame at sample
        # -1024 stays positive, as tfdt must.
        video_time = ((part.video[0].dts if part.video else part.start) + self.fps) * tick
        audio_time = (part.audio[0].pts if part.audio else 0) + self.sample_rate
        sequence = ((self._number << 8) + self._index + 1) & 0xFFFFFFFF  # increasing, as mfhd wants
        return fmp4.fragment(sequence, video, video_time, audio, audio_time)


def recover(folder: Path, old: MediaPlaylist) -> tuple[MediaPlaylist, int]:
    """After a crash (or a close): the playlist to continue and the next segment number.

    A segment that was open (some of its parts listed) is completed from exactly those parts, so
    nothing listed is lost or rewritten; files the playlist does not name and that are newer than
    what it lists (renamed just before the crash) and temporaries are removed.
    """
    listed = {s.uri for s in old.segments}
    open_parts = old.open.parts if old.open is not None else ()
    needed = listed | {p.uri for p in open_parts} | {s.map_uri for s in old.segments if s.map_uri}
    if old.open is not None and old.open.map_uri:
        needed.add(old.open.map_uri)
    missing = sorted(uri for uri in needed if not (folder / uri).is_file())
    if missing:
        raise FileNotFoundError(f"cannot resume {folder}: listed files are missing: {', '.join(missing)}")
    last = max((s.number for s in old.segments), default=0)
    playlist = old
    if old.open is not None:
        number = int(PART.match(open_parts[0].uri).group(1))
        uri = f"seg-{number:05d}.m4s"
        write_atomic(folder / uri, b"".join((folder / p.uri).read_bytes() for p in open_parts))
        o = old.open
        playlist = old.with_segment(PlaylistSegment(uri, o.duration_sec, o.program_date_time, o.discontinuity,
                                                    o.map_uri, o.parts, o.dateranges))
        listed.add(uri)
        last = max(last, number)
    keep_parts = {p.uri for s in playlist.segments for p in s.parts}
    for entry in folder.iterdir():
        name = entry.name
        segment, part = SEGMENT.match(name), PART.match(name)
        stale = (TEMP.match(name) or (segment and name not in listed and int(segment.group(1)) >= last)
                 or (part and name not in keep_parts and int(part.group(1)) >= last))
        if stale and entry.is_file():
            entry.unlink()
    return replace(playlist, preload_hint=None, ended=False), last + 1
