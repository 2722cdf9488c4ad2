"""Serving a channel folder as Low-Latency HLS: blocking playlist reload, parts, segments, init.

``GET index.m3u8?_HLS_msn=M&_HLS_part=N`` (RFC 8216bis §6.2.5.2) is held until the playlist lists
part N of segment M or anything later (a part index past a segment's last part means part 0 of
the next one), then answered with the whole playlist. ``_HLS_msn`` alone waits for segment M to
be complete. The spec's rules, as served here:

- ``_HLS_part`` without ``_HLS_msn``, or a value that is not a decimal integer: 400;
- M more than two segments past the last one, or N more than the Advance Part Limit (3 / part
  target = 6 parts at 0.5 s) past the last part: 400 at once (the client is confused, not early);
- a playlist with ``#EXT-X-ENDLIST``, or one without parts (a plain HLS folder): directives ignored;
- nothing after three target durations (6 s): 503, which hls.js retries.

The writer is another thread or process and replaces ``index.m3u8`` atomically (rename), so a
waiting request polls the file's identity (inode, size, mtime) every ``POLL_S`` and reads it only
when it changed; one read is shared by every waiting request. Reading 20 ms after the rename at
worst adds 10 ms on average to a viewer's latency, and a stat costs microseconds.

Media: ``init-<hash>.mp4``, ``part-NNNNN.K.m4s``, ``seg-NNNNN.m4s`` (and ``seg-NNNNN.ts`` of
folders from before LL-HLS) and nothing else of the folder. A listed file never changes, so it is
served as immutable. A request for the part the playlist hints (``#EXT-X-PRELOAD-HINT``) that is
not written yet is held until it is (§6.2.6: a hinted resource must be available for request).
The captions (channel/hls/subtitles.py): ``subs-NNNNN.vtt`` (immutable too), and ``master.m3u8`` and
``subs.m3u8``, which change and are served uncached.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from fastapi import HTTPException
from fastapi.responses import FileResponse, Response

from ...channel.hls.subtitles import MASTER_NAME, SUBS_NAME
from ...channel.hls.playlist import PLAYLIST_NAME, attributes

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
POLL_S = 0.02
_MEDIA = re.compile(r"^(?:init-[0-9a-f]{8}\.mp4|part-\d{5,}\.\d{1,3}\.m4s|seg-\d{5,}\.(?:m4s|ts)|subs-\d{5,}\.vtt)$")
_PROVENANCE = re.compile(r"^seg-\d{5,}\.m4s\.prov\.json$")  # a segment's signed manifest (vortex.provenance.stream)
_INTEGER = re.compile(r"^\d{1,12}$")
IMMUTABLE = "public, max-age=86400, immutable"


@dataclass(frozen=True)
class PlaylistState:
    """What blocking reload needs of a playlist, read from its text without parsing every segment
    (a channel's EVENT playlist grows all day: 43,200 segments a day at 2 s)."""

    text: bytes
    target_duration: float
    part_target: Optional[float]
    media_sequence: int
    segments: int
    last_segment_parts: int  # parts listed for the last complete segment (0: none listed)
    open_parts: int  # parts of the segment being made
    hint: Optional[str]
    ended: bool

    @classmethod
    def of(cls, text: bytes) -> PlaylistState:
        head = text[:1024].decode("utf-8", "replace")
        target = float(_tag(head, "#EXT-X-TARGETDURATION") or 0)
        part_inf = _tag(head, "#EXT-X-PART-INF")
        sequence = int(_tag(head, "#EXT-X-MEDIA-SEQUENCE") or 0)
        last = text.rfind(b"#EXTINF:")
        before = text.rfind(b"#EXTINF:", 0, last) if last >= 0 else -1
        tail = text[last:] if last >= 0 else text
        hint = re.search(rb'#EXT-X-PRELOAD-HINT:[^\n]*URI="([^"]+)"', tail)
        return cls(text, target, float(attributes(part_inf)["PART-TARGET"]) if part_inf else None, sequence,
                   text.count(b"#EXTINF:"), text.count(b"#EXT-X-PART:", max(before, 0), max(last, 0)),
                   tail.count(b"#EXT-X-PART:"), hint.group(1).decode() if hint else None, b"#EXT-X-ENDLIST" in tail)

    @property
    def next_msn(self) -> int:
        return self.media_sequence + self.segments

    def has(self, msn: int, part: Optional[int]) -> bool:
        if part is None:
            return msn < self.next_msn  # the whole segment M is listed
        if msn < self.next_msn - 1:
            return True
        if msn == self.next_msn - 1:  # the last complete segment; past its last part: part 0 of the open one
            return not self.last_segment_parts or part < self.last_segment_parts or self.open_parts > 0
        return msn == self.next_msn and part < self.open_parts


def _tag(head: str, tag: str) -> Optional[str]:
    for line in head.splitlines():
        if line.startswith(tag + ":"):
            return line.split(":", 1)[1].strip()
    return None


class _Watch:
    """The latest playlist of one folder, re-read only when its file was replaced."""

    def __init__(self, path: Path) -> None:
        self.path, self._key, self._state = path, None, None

    def state(self) -> Optional[PlaylistState]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._key:
            self._state, self._key = PlaylistState.of(self.path.read_bytes()), key
        return self._state


_watches: dict[Path, _Watch] = {}


def _watch(folder: Path) -> _Watch:
    path = Path(folder) / PLAYLIST_NAME
    watch = _watches.get(path)
    if watch is None:
        watch = _watches[path] = _Watch(path)
    return watch


def _directive(query: Mapping[str, str], name: str) -> Optional[int]:
    value = query.get(name)
    if value is None:
        return None
    if not _INTEGER.match(value):
        raise HTTPException(status_code=400, detail=f"{name} must be a decimal integer, got {value[:40]!r}")
    return int(value)


async def playlist_response(folder: Path, query: Mapping[str, str], not_yet: str) -> Response:
    """The playlist, after blocking per the delivery directives in ``query``; ``not_yet`` is the
    404 message while the channel has published nothing."""
    msn, part = _directive(query, "_HLS_msn"), _directive(query, "_HLS_part")
    if part is not None and msn is None:
        raise HTTPException(status_code=400, detail="_HLS_part needs _HLS_msn (RFC 8216bis §6.2.5.2)")
    watch = _watch(folder)
    state = watch.state()
    if state is None:
        raise HTTPException(status_code=404, detail=not_yet)
    if msn is not None and state.part_target and not state.ended and not state.has(msn, part):
        _check_advance(state, msn, part)
        deadline = time.monotonic() + 3 * state.target_duration
        while not state.has(msn, part):
            if state.ended:
                break  # directives are ignored once the playlist ended
            if time.monotonic() >= deadline:
                raise HTTPException(status_code=503, detail=f"segment {msn} part {part} was not published within "
                                                            f"3 target durations ({3 * state.target_duration:g} s)")
            await asyncio.sleep(POLL_S)
            state = watch.state() or state
    # A live playlist changes with every part: never cached. It is replaced atomically (playlist.py).
    return Response(state.text, media_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache"})


def _check_advance(state: PlaylistState, msn: int, part: Optional[int]) -> None:
    last = state.next_msn if state.open_parts else state.next_msn - 1
    if msn > last + 2:
        raise HTTPException(status_code=400, detail=f"_HLS_msn {msn} is more than 2 segments past the last one ({last})")
    if part is not None:
        limit = 3 / state.part_target if state.part_target < 1 else 3
        per_segment = max(1, round(state.target_duration / state.part_target))  # parts of a full segment
        ahead = (msn - state.next_msn) * per_segment + part - (state.open_parts - 1)
        if ahead > limit:
            raise HTTPException(status_code=400, detail=f"segment {msn} part {part} is {ahead} parts past the last "
                                                        f"one published: more than the advance part limit ({limit:g})")


async def media_response(folder: Path, name: str, missing: str) -> FileResponse:
    """A listed init segment, part or segment (immutable); the hinted part once it exists; else 404."""
    path = Path(folder) / name
    if name in (MASTER_NAME, SUBS_NAME):  # the captions' playlists (channel/hls/subtitles.py): they change
        if not path.is_file():
            raise HTTPException(status_code=404, detail=missing)
        return FileResponse(path, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-cache"})
    if not _MEDIA.match(name) and not _PROVENANCE.match(name):
        raise HTTPException(status_code=404, detail=missing)
    if not path.is_file():
        state = _watch(folder).state()
        if state is None or state.hint != name:
            raise HTTPException(status_code=404, detail=missing)
        deadline = time.monotonic() + 3 * state.target_duration
        while not path.is_file() and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        if not path.is_file():
            raise HTTPException(status_code=404, detail=missing)
    kind = "video/mp2t" if name.endswith(".ts") else "text/vtt" if name.endswith(".vtt") else "video/mp4"
    if _PROVENANCE.match(name):
        return FileResponse(path, media_type="application/json", headers={"Cache-Control": IMMUTABLE})
    return FileResponse(path, media_type=kind, headers={"Cache-Control": IMMUTABLE})
