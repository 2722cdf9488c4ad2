"""The channel's live stream as Low-Latency HLS: ONE H.264 encoder and ONE AAC encoder for the whole channel.

Media go into the same two encoders slot after slot, whole (``append_slot``) or as they are made
(``open_slot``: a ``SlotFeed`` takes frames and audio chunks in any interleaving), so timestamps
and AAC framing run on across slot boundaries: video pts = the global frame index, audio pts = the
global sample index, and the only AAC priming is at the very start of the stream (or of a
restart). Separately encoded files glued together would leave a 1024-sample hole and a fresh
priming at every boundary.

Parts (``part_seconds``, 0.5 s = 12 frames at 24 fps) are published as soon as the encoders have
handed them out: x264 runs with ``tune=zerolatency`` (no frame held back; encoder.py has the
numbers) and a part waits only for the AAC frames that overlap its end (cutter.py). Full segments
(``segment_seconds``, 2 s) are listed as before; each starts with a forced IDR.

Container: fragmented MP4 (fmp4.py), one moof+mdat per part, a segment being the concatenation of
its parts, one init segment (EXT-X-MAP). Measured with hls.js 1.7.4 in headless Chromium
(benchmarks/bench_llhls_player.py, synthetic 512² channel paced like the realtime channel, 40 s a
mode, 2-core box at load 4.9): fMP4 parts played 1.67 s (P50) behind the wall clock, the same parts
remuxed to MPEG-TS 1.67 s, both without a stall: hls.js plays either smoothly. fMP4 because the TS
parts were 14% larger (41.2 against 36.2 KiB: 188-byte packets, PAT/PMT and PES headers in every
part), hls.js must transmux TS to fMP4 in the browser before Media Source Extensions take it, and
MPEG-TS's 33-bit 90 kHz clock wraps after 26.5 h, which an always-on channel reaches (fMP4 decode
times are 64-bit). Plain HLS of the same stream (3 segments back: the channel page before) played
6.8 s behind.

Audio is fitted to video: it is encoded only up to where the video has got (the frames encoded so
far x sample_rate / fps), and when a slot ends its audio is trimmed or padded with silence to the
slot's video end. Without this, slots of round(d*fps) frames and round(d*sr) samples would let
audio drift from video by up to half a frame per slot, and a slot that broke midway would leave
audio running past its video.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Optional

import av
import numpy as np

from .cutter import PartCutter
from .encoder import DEFAULT_CRF, DEFAULT_PRESET, ChannelEncoder
from .feed import AppendedSlot, SlotFeed, checked_audio
from .fmp4 import AAC_RATES
from .playlist import PLAYLIST_NAME, MediaPlaylist, PlaylistSegment, read_playlist, target_duration_for, write_playlist
from .publish import PublishedPart, Publisher, recover
from .spool import read_mp4_slot, read_spool

Pace = Callable[[Iterable], Iterable]  # wraps a slot's frames (pacing.py: hands them over with the clock)
# The program picture (vortex.program.compose.ProgramCompositor): (anchor frame, global frame index)
# -> the frame at the writer's size; with it, width/height are the program's and frames come at input_size.
Compose = Callable[[object, int], object]
MAX_PART_SECONDS = 1.0  # RFC 8216bis: parts are short; Apple suggests 0.2-0.5 s, the issue at most 1 s


class HlsChannelWriter:
    """A channel's live stream in ``folder``: ``index.m3u8``, ``init-*.mp4``, ``part-*.m4s`` and ``seg-*.m4s``."""

    def __init__(self, folder: str | Path, *, width: int, height: int, fps: int, sample_rate: int = 24000,
                 segment_seconds: float = 2.0, part_seconds: float = 0.5, program_start: datetime,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
                 on_segment: Optional[Callable[[PlaylistSegment], None]] = None,
                 on_part: Optional[Callable[[PublishedPart], None]] = None,
                 compose: Optional[Compose] = None) -> None:
        self.folder = Path(folder)
        self.compose = compose
        if (self.folder / PLAYLIST_NAME).exists():
            raise FileExistsError(f"{self.folder / PLAYLIST_NAME} exists: continue it with HlsChannelWriter.resume")
        self.folder.mkdir(parents=True, exist_ok=True)
        self._setup(width, height, fps, sample_rate, segment_seconds, part_seconds)
        playlist = MediaPlaylist(target_duration_for(segment_seconds), part_target=self.part_frames / fps)
        self._start(playlist, program_start, origin_frame=0, next_number=1, discontinuity=False, crf=crf,
                    preset=preset, on_segment=on_segment, on_part=on_part)

    @classmethod
    def resume(cls, folder: str | Path, *, width: int, height: int, fps: int, sample_rate: int = 24000,
               segment_seconds: float = 2.0, part_seconds: float = 0.5, air_time: datetime,
               crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET,
               on_segment: Optional[Callable[[PlaylistSegment], None]] = None,
               on_part: Optional[Callable[[PublishedPart], None]] = None,
               compose: Optional[Compose] = None) -> HlsChannelWriter:
        """Continue the stream in ``folder`` after a crash (or a close), from ``air_time`` on.

        Every listed segment and part stays as it is (never rewritten); a segment whose parts were
        listed but which was not complete becomes a (short) segment of exactly those parts;
        temporaries and files the playlist does not name (renamed just before a crash) are
        removed; numbering continues; the first new segment carries ``#EXT-X-DISCONTINUITY`` and
        the program date-time ``air_time``; a closing ``#EXT-X-ENDLIST`` is dropped (the stream
        goes on). Media timestamps continue after the last listed frame, so the restarted
        encoders' priming stays positive.
        """
        folder = Path(folder)
        if not (folder / PLAYLIST_NAME).is_file():
            raise FileNotFoundError(f"cannot resume: no {PLAYLIST_NAME} in {folder}; start with HlsChannelWriter(...)")
        self = cls.__new__(cls)
        self.folder, self.compose = folder, compose
        self._setup(width, height, fps, sample_rate, segment_seconds, part_seconds)
        old, next_number = recover(folder, read_playlist(folder))
        origin = old.listed_frames(fps)
        target = max(old.target_duration, target_duration_for(segment_seconds))
        playlist = MediaPlaylist(target, old.segments, old.media_sequence, part_target=self.part_frames / fps,
                                 dateranges=old.dateranges)
        self._start(playlist, air_time, origin_frame=origin, next_number=next_number, discontinuity=bool(old.segments),
                    crf=crf, preset=preset, on_segment=on_segment, on_part=on_part)
        return self

    # -- appending media -------------------------------------------------------------------------

    def append_slot(self, frames: Iterable[np.ndarray] | np.ndarray, waveform: np.ndarray) -> AppendedSlot:
        """Encode one slot: its (H, W, 3) uint8 RGB frames and its float32 mono waveform.

        Call it only for a slot that will air: what is handed to the encoders cannot be taken back,
        and parts are published while the slot is encoded. The waveform is fitted to the frames (see
        the module note); it must cover the same duration to within one frame. If ``frames`` raises
        midway, the frames already encoded stay, the audio is fitted to them, and the exception
        propagates: the stream stays consistent, merely shorter than planned. For an iterator of
        unknown length the lengths are checked after encoding (a mismatch raises, but the slot has
        aired, fitted). ``frames`` may pace itself (channel/pacing.py): each frame is encoded and
        its parts published as it comes.
        """
        return self._append(frames, waveform, len(frames) if hasattr(frames, "__len__") else None)

    def _append(self, frames: Iterable[np.ndarray], waveform: np.ndarray, known: Optional[int]) -> AppendedSlot:
        self._check_open()
        waveform = checked_audio(waveform, "waveform")
        if waveform.size == 0:
            raise ValueError("waveform: empty")
        if known is not None:
            self._check_lengths(known, waveform.size)
        feed = self.open_slot()
        try:
            feed.write_audio(waveform)  # held back: encoded as the video gets there
            for frame in frames:
                feed.write_frame(frame)
        finally:
            report = feed.close()
        if known is None:
            self._check_lengths(report.n_frames, waveform.size)
        return report

    def open_slot(self) -> SlotFeed:
        """Start a slot fed as it is made: ``write_frame``/``write_audio`` in any order, then ``close()``."""
        self._check_open()
        if self._feed is not None:
            raise RuntimeError("a slot is already open on this writer: close() it first")
        self._feed = SlotFeed(self)
        return self._feed

    def append_mp4(self, path: str | Path, pace: Optional[Pace] = None) -> AppendedSlot:
        """Append a finished slot MP4 (``vortex.media``'s): decoded frames and presented PCM;
        ``pace`` wraps the frame iterator (e.g. to hand frames over with the wall clock)."""
        frames, waveform, n_frames = read_mp4_slot(path, rgb=False)  # yuv420p frames straight to x264
        return self._append(frames if pace is None else pace(frames), waveform, n_frames)

    def append_spool(self, video: str | Path, pace: Optional[Pace] = None) -> AppendedSlot:
        """Append a finished slot spool (spool.py): its yuv420p frames encoded once, its samples as made."""
        frames, waveform, n_frames = read_spool(Path(video), *self.input_size)
        return self._append(frames if pace is None else pace(frames), waveform, n_frames)

    def close(self, *, end: bool = True) -> MediaPlaylist:
        """Drain both encoders, publish the last (shorter) part and segment; ``end`` appends ``#EXT-X-ENDLIST``."""
        self._check_open()
        if self._feed is not None:
            self._feed.close()
        self._closed = True
        self._cutter.add_video(self._encoder.flush_video())
        self._cutter.add_audio(self._encoder.flush_audio())
        for part in self._cutter.finish():
            self._publisher.publish(part)
        return self._publisher.finish(ended=end)

    @property
    def playlist(self) -> MediaPlaylist:
        return self._publisher.playlist

    @property
    def frames_appended(self) -> int:
        """Global frame index after the last appended frame (the stream's planned end)."""
        return self._frames_in

    @property
    def frames_published(self) -> int:
        """Global frame index after the last frame of the last listed part."""
        published = self._publisher.frames_published
        return self._origin if published is None else published

    def mark(self, lines: Iterable[str], *, cut: bool = True) -> int:
        """List ``lines`` (EXT-X-DATERANGE tags: vortex.program.markers) before the segment that starts at
        the next frame appended, and with ``cut`` start a segment (an IDR) there: an item's first frame
        (channel/marking.py). Returns that frame. Lines still waiting at ``close`` go after the last segment."""
        self._check_open()
        frame = self._frames_in
        if cut:
            self._cutter.force_segment(frame)
        for line in lines:
            self._publisher.add_daterange(frame, line)
        return frame

    def air_time_at(self, frame: int) -> datetime:
        """The program date-time of global frame ``frame`` (of this run)."""
        return self._pdt_of(frame)

    # -- what a SlotFeed drives ------------------------------------------------------------------

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the frames appended: the program's anchor with ``compose``, else the stream's."""
        return tuple(self.compose.anchor_size) if self.compose is not None else (self.width, self.height)

    def watermark(self, slot_id: Optional[int]) -> None:
        """Mark the frames and audio encoded from here on with (node, ``slot_id``): the pixel watermark
        of vortex.provenance.watermark on the stream's luma (0.3 CPU-ms a 1280x720 frame) and the same
        payload in the speech (vortex.provenance.audio_mark, its blocks counted from here: 0.7 CPU-ms a
        second); None, or no ``watermark_node``, leaves them unmarked."""
        if self.watermark_node is None or slot_id is None:
            self._mark = self._audio_mark = None
        else:
            from ...provenance.audio_mark import AudioMarker
            from ...provenance.watermark import LumaMarker

            self._mark = LumaMarker(self.watermark_node, slot_id, self.height, self.width)
            self._audio_mark = AudioMarker(self.watermark_node, slot_id, self.sample_rate)

    def _encode_frame(self, frame: np.ndarray | av.VideoFrame) -> None:
        if self.compose is not None:  # the anchor in the program picture, the crawl at this global frame
            frame = self.compose(frame, self._frames_in)
        expected = (self.height, self.width, 3)
        if isinstance(frame, av.VideoFrame):  # decoded from a slot MP4 (append_mp4): passed through
            if frame.format.name != "yuv420p" or (frame.height, frame.width) != expected[:2]:
                raise ValueError(f"frame {self._frames_in}: a decoded frame must be yuv420p {self.width}x{self.height}, "
                                 f"got {frame.format.name} {frame.width}x{frame.height}")
        elif not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frame {self._frames_in}: expected a uint8 RGB frame of shape {expected}, got {got}")
        index = self._frames_in
        packets = self._encoder.encode_frame(frame, index, idr=self._cutter.is_segment_start(index), mark=self._mark)
        self._frames_in += 1
        self._cutter.add_video(packets)

    def _audio_room(self) -> int:
        """Samples the audio may still take before it passes the video's end."""
        return (self._frames_in - self._origin) * self.sample_rate // self.fps - self._samples_in

    def _encode_audio(self, pcm: np.ndarray) -> None:
        if pcm.size == 0:
            return
        if pcm.size > self._audio_room():
            raise RuntimeError(f"{pcm.size} samples would run past the video's end ({self._audio_room()} left)")
        if self._audio_mark is not None:
            pcm = self._audio_mark(pcm)
        packets = self._encoder.encode_audio(pcm, self._samples_origin + self._samples_in)
        self._samples_in += pcm.size
        self._cutter.add_audio(packets)

    def _publish_ready(self) -> None:
        for part in self._cutter.ready():
            self._publisher.publish(part)

    def _slot_closed(self) -> None:
        self._feed = None

    # -- internals -------------------------------------------------------------------------------

    def _setup(self, width: int, height: int, fps: int, sample_rate: int, segment_seconds: float,
               part_seconds: float) -> None:
        for name, value in (("width", width), ("height", height), ("fps", fps), ("sample_rate", sample_rate)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if width % 2 or height % 2:
            raise ValueError(f"width and height must be even for H.264 yuv420p, got {width}x{height}")
        if sample_rate not in AAC_RATES:
            raise ValueError(f"sample_rate {sample_rate} is not an AAC rate; allowed: {AAC_RATES}")
        seg_frames = _whole_frames("segment_seconds", segment_seconds, fps, sample_rate)
        part_frames = _whole_frames("part_seconds", part_seconds, fps, sample_rate)
        if part_seconds > MAX_PART_SECONDS or seg_frames % part_frames:
            raise ValueError(f"part_seconds {part_seconds} must be at most {MAX_PART_SECONDS} s and divide "
                             f"segment_seconds {segment_seconds} into whole parts (e.g. 0.5 for 2 s segments)")
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self.segment_frames, self.part_frames = seg_frames, part_frames
        self.watermark_node: Optional[str] = None  # set by a signing channel: its frames carry the pixel mark
        self._mark = self._audio_mark = None

    def _start(self, playlist: MediaPlaylist, pdt_base: datetime, *, origin_frame: int, next_number: int,
               discontinuity: bool, crf: int, preset: str, on_segment, on_part) -> None:
        if pdt_base.tzinfo is None:
            raise ValueError(f"program_start/air_time {pdt_base!r} has no timezone: pass an aware datetime (UTC)")
        self._pdt_base, self._origin = pdt_base, origin_frame
        self._frames_in = origin_frame
        # Audio counts in samples from the same origin: origin_frame x sr / fps is whole (checked).
        self._samples_origin = origin_frame * self.sample_rate // self.fps
        self._samples_in = 0  # fed to the AAC encoder in this run
        self._closed, self._feed = False, None
        self._encoder = ChannelEncoder(width=self.width, height=self.height, fps=self.fps,
                                       sample_rate=self.sample_rate, gop=self.segment_frames, crf=crf, preset=preset)
        self._cutter = PartCutter(origin=origin_frame, fps=self.fps, sample_rate=self.sample_rate,
                                  part_frames=self.part_frames, segment_frames=self.segment_frames)
        self._publisher = Publisher(self.folder, playlist, fps=self.fps, sample_rate=self.sample_rate,
                                    width=self.width, height=self.height, audio_bitrate=self._encoder.audio_bitrate,
                                    segment_seconds=self.segment_frames / self.fps, next_number=next_number,
                                    discontinuity=discontinuity, pdt_of=self._pdt_of, on_part=on_part,
                                    on_segment=on_segment)
        write_playlist(self.folder, playlist)

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


def _whole_frames(name: str, seconds: float, fps: int, sample_rate: int) -> int:
    frames = round(seconds * fps)
    if frames < 1 or abs(seconds * fps - frames) > 1e-6:
        raise ValueError(f"{name} {seconds} must be a whole number of frames at {fps} fps")
    if (frames * sample_rate) % fps:
        raise ValueError(f"{name} {seconds}: {frames} frames at {fps} fps are not a whole number of samples "
                         f"at {sample_rate} Hz: choose it so that they are")
    return frames
