"""The channel's captions in HLS: ``master.m3u8`` (the multivariant playlist) and ``subs.m3u8``, a
WebVTT rendition segmented like the media.

``master.m3u8`` names the stream (``EXT-X-STREAM-INF`` with BANDWIDTH: the peak segment bit rate
seen so far, rewritten when a segment beats it by more than PEAK_SLACK; RESOLUTION; CODECS from the
init segment's avcC) and one ``EXT-X-MEDIA:TYPE=SUBTITLES`` rendition. ``subs.m3u8`` lists one
``subs-NNNNN.vtt`` per media segment: the same number, EXTINF, program date-time and
discontinuities (it is rendered from the media playlist itself), written when the media segment is
listed (the writer's ``on_segment``), never rewritten.

Times: each WebVTT segment carries ``X-TIMESTAMP-MAP=MPEGTS:90000,LOCAL:00:00:00.000``. The fMP4
decode time of the stream's global frame F is (F + fps) x 90000 / fps on the 90 kHz clock
(publish.py runs it 1 s late), so MPEGTS 90000 is frame 0 and a cue's time is its global frame /
fps: the same in every segment, so a cue that spans two segments repeats there with identical
times and hls.js shows it once. The map is the same after a restart (the frame count goes on).

Cues come from the slots as they air (``slot``: the slot's first global frame and its cues in slot
time; a later slot, filler or insert cuts the earlier ones at its first frame). ``keep`` (a live insert)
says per cue whether it airs: False (a chunk replaced by the card), True, or None (not judged yet:
left out of this segment, and written in the next one it overlaps once judged).
After a restart the segments the crash left without a WebVTT file (the open one that recovery
closed) get one without cues: the cues of a crashed run are not kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

from ...contracts.captions import Cue
from ...program.captions import webvtt
from .fmp4 import VIDEO_TIMESCALE
from .playlist import PLAYLIST_NAME, PlaylistSegment, PlaylistText
from .publish import write_atomic

MASTER_NAME = "master.m3u8"
SUBS_NAME = "subs.m3u8"
TIMESTAMP_MAP = f"X-TIMESTAMP-MAP=MPEGTS:{VIDEO_TIMESCALE},LOCAL:00:00:00.000"  # frame 0 decodes at 1 s
PEAK_SLACK = 1.1
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC (encoder.py)


@dataclass
class _Aired:
    first_frame: int
    cues: list[Cue]  # in channel seconds (global frame / fps)
    keep: Optional[Callable[[Cue], Optional[bool]]]


def vtt_name(segment: PlaylistSegment) -> str:
    return f"subs-{segment.number:05d}.vtt"


class ChannelSubtitles:
    """The captions of one channel folder; `attach` it to the writer whose `on_segment` it is."""

    def __init__(self, folder: str | Path, fps: int, *, language: str = "en", name: str = "English",
                 enabled: bool = True) -> None:
        self.folder, self.fps, self.language, self.name = Path(folder), fps, language, name
        self.enabled = enabled  # False: the program says `captions: false`; nothing is written
        self._aired: list[_Aired] = []
        self._writer = None
        self._listed_frames = 0
        self._text = PlaylistText()
        self._listed: list[PlaylistSegment] = []  # subs.m3u8's segments, one per media segment, in order
        self._peak = 0
        self._codecs: Optional[str] = None

    def attach(self, writer) -> None:
        """Bind to `writer` (a new or resumed HlsChannelWriter): the segments it already lists that
        have no WebVTT file get one without cues, and both playlists are written."""
        self._writer = writer
        if not self.enabled:
            return
        segments = writer.playlist.segments
        start = 0
        for s in segments:
            frames = round(s.duration_sec * self.fps)
            if not (self.folder / vtt_name(s)).is_file():
                self._write_segment(s, start, start + frames, cues=())
            start += frames
            self._peak = max(self._peak, self._bit_rate(s))
        self._listed_frames = start
        if segments:
            self._write_playlists()

    def slot(self, first_frame: int, cues: Sequence[Cue], keep: Optional[Callable[[Cue], Optional[bool]]] = None) -> None:
        """A slot (or an insert, a filler: no cues) takes the air at global frame `first_frame`."""
        if not self.enabled:
            return
        at = first_frame / self.fps
        for a in self._aired:  # cut what was on air
            a.cues = [replace(c, end=min(c.end, at)) for c in a.cues if c.start < at]
        self._aired = [a for a in self._aired if a.cues]
        shifted = [replace(c, start=c.start + at, end=c.end + at) for c in cues]
        self._aired.append(_Aired(first_frame, shifted, keep))

    def on_segment(self, segment: PlaylistSegment) -> None:
        if not self.enabled:
            return
        start = self._listed_frames
        end = start + round(segment.duration_sec * self.fps)
        self._listed_frames = end
        t0, t1 = start / self.fps, end / self.fps
        cues = sorted((c for a in self._aired for c in a.cues
                       if c.start < t1 and c.end > t0 and (a.keep is None or a.keep(c) is True)),
                      key=lambda c: (c.start, c.end))
        self._write_segment(segment, start, end, cues)
        self._peak = max(self._peak, self._bit_rate(segment))
        self._write_playlists()
        for a in self._aired:  # what has ended is written for good
            a.cues = [c for c in a.cues if c.end > t1]

    def close(self, ended: bool) -> None:
        """The stream stopped (``ended``: for good, as the media playlist's ENDLIST says)."""
        if self.enabled and self._writer is not None and self._writer.playlist.segments:
            self._write_playlists(ended=ended)

    # -- files -----------------------------------------------------------------------------------

    def _write_segment(self, segment: PlaylistSegment, start: int, end: int, cues: Sequence[Cue]) -> None:
        path = self.folder / vtt_name(segment)
        if path.is_file():  # listed files are never rewritten
            return
        write_atomic(path, webvtt(cues, header=TIMESTAMP_MAP).encode("utf-8"))

    def _write_playlists(self, ended: Optional[bool] = None) -> None:
        media = self._writer.playlist
        # Only the new segments are converted (a day of 2 s segments is 43,200): EVENT playlists only append.
        self._listed += [replace(s, uri=vtt_name(s), map_uri=None, parts=()) for s in media.segments[len(self._listed):]]
        subs = replace(media, segments=tuple(self._listed), open=None, part_target=None, preload_hint=None,
                       ended=media.ended if ended is None else ended)
        write_atomic(self.folder / SUBS_NAME, self._text.render(subs).encode("utf-8"))
        codecs = self._codecs or self._read_codecs(media)
        master = self.folder / MASTER_NAME
        if codecs is not None and (not master.is_file() or self._peak > self._stated * PEAK_SLACK or codecs != self._codecs):
            self._codecs, self._stated = codecs, self._peak
            write_atomic(master, master_playlist(self._writer.width, self._writer.height, self.fps, self._peak,
                                                 codecs, self.language, self.name).encode("utf-8"))

    _stated = 0

    def _bit_rate(self, segment: PlaylistSegment) -> int:
        try:
            size = (self.folder / segment.uri).stat().st_size
        except OSError:
            return 0
        return math.ceil(size * 8 / max(segment.duration_sec, 1e-3))

    def _read_codecs(self, media) -> Optional[str]:
        map_uri = next((s.map_uri for s in reversed(media.segments) if s.map_uri), None)
        if map_uri is None:
            return None
        try:
            data = (self.folder / map_uri).read_bytes()
        except OSError:
            return None
        at = data.find(b"avcC")
        if at < 0:
            return None
        profile, compat, level = data[at + 5], data[at + 6], data[at + 7]
        return f"avc1.{profile:02x}{compat:02x}{level:02x},{AUDIO_CODEC}"


def master_playlist(width: int, height: int, fps: int, bandwidth: int, codecs: str, language: str, name: str) -> str:
    """The multivariant playlist: the one stream (index.m3u8) and its subtitle rendition."""
    return "\n".join([
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="{name}",LANGUAGE="{language}",DEFAULT=YES,'
        f'AUTOSELECT=YES,URI="{SUBS_NAME}"',
        f'#EXT-X-STREAM-INF:BANDWIDTH={max(bandwidth, 1)},RESOLUTION={width}x{height},CODECS="{codecs}",'
        f'FRAME-RATE={fps:.3f},SUBTITLES="subs"',
        PLAYLIST_NAME,
    ]) + "\n"


def sidecar_cues(mp4: Path) -> list[Cue]:
    """A made slot's cues, from the sidecar beside its MP4 (or spool): none if it has none."""
    try:
        meta = json.loads(Path(mp4).with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Cue.of(c) for c in meta.get("captions") or ()]
