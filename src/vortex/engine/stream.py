"""Step 5 of a slot: speech and frames flow into the sinks and the checks as they are made.

The slot's own thread runs this loop. Each chunk of speech, as soon as the voice has made it,
goes to the sinks (audio), the motion (which then has more frames final) and the speech check.
Frames are rendered in batches of the ring's size, at fixed positions (multiples of the ring), as
soon as their motion is final and the portrait is ready; the render queue works on the next batch
while this thread writes the last one into the sinks. Nothing waits for the whole speech unless
`pipeline.streaming` is off.

Each chunk is normalised to the slot's loudness target on its way to the sinks (a gain per
chunk, then a look-ahead true-peak limiter: vortex.program.loudness.StreamNormalizer); the
limiter holds its last 136 samples back until the next chunk (or the end), so the sinks and the
waveform get exactly the slot's samples, in place.
"""

from __future__ import annotations

import queue
from collections import deque
from concurrent.futures import Future
from typing import Any, Optional

import numpy as np

from ..phases import Phase
from ..program.loudness import StreamNormalizer
from .checks import FrameChecks, SpeechChecks
from .render import RenderJob, RenderQueue, SlotVideo
from .scheduling import TICK_S
from .sinks import SinkSet
from .slot import Slot

VOICE_DONE = object()  # the voice thread's last item
IN_FLIGHT_BATCHES = 2  # render jobs a slot keeps queued: one rendering while the last is written


class SlotStream:
    def __init__(self, slot: Slot, *, renderer: RenderQueue, media: SinkSet, motion: Any, speech: SpeechChecks,
                 waveform: np.ndarray, speech_samples: int, streaming: bool, turn, make_checks, on_actor,
                 loudness: StreamNormalizer):
        self.slot, self.renderer, self.media, self.motion = slot, renderer, media, motion
        self.loudness, self.audio_out = loudness, 0  # samples handed to the sinks so far
        self.speech, self.waveform, self.speech_samples = speech, waveform, speech_samples
        self.streaming, self.turn, self.make_checks, self.on_actor = streaming, turn, make_checks, on_actor
        p = slot.recipe.slot_params
        self.n_frames, self.fps = p.n_frames, p.fps
        self.checks: Optional[FrameChecks] = None

    def run(self, chunks: queue.Queue, actor: Future) -> FrameChecks:
        """Until the last frame is in the sinks; returns the frame checks (to be finished and judged)."""
        s, n, ring = self.slot, self.n_frames, self.renderer.capacity
        voice_done = False
        video: Optional[SlotVideo] = None
        submitted = sunk = 0
        jobs: deque[RenderJob] = deque()
        while sunk < n:
            s.token.raise_if_cancelled()
            s.wake.clear()
            progressed = False
            while not voice_done:  # (a) the speech made so far
                try:
                    item = chunks.get_nowait()
                except queue.Empty:
                    break
                progressed = True
                if isinstance(item, BaseException):
                    s.phase = Phase.VOICE.value
                    raise item
                if item is VOICE_DONE:
                    voice_done = True
                    self._end_of_speech()
                else:
                    self._take(item)
            if video is None and actor.done():  # (b) the portrait and the animator's source
                try:
                    portrait, video = actor.result()
                except BaseException:
                    s.phase = Phase.ACTOR.value
                    raise
                self.on_actor()
                self.checks = self.make_checks(portrait)
                self.media.add(self.checks)
                progressed = True
            # (c) frames whose motion is final, a ring's worth at a time
            while video is not None and (self.streaming or voice_done) and len(jobs) < IN_FLIGHT_BATCHES \
                    and submitted < n and self.motion.final_frames >= min(submitted + ring, n):
                stop = min(submitted + ring, n)
                self.turn()
                s.begin(Phase.VIDEO)
                with s.cpu.stage("motion"):
                    rows = self.motion.rows(submitted, stop)
                jobs.append(self.renderer.submit(video, submitted, rows, s.request.priority, wake=s.wake, cpu=s.cpu))
                submitted, progressed = stop, True
            while jobs and jobs[0].done.is_set():  # (d) rendered frames into the sinks, in order
                job = jobs.popleft()
                try:
                    frames = job.result(s.token)
                except BaseException:
                    s.phase = Phase.VIDEO.value
                    raise
                for i, frame in enumerate(frames):
                    self._sink(job.start + i, frame)
                sunk += len(frames)
                progressed = True
            if not progressed:
                s.wake.wait(TICK_S)
        s.end(Phase.VIDEO)
        return self.checks

    def _take(self, chunk: Any) -> None:
        s = self.slot
        if chunk.index == 0:
            s.first_audio_ms = s.elapsed_ms()
        self._out(chunk.audio, speech=True)
        if chunk.index == 0:
            s.emit("first_audio", Phase.VOICE.value, samples=len(chunk.audio),
                   seconds=round(len(chunk.audio) / self.speech.sample_rate, 3))
        with s.cpu.stage("motion"):
            self.motion.add_audio(chunk.audio)
        record = {"index": chunk.index, "of": len(self.speech.plan.chunks), "sentence": chunk.sentence,
                  "text": chunk.text, "start": chunk.start, "samples": len(chunk.audio),
                  "start_s": round(chunk.start / self.speech.sample_rate, 3),
                  "seconds": round(len(chunk.audio) / self.speech.sample_rate, 3),
                  "synth_ms": round(chunk.synth_ms, 1), "at_ms": round(s.elapsed_ms(), 1)}
        s.chunks.append(record)
        s.emit("chunk", Phase.VOICE.value, **record)
        if self.speech.active:
            s.begin(Phase.SPEECH_CHECK)
        self.speech.add(chunk)

    def _end_of_speech(self) -> None:
        padding = len(self.waveform) - self.speech_samples
        if padding > 0:  # the slot's silence after the speech
            self._out(np.zeros(padding, np.float32), speech=False)
        with self.slot.cpu.stage("loudness"):
            rest = self.loudness.finish()
        self._write(rest)
        with self.slot.cpu.stage("motion"):
            self.motion.finish_audio()

    def _out(self, audio: np.ndarray, speech: bool) -> None:
        with self.slot.cpu.stage("loudness"):
            out = self.loudness.process(audio, speech=speech)
        self._write(out)

    def _write(self, out: np.ndarray) -> None:
        if out.size:
            self.media.write_audio(out)
            self.waveform[self.audio_out:self.audio_out + out.size] = out
            self.audio_out += out.size

    def _sink(self, index: int, frame: np.ndarray) -> None:
        s = self.slot
        self.media.write_frame(index, frame)
        if index == 0:
            s.first_frame_ms = s.elapsed_ms()
            s.emit("first_frame", Phase.VIDEO.value)
        if (index + 1) % max(1, self.fps) == 0 or index + 1 == self.n_frames:
            s.emit("progress", Phase.VIDEO.value, frames=index + 1, total=self.n_frames)
