"""The channel's one encoder pair: x264 (H.264) + AAC, fed frame by frame and chunk by chunk.

Video pts is the global frame index and audio pts the global sample index (from the stream's
origin), so timestamps run on across slots; the only AAC priming (one 1024-sample frame, pts
-1024) is at the start of a run.

Low-latency settings (``tune=zerolatency``: no B-frames, no rate-control look-ahead, no macroblock
tree, sliced threads). A part can only be cut once the encoder has handed out its frames; with
x264's defaults at ``veryfast`` it holds 11 frames (458 ms at 24 fps), nearly a whole 0.5 s part.
x264 alone on a 12 s cpu-preview slot at 512², 2-core box at load 1.5 (benchmarks/bench_hls.py
--encoders --slot-mp4):

    veryfast, CRF 20, defaults (before)   1.19 ms/frame   11 frames held   234 kbps   PSNR-Y 46.1 dB
    veryfast, CRF 20, zerolatency         1.15 ms/frame    0 frames held   465 kbps   PSNR-Y 50.0 dB
    veryfast, CRF 25, zerolatency (now)   0.99 ms/frame    0 frames held   299 kbps   PSNR-Y 46.3 dB

Without the look-ahead and mb-tree, a CRF means a higher quality, so the channel's default CRF
moves from 20 to 25: the PSNR of before for 28% more bits, and no frame held back. The GOP is one
segment (an IDR forced at every segment start, no scene cuts), as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Optional

import av
import numpy as np
from av.video.frame import PictureType
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from ...media import _AVCOL_SPC_BT709, AUDIO_BITRATE, AUDIO_ENCODER, SWS_THREADS, VIDEO_ENCODER, YUV_INTERPOLATION

AAC_FRAME = 1024  # samples an AAC-LC frame holds; also the encoder's delay (priming)
DEFAULT_CRF = 25  # with zerolatency: the PSNR CRF 20 gave with x264's look-ahead (see the module note)
DEFAULT_PRESET = "veryfast"


@dataclass(frozen=True)
class Coded:
    """One encoded packet, timed in its encoder's units (frames or samples)."""

    data: bytes  # video: Annex B as x264 made it; audio: one raw AAC frame
    pts: int
    dts: int
    duration: int
    key: bool


class ChannelEncoder:
    """x264 + AAC for one run of the stream; ``encode_*`` return the packets that came out."""

    def __init__(self, *, width: int, height: int, fps: int, sample_rate: int, gop: int,
                 crf: int = DEFAULT_CRF, preset: str = DEFAULT_PRESET) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        video = av.CodecContext.create(VIDEO_ENCODER, "w")
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base, video.framerate = Fraction(1, fps), Fraction(fps)
        # A fixed GOP of one segment, no scene-cut IDRs; forced-idr turns our pict_type=I into an IDR.
        video.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency", "forced-idr": "1",
                         "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"}
        video.colorspace, video.color_primaries = _AVCOL_SPC_BT709, int(ColorPrimaries.BT709)
        video.color_trc, video.color_range = int(ColorTrc.BT709), int(ColorRange.MPEG)
        audio = av.CodecContext.create(AUDIO_ENCODER, "w")
        audio.sample_rate, audio.layout, audio.format = sample_rate, "mono", "fltp"
        audio.bit_rate, audio.time_base = AUDIO_BITRATE, Fraction(1, sample_rate)
        video.open()
        audio.open()
        self._video, self._audio = video, audio
        self.audio_bitrate = AUDIO_BITRATE

    def encode_frame(self, frame: np.ndarray | av.VideoFrame, index: int, *, idr: bool,
                     mark: Optional[Callable[..., av.VideoFrame]] = None) -> list[Coded]:
        """Frame ``index``: (H, W, 3) uint8 RGB, or a decoded yuv420p BT.709 ``av.VideoFrame`` (a slot
        MP4's, passed through: no RGB round trip); ``idr`` forces a keyframe (a segment start);
        ``mark`` adds the pixel watermark to the yuv frame (vortex.provenance.watermark.LumaMarker)."""
        yuv = frame if isinstance(frame, av.VideoFrame) else to_yuv420p(frame)
        if mark is not None:  # the caller's frame is never written to: a filler hands one frame over again
            yuv = mark(index, yuv, copy=yuv is frame)
        yuv.pts, yuv.time_base = index, Fraction(1, self.fps)
        # A decoded frame keeps its source's picture type: only segment starts may force an IDR.
        yuv.pict_type = PictureType.I if idr else PictureType.NONE
        return [_coded(p, 1) for p in self._video.encode(yuv)]

    def encode_audio(self, pcm: np.ndarray, first_sample: int) -> list[Coded]:
        """Float32 mono samples starting at global sample ``first_sample`` (PyAV re-frames them into 1024s)."""
        chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm, dtype=np.float32)[None, :], format="flt",
                                           layout="mono")
        chunk.sample_rate, chunk.time_base, chunk.pts = self.sample_rate, Fraction(1, self.sample_rate), first_sample
        return [_coded(p, AAC_FRAME) for p in self._audio.encode(chunk)]

    def flush_video(self) -> list[Coded]:
        return [_coded(p, 1) for p in self._video.encode(None)]

    def flush_audio(self) -> list[Coded]:
        return [_coded(p, AAC_FRAME) for p in self._audio.encode(None)]


def to_yuv420p(frame: np.ndarray) -> av.VideoFrame:
    """An (H, W, 3) uint8 RGB frame as the stream's yuv420p: the BT.709 matrix and limited range, as
    vortex.media encodes slots. Naming the transfer and primaries as well gave the same bytes at 3.5
    instead of 1.5 ms a frame (512², swscale)."""
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
        interpolation=YUV_INTERPOLATION, threads=SWS_THREADS)


def _coded(packet: av.Packet, default_duration: int) -> Coded:
    return Coded(bytes(packet), int(packet.pts), int(packet.dts), int(packet.duration or default_duration),
                 bool(packet.is_keyframe))
