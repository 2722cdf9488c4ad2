"""The channel's live HLS stream: ONE H.264 encoder and ONE AAC encoder for the whole channel.

Slots are appended one after another (``append_slot``); their frames and PCM go into the same two
encoders, so timestamps and AAC framing run on across slot boundaries: video pts = the global
frame index, audio pts = the global sample index, and the only AAC priming (1024 samples of
encoder delay) is at the very start of the stream (or of a restart). Separately encoded files
glued together would leave a 1024-sample hole and a fresh priming at every boundary.

The packets are cut into MPEG-TS segments of ``segment_seconds`` (48 frames at 24 fps). x264 runs
with a fixed GOP of one segment and no scene-cut keyframes, and each segment's first frame is
forced to an IDR, so every segment starts with a keyframe and decodes on its own. A segment is
complete when the encoder has emitted the next segment's IDR *and* every AAC frame that starts
before the boundary; it is written under ``.seg-NNNNN.ts.tmp``, fsynced, renamed to
``seg-NNNNN.ts``, and only then named in ``index.m3u8`` (itself replaced atomically).

Lag: x264 holds frames for look-ahead and B-frames, so the media of the slot appended last are
published only up to about one segment + the encoder delay behind its end; the rest appears when
the next slot is appended (or at ``close``). A channel therefore appends slots ahead of air time.

Audio is fitted to video, slot by slot: the stream's audio end is kept at the video end (frames x
sample_rate / fps samples), by trimming or padding a slot's waveform tail with silence (at most
half a frame, e.g. 500 samples at 24 fps / 24 kHz). Without this, slots of round(d*fps) frames
and round(d*sr) samples would let audio drift from video by up to half a frame per slot.

MPEG-TS timestamps are 33-bit at 90 kHz and wrap after 26.5 hours; players (hls.js) unwrap them.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from ..media import _AVCOL_SPC_BT709, AUDIO_BITRATE, AUDIO_ENCODER, VIDEO_ENCODER, YUV_INTERPOLATION
from .playlist import (
    PLAYLIST_NAME, MediaPlaylist, PlaylistSegment, read_playlist, target_duration_for, write_playlist,
)

if TYPE_CHECKING:
    from .feed import HlsSlotSink

TS_CLOCK = 90_000  # MPEG-TS timestamps tick at 90 kHz
# Every timestamp is shifted by 1 s so that the AAC priming (pts -1024 samples) and x264's
# B-frame decode times (dts a few frames below 0) stay positive: MPEG-TS has no negative times.
PTS_OFFSET = TS_CLOCK
AAC_FRAME = 1024  # samples an AAC-LC frame holds; also the encoder's delay (priming)
_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_TEMP = re.compile(r"^\..*\.tmp$")
_SEGMENT = re.compile(r"^seg-\d+\.ts$")


@dataclass(frozen=True)
class _Coded:
    """One encoded packet, timed in its encoder's units (frames or samples)."""

    data: bytes
    pts: int
    dts: int
    duration: int
    key: bool


@dataclass(frozen=True)
class AppendedSlot:
    """What ``append_slot`` did with one slot."""

    first_frame: int  # global frame index of the slot's first frame
    n_frames: int
    n_samples: int  # samples fed to the AAC encoder (the waveform, fitted)
    fitted_samples: int  # fed minus given: > 0 silence padded, < 0 tail trimmed
    air_time: datetime  # program date-time of the slot's first frame


class HlsChannelWriter:
    """A channel's live HLS stream in ``folder``: ``index.m3u8`` + ``seg-00001.ts``, ``seg-00002.ts``, …"""

    def __init__(self, folder: str | Path, *, width: int, height: int, fps: int, sample_rate: int = 24000,
                 segment_seconds: float = 2.0, program_start: datetime, crf: int = 20, preset: str = "veryfast",
                 on_segment: Callable[[PlaylistSegment], None] | None = None) -> None:
        self.folder = Path(folder)
        if (self.folder / PLAYLIST_NAME).exists():
            raise FileExistsError(f"{self.folder / PLAYLIST_NAME} exists: continue it with HlsChannelWriter.resume")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._setup(width, height, fps, sample_rate, segment_seconds, crf, preset, on_segment)
        self._start(MediaPlaylist(target_duration=target_duration_for(segment_seconds)), program_start,
                    origin_frame=0, next_number=1, discontinuity=False)

    @classmethod
    def resume(cls, folder: str | Path, *, width: int, height: int, fps: int, sample_rate: int = 24000,
               segment_seconds: float = 2.0, air_time: datetime, crf: int = 20, preset: str = "veryfast",
               on_segment: Callable[[PlaylistSegment], None] | None = None) -> HlsChannelWriter:
        """Continue the stream in ``folder`` after a crash (or a close), from ``air_time`` on.

        Every listed segment stays as it is (never rewritten); temporaries and segments the playlist
        does not name (renamed just before a crash) are removed; numbering continues; the first new
        segment carries ``#EXT-X-DISCONTINUITY`` and the program date-time ``air_time``; a closing
        ``#EXT-X-ENDLIST`` is dropped (the stream goes on). Media timestamps continue after the last
        listed segment, so the restarted encoders' priming stays positive.
        """
        folder = Path(folder)
        if not (folder / PLAYLIST_NAME).is_file():
            raise FileNotFoundError(f"cannot resume: no {PLAYLIST_NAME} in {folder}; start with HlsChannelWriter(...)")
        old = read_playlist(folder)
        listed = {s.uri for s in old.segments}
        missing = [uri for uri in listed if not (folder / uri).is_file()]
        if missing:
            raise FileNotFoundError(f"cannot resume {folder}: listed segments are missing: {', '.join(sorted(missing))}")
        for entry in folder.iterdir():
            if entry.is_file() and (_TEMP.match(entry.name) or (_SEGMENT.match(entry.name) and entry.name not in listed)):
                entry.unlink()
        self = cls.__new__(cls)
        self.folder = folder
        self._setup(width, height, fps, sample_rate, segment_seconds, crf, preset, on_segment)
        origin = sum(round(s.duration_sec * fps) for s in old.segments)
        next_number = max((s.number for s in old.segments), default=0) + 1
        target = max(old.target_duration, target_duration_for(segment_seconds))
        playlist = MediaPlaylist(target, old.segments, old.media_sequence, ended=False)
        self._start(playlist, air_time, origin_frame=origin, next_number=next_number, discontinuity=bool(old.segments))
        return self

    # -- appending slots -------------------------------------------------------------------------

    def append_slot(self, frames: Iterable[np.ndarray] | np.ndarray, waveform: np.ndarray) -> AppendedSlot:
        """Encode one finished slot: its (H, W, 3) uint8 RGB frames and its float32 mono waveform.

        Call it only for a slot that will air (it succeeded, or it is the filler): what is handed
        to the encoders cannot be taken back. The waveform is fitted to the frames (see the module
        note); it must cover the same duration to within one frame. If ``frames`` raises midway,
        the frames already encoded stay, the audio is fitted to them, and the exception propagates:
        the stream stays consistent, merely shorter than planned. For an iterator of unknown length
        the lengths are checked after encoding (a mismatch raises, but the slot has aired, fitted).
        """
        self._check_open()
        waveform = _checked_waveform(waveform)
        known = len(frames) if hasattr(frames, "__len__") else None
        if known is not None:
            self._check_lengths(known, waveform.size)
        first = self._frames_in
        air_time = self._pdt_of(first)
        try:
            for frame in frames:
                self._encode_frame(frame)
        finally:
            n = self._frames_in - first
            fed = self._feed_audio(waveform)
        if known is None:
            self._check_lengths(n, waveform.size)
        return AppendedSlot(first, n, fed, fed - int(waveform.size), air_time)

    def slot_sink(self) -> HlsSlotSink:
        """A ``vortex.engine.sinks.FrameSink`` for one slot, spooled to disk; ``commit()`` it once the slot passed."""
        from .feed import HlsSlotSink  # feed builds on this module

        return HlsSlotSink(self)

    def append_mp4(self, path: str | Path) -> AppendedSlot:
        """Append a finished slot MP4 (``vortex.media``'s): decoded frames and presented PCM."""
        from .feed import read_mp4_slot

        frames, waveform, n_frames = read_mp4_slot(path)
        self._check_lengths(n_frames, waveform.size)  # before anything of it is encoded
        return self.append_slot(frames, waveform)

    def close(self, *, end: bool = True) -> MediaPlaylist:
        """Drain both encoders, publish the last (shorter) segment; ``end`` appends ``#EXT-X-ENDLIST``."""
        self._check_open()
        self._closed = True
        self._take_video(self._video.encode(None))
        self._take_audio(self._audio.encode(None))
        self._audio_flushed = True
        if self._current:
            self._awaiting.append((self._current_start, self._frames_in, self._current))
            self._current = []
        self._final = True
        self._publish_ready()
        if end:
            self._playlist = MediaPlaylist(self._playlist.target_duration, self._playlist.segments,
                                           self._playlist.media_sequence, ended=True)
        write_playlist(self.folder, self._playlist)
        return self._playlist

    @property
    def playlist(self) -> MediaPlaylist:
        return self._playlist

    @property
    def frames_appended(self) -> int:
        """Global frame index after the last appended frame (the stream's planned end)."""
        return self._frames_in

    @property
    def frames_published(self) -> int:
        """Global frame index after the last frame of the last listed segment."""
        return self._published_end

    def air_time_at(self, frame: int) -> datetime:
        """The program date-time of global frame ``frame`` (of this run)."""
        return self._pdt_of(frame)

    # -- internals: setup ------------------------------------------------------------------------

    def _setup(self, width: int, height: int, fps: int, sample_rate: int, segment_seconds: float, crf: int,
               preset: str, on_segment: Callable[[PlaylistSegment], None] | None) -> None:
        for name, value in (("width", width), ("height", height), ("fps", fps), ("sample_rate", sample_rate)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even for H.264 yuv420p, got {width}x{height}")
        if sample_rate not in _ADTS_RATES:
            raise ValueError(f"sample_rate {sample_rate} is not an AAC rate; allowed: {_ADTS_RATES}")
        seg_frames = round(segment_seconds * fps)
        if seg_frames < 1 or abs(segment_seconds * fps - seg_frames) > 1e-6:
            raise ValueError(f"segment_seconds {segment_seconds} must be a whole number of frames at {fps} fps")
        if (seg_frames * sample_rate) % fps:
            raise ValueError(f"a segment of {seg_frames} frames at {fps} fps is not a whole number of samples "
                             f"at {sample_rate} Hz: choose segment_seconds so that it is")
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self.segment_frames = seg_frames
        self._crf, self._preset, self._on_segment = crf, preset, on_segment

    def _start(self, playlist: MediaPlaylist, pdt_base: datetime, *, origin_frame: int, next_number: int,
               discontinuity: bool) -> None:
        if pdt_base.tzinfo is None:
            raise ValueError(f"program_start/air_time {pdt_base!r} has no timezone: pass an aware datetime (UTC)")
        self._playlist = playlist
        self._pdt_base, self._origin = pdt_base, origin_frame
        self._next_number, self._discontinuity = next_number, discontinuity
        self._frames_in = self._published_end = origin_frame
        # Audio counts in samples from the same origin: origin_frame x sr / fps is whole (checked).
        self._samples_origin = origin_frame * self.sample_rate // self.fps
        self._samples_in = 0  # fed to the AAC encoder in this run
        self._audio_next = self._samples_origin - AAC_FRAME  # start of the next AAC packet to come
        self._audio_flushed = self._closed = self._final = False
        self._current: list[_Coded] = []
        self._current_start = origin_frame
        self._awaiting: deque[tuple[int, int, list[_Coded]]] = deque()  # (start, end, video) cut, audio pending
        self._audio_queue: deque[_Coded] = deque()
        self._video, self._audio = self._open_encoders()
        write_playlist(self.folder, self._playlist)

    def _open_encoders(self) -> tuple[av.VideoCodecContext, av.AudioCodecContext]:
        video = av.CodecContext.create(VIDEO_ENCODER, "w")
        video.width, video.height, video.pix_fmt = self.width, self.height, "yuv420p"
        video.time_base, video.framerate = Fraction(1, self.fps), Fraction(self.fps)
        g = self.segment_frames
        # A fixed GOP of one segment, no scene-cut IDRs; forced-idr turns our pict_type=I into an IDR.
        video.options = {"crf": str(self._crf), "preset": self._preset, "forced-idr": "1",
                         "x264-params": f"keyint={g}:min-keyint={g}:scenecut=0"}
        video.colorspace, video.color_primaries = _AVCOL_SPC_BT709, int(ColorPrimaries.BT709)
        video.color_trc, video.color_range = int(ColorTrc.BT709), int(ColorRange.MPEG)
        audio = av.CodecContext.create(AUDIO_ENCODER, "w")
        audio.sample_rate, audio.layout, audio.format = self.sample_rate, "mono", "fltp"
        audio.bit_rate, audio.time_base = AUDIO_BITRATE, Fraction(1, self.sample_rate)
        video.open()
        audio.open()
        return video, audio

    # -- internals: encoding and cutting ---------------------------------------------------------

    def _encode_frame(self, frame: np.ndarray) -> None:
        expected = (self.height, self.width, 3)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frame {self._frames_in}: expected a uint8 RGB frame of shape {expected}, got {got}")
        yuv = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
            dst_color_trc=ColorTrc.BT709, dst_color_primaries=ColorPrimaries.BT709, interpolation=YUV_INTERPOLATION)
        yuv.pts, yuv.time_base = self._frames_in, Fraction(1, self.fps)
        if (self._frames_in - self._origin) % self.segment_frames == 0:
            yuv.pict_type = PictureType.I
        self._frames_in += 1
        self._take_video(self._video.encode(yuv))

    def _feed_audio(self, waveform: np.ndarray) -> int:
        """Feed the slot's PCM, fitted so the stream's audio ends where its video ends; returns samples fed."""
        target = (self._frames_in - self._origin) * self.sample_rate // self.fps
        count = target - self._samples_in
        if count <= 0:
            return 0
        pcm = waveform[:count] if waveform.size >= count else np.concatenate(
            [waveform, np.zeros(count - waveform.size, np.float32)])
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm)[None, :], format="flt", layout="mono")
        chunk.sample_rate, chunk.time_base = self.sample_rate, Fraction(1, self.sample_rate)
        chunk.pts = self._samples_origin + self._samples_in  # PyAV's FIFO re-frames it into 1024s
        self._samples_in += count
        self._take_audio(self._audio.encode(chunk))
        return count

    def _take_video(self, packets: list[av.Packet]) -> None:
        for p in packets:
            coded = _Coded(bytes(p), int(p.pts), int(p.dts), int(p.duration or 1), bool(p.is_keyframe))
            boundary = (coded.pts - self._origin) % self.segment_frames == 0 and coded.pts > self._current_start
            if boundary:
                if not coded.key:
                    raise RuntimeError(f"the encoder did not make frame {coded.pts} (a segment start) a keyframe")
                self._awaiting.append((self._current_start, coded.pts, self._current))
                self._current, self._current_start = [], coded.pts
            self._current.append(coded)
        self._publish_ready()

    def _take_audio(self, packets: list[av.Packet]) -> None:
        for p in packets:
            data = bytes(p)
            self._audio_queue.append(_Coded(_adts(data, self.sample_rate), int(p.pts), int(p.pts),
                                            int(p.duration or AAC_FRAME), True))
            self._audio_next = int(p.pts) + AAC_FRAME
        self._publish_ready()

    def _publish_ready(self) -> None:
        while self._awaiting:
            start, end, video = self._awaiting[0]
            end_sample = end * self.sample_rate // self.fps
            if self._audio_next < end_sample and not self._audio_flushed:
                return  # an AAC frame starting before the boundary is still inside the encoder
            self._awaiting.popleft()
            last = self._final and not self._awaiting  # the stream's last segment takes the tail
            audio = []
            while self._audio_queue and (self._audio_queue[0].pts < end_sample or last):
                audio.append(self._audio_queue.popleft())
            self._write_segment(start, end, video, audio)

    def _write_segment(self, start: int, end: int, video: list[_Coded], audio: list[_Coded]) -> None:
        name = f"seg-{self._next_number:05d}.ts"
        final, temp = self.folder / name, self.folder / f".{name}.tmp"
        container = av.open(str(temp), mode="w", format="mpegts", options={"mpegts_copyts": "1"})
        try:
            vs = container.add_mux_stream("h264", rate=self.fps, width=self.width, height=self.height)
            aus = container.add_mux_stream("aac", rate=self.sample_rate)
            packets = [(_ticks(c.dts, self.fps), 0, c, vs, self.fps) for c in video]
            packets += [(_ticks(c.dts, self.sample_rate), 1, c, aus, self.sample_rate) for c in audio]
            for _, _, coded, stream, rate in sorted(packets, key=lambda t: (t[0], t[1])):
                packet = av.Packet(coded.data)
                packet.stream, packet.time_base = stream, Fraction(1, TS_CLOCK)
                packet.pts, packet.dts = _ticks(coded.pts, rate), _ticks(coded.dts, rate)
                packet.duration = coded.duration * TS_CLOCK // rate
                packet.is_keyframe = coded.key
                container.mux(packet)
        finally:
            container.close()
        with open(temp, "rb+") as f:
            os.fsync(f.fileno())  # the segment's bytes are on disk before any name points at them
        os.replace(temp, final)
        segment = PlaylistSegment(name, (end - start) / self.fps, self._pdt_of(start), self._discontinuity)
        self._discontinuity = False
        self._next_number += 1
        self._published_end = end
        self._playlist = self._playlist.with_segment(segment)
        write_playlist(self.folder, self._playlist)
        if self._on_segment is not None:
            self._on_segment(segment)

    def _pdt_of(self, frame: int) -> datetime:
        return self._pdt_base + timedelta(seconds=(frame - self._origin) / self.fps)

    def _check_lengths(self, n_frames: int, n_samples: int) -> None:
        video_s, audio_s = n_frames / self.fps, n_samples / self.sample_rate
        if n_frames == 0 or abs(video_s - audio_s) > 1.0 / self.fps + 1.0 / self.sample_rate:
            raise ValueError(
                f"slot lengths disagree: {n_frames} frames at {self.fps} fps = {video_s:.4f} s, {n_samples} samples "
                f"at {self.sample_rate} Hz = {audio_s:.4f} s; both must come from one duration (within a frame)")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the HLS writer for {self.folder} is closed")


def _ticks(value: int, rate: int) -> int:
    """A time in 1/rate units as a shifted 90 kHz MPEG-TS timestamp."""
    return PTS_OFFSET + (value * TS_CLOCK) // rate


def _adts(payload: bytes, sample_rate: int) -> bytes:
    """Prefix a raw AAC-LC mono frame with its 7-byte ADTS header: MPEG-TS carries AAC as ADTS."""
    length = len(payload) + 7
    rate_index, channels, profile = _ADTS_RATES.index(sample_rate), 1, 1  # profile 1 = AAC LC
    header = bytes([
        0xFF, 0xF1,  # sync word, MPEG-4, layer 0, no CRC
        (profile << 6) | (rate_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11),
        (length >> 3) & 0xFF,
        ((length & 7) << 5) | 0x1F,  # buffer fullness 0x7FF: variable bit rate
        0xFC,  # ... and one raw data block per ADTS frame
    ])
    return header + payload


def _checked_waveform(waveform: np.ndarray) -> np.ndarray:
    if not isinstance(waveform, np.ndarray) or waveform.dtype != np.float32 or waveform.ndim != 1:
        got = f"{waveform.dtype} array of shape {waveform.shape}" if isinstance(waveform, np.ndarray) else type(waveform).__name__
        raise ValueError(f"waveform: expected a 1-D float32 mono array, got {got}")
    if waveform.size == 0 or not np.all(np.isfinite(waveform)):
        raise ValueError("waveform: empty, or it holds NaN/infinite samples")
    peak = float(np.max(np.abs(waveform)))
    if peak > 1.0:
        raise ValueError(f"waveform peaks at {peak:.3f}, outside [-1, 1]: normalise or limit it first")
    return waveform
