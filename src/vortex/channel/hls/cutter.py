"""Cut the encoders' packets into LL-HLS parts and segments at fixed frame boundaries.

Boundaries count from the run's origin frame: a part every ``part_frames`` (12 at 24 fps and 0.5
s), a segment every ``segment_frames`` (48), so a segment is a whole number of parts and its first
part starts on the IDR the writer forces there (INDEPENDENT=YES).

A part [start, end) is complete when the video encoder has handed out frame ``end - 1`` (x264 runs
without B-frames, so packets come in frame order) *and* the AAC encoder every frame that starts
before ``end``'s sample. The AAC encoder hands out the frame at sample s once it was fed up to
about s + 3072 (measured: 1024 priming + two frames of look-ahead), so a part's audio is complete
some 2048-3072 samples (85-128 ms at 24 kHz) after its end. Each part takes the AAC frames that
start inside it (the first part of a run also the priming frame); ``finish`` gives the last,
shorter part the tail.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .encoder import Coded


@dataclass(frozen=True)
class CutPart:
    start: int  # global frame index of its first frame
    end: int  # after its last frame
    video: list[Coded]
    audio: list[Coded]
    segment_start: bool  # the first part of a segment (starts with the forced IDR)
    segment_end: bool  # the last part of a segment (or of the stream)


class PartCutter:
    def __init__(self, *, origin: int, fps: int, sample_rate: int, part_frames: int, segment_frames: int) -> None:
        if segment_frames % part_frames:
            raise ValueError(f"a segment of {segment_frames} frames is not a whole number of {part_frames}-frame parts")
        self.origin, self.fps, self.sample_rate = origin, fps, sample_rate
        self.part_frames, self.segment_frames = part_frames, segment_frames
        self._start = origin  # the next part to cut starts here
        self._video: deque[Coded] = deque()
        self._audio: deque[Coded] = deque()
        self._video_next = origin  # the frame after the last video packet handed in
        self._audio_next = origin * sample_rate // fps - 1024  # the start of the next AAC frame to come
        self._finished = False
        self._cuts = [origin]  # the run's origin, then forced segment starts (force_segment), ascending

    def is_segment_start(self, frame: int) -> bool:
        return (frame - self._grid(frame)) % self.segment_frames == 0

    def force_segment(self, frame: int) -> None:
        """Start a segment (and its IDR) at ``frame``, not yet handed to the encoder: an item's first
        frame (a slot, an insert, a break), so its marker and a splice fall on a segment boundary
        (SCTE-35 segment conditioning). The part and segment grid counts on from there."""
        if frame < self._video_next:
            raise RuntimeError(f"frame {frame} was already encoded (next: {self._video_next}): too late to cut there")
        if frame > self._cuts[-1] and not self.is_segment_start(frame):
            self._cuts.append(frame)

    def _grid(self, frame: int) -> int:
        """Where the part/segment grid in force at ``frame`` started: the run's origin or the last forced cut."""
        cuts = self._cuts
        while len(cuts) > 1 and cuts[1] <= min(frame, self._start):
            cuts.pop(0)  # cuts behind the next part to cut are not asked about again
        return next((c for c in reversed(cuts) if c <= frame), cuts[0])

    def add_video(self, packets: list[Coded]) -> None:
        for p in packets:
            if p.pts != self._video_next or p.dts != p.pts:
                raise RuntimeError(f"video packet pts {p.pts} dts {p.dts}: expected frame {self._video_next} in order "
                                   "(the encoder must run without B-frames)")
            if self.is_segment_start(p.pts) and not p.key:
                raise RuntimeError(f"the encoder did not make frame {p.pts} (a segment start) a keyframe")
            self._video.append(p)
            self._video_next = p.pts + 1

    def add_audio(self, packets: list[Coded]) -> None:
        for p in packets:
            self._audio.append(p)
            self._audio_next = p.pts + p.duration

    def ready(self) -> list[CutPart]:
        """The parts complete now, in order."""
        out = []
        while True:
            end = self._part_end(self._start)
            if self._video_next < end or self._audio_next < self._sample(end):
                return out
            out.append(self._cut(end, last=False))

    def finish(self) -> list[CutPart]:
        """After both encoders were flushed: every part left, the last one ending where the video ends."""
        out = []
        while self._start < self._video_next:
            end = min(self._part_end(self._start), self._video_next)
            out.append(self._cut(end, last=end == self._video_next))
        self._audio.clear()  # AAC frames that start after the video's end hold no presented sample
        return out

    @property
    def frames_cut(self) -> int:
        """Global frame index after the last frame of the last part cut."""
        return self._start

    def _part_end(self, start: int) -> int:
        end = start + self.part_frames - (start - self._grid(start)) % self.part_frames
        return min([end] + [c for c in self._cuts if c > start])  # a forced cut ends the part before it

    def _sample(self, frame: int) -> int:
        return frame * self.sample_rate // self.fps

    def _cut(self, end: int, *, last: bool) -> CutPart:
        video = []
        while self._video and self._video[0].pts < end:
            video.append(self._video.popleft())
        end_sample, audio = self._sample(end), []
        while self._audio and (self._audio[0].pts < end_sample or last):
            audio.append(self._audio.popleft())
        part = CutPart(self._start, end, video, audio, self.is_segment_start(self._start),
                       last or self.is_segment_start(end))
        self._start = end
        return part
