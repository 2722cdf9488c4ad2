"""Where a made-ahead slot waits for air: its frames and samples exactly as the engine made them.

The engine streams a channel slot into a ``SlotSpool`` (a ``vortex.contracts.sinks.FrameSink``):
each frame converted once to the stream's yuv420p (BT.709, limited range: what the channel's
encoder takes) and written to ``slot-NNNNN.yuv`` (raw planes, frame after frame), the audio kept
and written to ``slot-NNNNN.pcm`` (float32) when the slot finishes. Both are written under
temporary names and renamed on ``finish``; ``abort`` (a failed slot) deletes them. The appender
encodes the spool once into the stream (``read_spool``), after the slot's checks passed.

Before, the engine encoded the slot to an MP4 and the channel decoded it and encoded it again:
measured on the 2-core box, 6 s cpu-preview slot, CPU per frame (benchmarks/bench_hls.py
--slot-mp4): the slot MP4 4.45 ms (x264 veryfast + AAC + the RGB->YUV conversion), its decode
0.37 ms, the stream's encode of the decoded frames 2.8 ms; the spool costs 0.24 ms (write + read
back) and moves the conversion (1.7 ms) to the engine's sink. A 512² frame is 393 KB as
yuv420p: a 45 s slot spools 425 MB, on the channel folder's disk. The last good slot's spool is
kept for the ``last_good`` filler (as its MP4 was), so a restart or another node can re-air it.

``read_mp4_slot`` is the same for a finished slot MP4: an engine that cannot stream into this
process's sinks (a Ray Serve replica) hands back an MP4, which is decoded (yuv420p) and encoded once.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ...contracts.sinks import MediaShape
from ...media import SWS_THREADS
from .encoder import to_yuv420p


def spool_paths(video: Path) -> tuple[Path, Path]:
    """(frames, samples) of the spool named ``video`` (``slot-NNNNN.yuv``)."""
    video = Path(video)
    return video, video.with_suffix(".pcm")


def frame_bytes(width: int, height: int) -> int:
    return width * height * 3 // 2


class SlotSpool:
    """One slot's FrameSink: yuv420p frames and its samples on disk, complete once ``finish`` returns."""

    def __init__(self, video: Path, *, width: int, height: int, fps: int, sample_rate: int) -> None:
        self.video, self.audio = spool_paths(video)
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self.frames_written = 0
        tag = secrets.token_hex(4)  # a stale one (kill -9) is removed by the runner's restart
        self._temps = (self.video.with_name(f".{self.video.name}.{tag}.tmp"),
                       self.audio.with_name(f".{self.audio.name}.{tag}.tmp"))
        self._chunks: list[np.ndarray] = []
        self._file = None

    def open(self, shape: MediaShape) -> None:
        if (shape.width, shape.height, shape.fps, shape.sample_rate) != (self.width, self.height, self.fps,
                                                                         self.sample_rate):
            raise ValueError(f"slot media {shape.width}x{shape.height} at {shape.fps} fps, {shape.sample_rate} Hz do not "
                             f"match the channel's {self.width}x{self.height} at {self.fps} fps, {self.sample_rate} Hz")
        self._file = open(self._temps[0], "wb")

    def write_audio(self, chunk: np.ndarray) -> None:
        self._chunks.append(np.array(chunk, dtype=np.float32, copy=True).reshape(-1))

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        if self._file is None:
            raise RuntimeError("write_frame before open (or after finish/abort)")
        if index != self.frames_written:
            raise ValueError(f"frames must arrive in order: expected frame {self.frames_written}, got {index}")
        expected = (self.height, self.width, 3)
        if frame.shape != expected:
            raise ValueError(f"frame {index}: expected shape {expected}, got {frame.shape}")
        self._file.write(to_yuv420p(frame).to_ndarray().tobytes())
        self.frames_written += 1

    def finish(self) -> None:
        """The slot's media are complete (still not aired: the appender encodes them once it airs)."""
        if self._file is None:
            raise RuntimeError("finish before open")
        if not self._chunks:
            raise ValueError("the slot has no audio: write_audio was never called")
        self._file.close()
        self._file = None
        np.clip(np.concatenate(self._chunks), -1.0, 1.0).astype("<f4").tofile(self._temps[1])
        self._chunks = []
        os.replace(self._temps[1], self.audio)  # the samples first: complete frames mean a complete spool
        os.replace(self._temps[0], self.video)

    def abort(self) -> None:
        """Drop the slot: nothing of it remains."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._chunks = []
        for path in self._temps:
            path.unlink(missing_ok=True)


def spool_frames(video: Path, width: int, height: int) -> Optional[int]:
    """The frames a complete spool holds, or None (missing, or not a whole number of frames)."""
    video, audio = spool_paths(video)
    try:
        size = video.stat().st_size
        audio.stat()
    except OSError:
        return None
    n, rest = divmod(size, frame_bytes(width, height))
    return n if n and not rest else None


def read_spool(video: Path, width: int, height: int) -> tuple[Iterator[av.VideoFrame], np.ndarray, int]:
    """(frames, waveform, n_frames) of a finished spool: yuv420p ``av.VideoFrame`` s lazily, the samples whole."""
    n = spool_frames(video, width, height)
    video, audio = spool_paths(video)
    if n is None:
        raise FileNotFoundError(f"no complete slot spool at {video} (and {audio.name}) for {width}x{height}")
    waveform = np.fromfile(audio, dtype="<f4").astype(np.float32, copy=False)

    def frames() -> Iterator[av.VideoFrame]:
        planes = np.memmap(video, dtype=np.uint8, mode="r", shape=(n, height * 3 // 2, width))
        try:
            for k in range(n):
                yield av.VideoFrame.from_ndarray(np.ascontiguousarray(planes[k]), format="yuv420p")
        finally:
            del planes  # unmap: the file may be deleted next

    return frames(), waveform, n


def read_mp4_slot(path: str | Path, *, rgb: bool = True) -> tuple[Iterator, np.ndarray, int]:
    """(frames, waveform, n_frames) of a slot MP4: frames lazily, the presented PCM whole.

    Frames are RGB arrays, or with ``rgb=False`` the decoded yuv420p ``av.VideoFrame`` s, which the
    channel's encoder takes as they are (at 512² that saves the two colour conversions, 3 ms a
    frame). The waveform is what a player presents: the mov demuxer drops the AAC priming, and the
    tail is cut at the track's duration (the last AAC frame is decoded whole, padding included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no slot MP4 at {path}")
    with av.open(str(path)) as container:
        if not container.streams.audio or not container.streams.video:
            raise ValueError(f"{path} needs one video and one audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        end = int(stream.duration * stream.time_base * rate) if stream.duration else None
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        n_frames = container.streams.video[0].frames
    waveform = np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)
    if end is not None:
        waveform = waveform[:end]

    def frames() -> Iterator[np.ndarray]:
        with av.open(str(path)) as video:
            for frame in video.decode(video.streams.video[0]):
                if not rgb:
                    yield frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p", threads=SWS_THREADS)
                    continue
                # Decode with the BT.709 limited-range matrix that vortex.media encodes with.
                yield frame.reformat(format="rgb24", src_colorspace=Colorspace.ITU709,
                                     src_color_range=ColorRange.MPEG, threads=SWS_THREADS).to_ndarray()

    return frames(), waveform, n_frames
