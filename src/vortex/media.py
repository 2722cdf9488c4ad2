"""MP4 muxing: H.264 (yuv420p) + mono AAC, faststart, exact lengths, written atomically.

Lengths follow the recipe: the file holds exactly the frames and audio samples it was given.
Two details make that true in players and not only in our own counter:

- AAC priming. ffmpeg's AAC encoder emits 1024 samples of encoder delay before the first real
  sample and pads the last frame up to 1024 samples. The mp4 muxer records both in the track's
  edit list (``elst``: media_time = 1024, segment duration = the real length) and an AAC ``roll``
  sample group; the last sample's ``stts`` delta is shortened to the real remainder too. Players
  that honour edit lists present exactly the samples we wrote. ffmpeg's demuxer (5.1 and PyAV's
  8.x) drops the priming but still decodes the last frame whole, while reporting the exact
  duration; ``probe_mp4`` trims to that duration.
- Edit-list precision. The edit list's segment duration is counted in the *movie* timescale,
  1000 by default: 1/3 s of audio would be announced as 333 ms (7992 samples, not 8000). We set
  the movie timescale to a multiple of both the sample rate and the frame rate, so both tracks'
  lengths are exact.
"""

from __future__ import annotations

import math
import os
import secrets
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

YUV_INTERPOLATION = "BILINEAR"
# Every reformat on one swscale thread. PyAV's default (0: one per core) gives each reformatted frame
# a slice-thread pool of its own, and freeing one in a child that fork() made (subprocess's
# preexec_fn: Ray starting its GCS) waits forever on the pool's condition variable, the pool's
# threads being the parent's: CI hung so in test_serving_ray. One thread is also cheaper: rgb24 ->
# yuv420p of a 512² frame 0.9-1.15 ms of CPU against 1.7.
SWS_THREADS = 1
VIDEO_ENCODER = "libx264"
AUDIO_ENCODER = "aac"  # ffmpeg's native AAC-LC encoder (PyAV's wheels ship it; fdk-aac is absent)
AUDIO_BITRATE = 96_000  # mono speech at 24 kHz: transparent well below this
# libavutil's AVCOL_SPC_BT709, the codec's colour-matrix tag. PyAV's Colorspace enum holds
# swscale's SWS_CS_* numbers, a different numbering, so the tag is spelled out here.
_AVCOL_SPC_BT709 = 1


class Mp4Writer:
    """Streams RGB frames and one audio track into an MP4 at a temporary name, renamed on close.

    Frames arrive one at a time (the engine streams a slot into this writer while later frames
    render); the audio arrives in order, whole or chunk by chunk, interleaved with the frames.
    An exception inside the ``with`` block removes the temporary file, so ``path`` either keeps
    whatever it held before or receives the complete file: never a partial one.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: int,
        sample_rate: int = 24000,
        crf: int = 20,
        preset: str = "veryfast",
        atomic: bool = True,
    ) -> None:
        self.path = Path(path)
        _check_positive_int("fps", fps)
        _check_positive_int("sample_rate", sample_rate)
        for name, value in (("width", width), ("height", height)):
            _check_positive_int(name, value)
            if value % 2:  # yuv420p halves chroma in both directions
                raise ValueError(f"{name} must be even for H.264 yuv420p, got {value}")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(
                f"cannot write {self.path}: directory {self.path.parent} does not exist; create it first"
            )

        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self.frames_written = 0
        self.audio_samples_written: int | None = None
        self._closed = False

        # Same directory as the target, so the final os.replace is an atomic rename. A random
        # suffix keeps concurrent writers apart; ffmpeg creates the file with the usual umask.
        # atomic=False: `path` is already a temporary name of the caller's (vortex.engine.outputs), which
        # publishes it later; a second temporary name would only be one more file to leave behind.
        self._temp_path = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.part") if atomic else self.path
        try:
            self._container = av.open(
                str(self._temp_path),
                mode="w",
                format="mp4",
                options={
                    "movflags": "+faststart",  # moov before mdat: playback starts before the download ends
                    "movie_timescale": str(math.lcm(sample_rate, fps)),  # exact edit-list durations
                },
            )
            self._video = self._container.add_stream(
                VIDEO_ENCODER, rate=fps, options={"crf": str(crf), "preset": preset}
            )
            self._video.width, self._video.height = width, height
            self._video.pix_fmt = "yuv420p"
            # Tag BT.709 limited range, the conversion we do below, so players decode the same colours.
            video_ctx = self._video.codec_context
            video_ctx.colorspace = int(_AVCOL_SPC_BT709)
            video_ctx.color_primaries = int(ColorPrimaries.BT709)
            video_ctx.color_trc = int(ColorTrc.BT709)
            video_ctx.color_range = int(ColorRange.MPEG)
            self._audio = self._container.add_stream(AUDIO_ENCODER, rate=sample_rate, layout="mono")
            self._audio.bit_rate = AUDIO_BITRATE
        except BaseException:
            self._discard()
            raise

    # -- writing -----------------------------------------------------------------------------

    def write_frame(self, frame: np.ndarray) -> None:
        """Encode one (height, width, 3) uint8 RGB frame as the next frame of the video."""
        self._check_open()
        expected = (self.height, self.width, 3)
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != expected:
            got = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"expected a uint8 RGB frame of shape {expected}, got {got}")
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        yuv = rgb.reformat(
            format="yuv420p",
            dst_colorspace=Colorspace.ITU709,
            dst_color_range=ColorRange.MPEG,
            dst_color_trc=ColorTrc.BT709,
            dst_color_primaries=ColorPrimaries.BT709,
            # Bilinear chroma subsampling: the same bytes as swscale's default (bicubic) for this
            # unscaled conversion, in half the time (1.5 vs 3.0 ms a 512² frame, measured).
            interpolation=YUV_INTERPOLATION,
            threads=SWS_THREADS,
        )
        yuv.pts = self.frames_written
        yuv.time_base = Fraction(1, self.fps)
        self._mux(self._video.encode(yuv))
        self.frames_written += 1

    def write_audio(self, waveform: np.ndarray) -> None:
        """Encode the next samples of the audio track: float32 mono in [-1, 1]. Called once with the
        whole track, or chunk by chunk as the speech is made; timestamps run on across calls."""
        self._check_open()
        if not isinstance(waveform, np.ndarray) or waveform.dtype != np.float32 or waveform.ndim != 1:
            got = f"{waveform.dtype} array of shape {waveform.shape}" if isinstance(waveform, np.ndarray) else type(waveform).__name__
            raise ValueError(f"expected a 1-D float32 mono waveform of shape (n_samples,), got {got}")
        if waveform.size == 0:
            raise ValueError("the waveform is empty: a slot needs duration_sec x sample_rate samples")
        if not np.all(np.isfinite(waveform)):
            raise ValueError("the waveform contains NaN or infinite samples")
        peak = float(np.max(np.abs(waveform)))
        if peak > 1.0:
            raise ValueError(f"the waveform peaks at {peak:.3f}, outside [-1, 1]: normalise or limit it first")

        written = self.audio_samples_written or 0
        audio = av.AudioFrame.from_ndarray(np.ascontiguousarray(waveform)[None, :], format="flt", layout="mono")
        audio.sample_rate = self.sample_rate
        audio.pts = written
        audio.time_base = Fraction(1, self.sample_rate)
        # PyAV re-frames the track into the encoder's 1024-sample frames, across calls; close()
        # flushes the last one.
        self._mux(self._audio.encode(audio))
        self.audio_samples_written = written + int(waveform.size)

    def close(self) -> Path:
        """Finish muxing and atomically rename the temporary file to ``path``; returns ``path``."""
        self._check_open()
        try:
            self._check_complete()
            self._mux(self._audio.encode(None))  # the last, partly filled AAC frame
            self._mux(self._video.encode(None))  # drain frames x264 holds for look-ahead
            self._container.close()
            if self._temp_path != self.path:
                os.replace(self._temp_path, self.path)
        except BaseException:
            self._discard()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; ``path`` is left as it was."""
        if not self._closed:
            self._discard()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()

    @property
    def container(self) -> av.container.OutputContainer:
        """The output container, for a track a later layer adds before the first frame (the
        captions' mov_text: vortex.program.captions.add_mov_text)."""
        return self._container

    # -- internals ---------------------------------------------------------------------------

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writer for {self.path} is already closed")

    def _check_complete(self) -> None:
        if self.frames_written == 0:
            raise ValueError(f"no frames were written to {self.path}")
        if self.audio_samples_written is None:
            raise ValueError(f"no audio was written to {self.path}: call write_audio with the track")
        # Both lengths come from one duration (round(d*fps) frames, round(d*sr) samples), so they
        # can differ by at most half a frame plus a sample; more means the caller mixed slots up.
        video_s = self.frames_written / self.fps
        audio_s = self.audio_samples_written / self.sample_rate
        if abs(video_s - audio_s) > 0.5 / self.fps + 1.0 / self.sample_rate:
            raise ValueError(
                f"video and audio lengths disagree: {self.frames_written} frames at {self.fps} fps = {video_s:.4f} s, "
                f"{self.audio_samples_written} samples at {self.sample_rate} Hz = {audio_s:.4f} s; "
                "both must be derived from the same duration_sec"
            )

    def _discard(self) -> None:
        self._closed = True
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except Exception:  # the file is being thrown away; its trailer does not matter
                pass
        self._temp_path.unlink(missing_ok=True)


def write_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray] | np.ndarray,
    waveform: np.ndarray,
    *,
    fps: int,
    sample_rate: int = 24000,
) -> Path:
    """Write all ``frames`` ((H, W, 3) uint8 RGB each) and ``waveform`` to ``path`` in one call."""
    frame_iter: Iterator[np.ndarray] = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    if not isinstance(first, np.ndarray) or first.ndim != 3:
        raise ValueError(f"expected (H, W, 3) uint8 RGB frames, got {getattr(first, 'shape', type(first).__name__)}")
    height, width = first.shape[:2]
    with Mp4Writer(path, width=width, height=height, fps=fps, sample_rate=sample_rate) as writer:
        writer.write_audio(waveform)
        writer.write_frame(first)
        for frame in frame_iter:
            writer.write_frame(frame)
        return writer.close()


@dataclass(frozen=True)
class MediaInfo:
    """What an MP4 really holds, counted by decoding it."""

    n_frames: int
    fps: float
    width: int
    height: int
    video_codec: str
    pix_fmt: str
    audio_codec: str
    sample_rate: int
    n_audio_samples: int  # samples presented after the edit list (priming and end padding removed)
    duration_sec: float  # the container's duration: its longest track
    faststart: bool  # the 'moov' box precedes the 'mdat' box


def probe_mp4(path: str | Path) -> MediaInfo:
    """Decode ``path`` and count its video frames and presented audio samples."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MP4 at {path}")
    with av.open(str(path)) as container:
        if not container.streams.video or not container.streams.audio:
            raise ValueError(f"{path} needs one video and one audio stream")
        video, audio = container.streams.video[0], container.streams.audio[0]
        n_frames = sum(1 for _ in container.decode(video))
        info = dict(
            n_frames=n_frames,
            fps=float(video.average_rate),
            width=video.codec_context.width,
            height=video.codec_context.height,
            video_codec=video.codec_context.name,
            pix_fmt=video.codec_context.pix_fmt,
            audio_codec=audio.codec_context.name,
            sample_rate=audio.codec_context.sample_rate,
            duration_sec=container.duration / av.time_base,
        )
    with av.open(str(path)) as container:
        n_audio_samples = _count_presented_samples(container, container.streams.audio[0])
    return MediaInfo(**info, n_audio_samples=n_audio_samples, faststart=_moov_before_mdat(path))


def read_mono_audio(source, rate: int | None = None, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """(float32 mono waveform, its rate) of the first audio stream of a path or file object, resampled
    to ``rate`` (default: the stream's), at most ``max_seconds`` of it. ValueError: no audio stream."""
    with av.open(str(source) if isinstance(source, Path) else source) as container:
        if not container.streams.audio:
            raise ValueError("the file has no audio stream")
        stream = container.streams.audio[0]
        rate = rate or stream.rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, total = [], 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
                total += chunks[-1].size
            if max_seconds is not None and total >= max_seconds * rate:
                break
        else:
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return (np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)), rate


def _count_presented_samples(container: av.container.InputContainer, stream: av.AudioStream) -> int:
    """Decoded samples that fall inside the track's presentation window.

    ffmpeg's mov demuxer applies the edit list's start (the decoder drops the 1024 priming samples)
    but the decoder still returns the last AAC frame whole, padding included; the window
    [start_time, start_time + duration) from the edit list trims it.
    """
    to_samples = stream.time_base * stream.codec_context.sample_rate
    window_start = int((stream.start_time or 0) * to_samples)
    window_end = window_start + int(stream.duration * to_samples) if stream.duration else None
    count, next_pts = 0, window_start
    for frame in container.decode(stream):
        start = int(frame.pts * to_samples) if frame.pts is not None else next_pts
        end = start + frame.samples
        next_pts = end
        if window_end is not None:
            end = min(end, window_end)
        count += max(0, end - max(start, window_start))
    return count


def _moov_before_mdat(path: Path) -> bool:
    """Walk the top-level boxes: faststart means the index ('moov') comes before the media data."""
    order: list[bytes] = []
    size_total = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset + 8 <= size_total:
            f.seek(offset)
            size, box = struct.unpack(">I4s", f.read(8))
            if size == 1:  # 64-bit size follows the type
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:  # box runs to the end of the file
                size = size_total - offset
            if size < 8:
                raise ValueError(f"{path} is not a valid MP4: box {box!r} at {offset} has size {size}")
            order.append(box)
            offset += size
    if b"moov" not in order or b"mdat" not in order:
        raise ValueError(f"{path} is not a complete MP4: top-level boxes are {order}")
    return order.index(b"moov") < order.index(b"mdat")


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
