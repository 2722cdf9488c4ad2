"""A live insert's delay line: its media as the engine makes them, released to air chunk by chunk,
each chunk only once its checks said it may air.

Live television airs live speech through a short delay so that what must not air can be cut.
Here the engine makes the insert at live priority and judges every chunk of speech as soon as it
can (`Priority.LIVE`: each sentence heard in its own window, one frame's identity); this sink
holds the chunk's frames and audio meanwhile. A chunk that passed airs as made; a chunk that
failed airs as the stand-by card with silence, for exactly its duration, so the stream has no gap
and the failure is recorded with what was heard.

Time is the slot's own: chunk k covers samples [start_k, start_k+1) (the first from 0, the last to
the slot's end, its silence included) and the frames whose first sample falls there. The engine's
events say where each chunk lies (`chunk`) and its verdicts (`chunk_checked` for the speech of one
or more sentences, `frame_checked` for the identity of one frame of the chunk); `take` hands the
appender the next frames and samples whose verdicts are known.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..contracts.requests import SlotEvent
from ..contracts.sinks import MediaShape

OPEN_END = 1 << 62  # the last chunk runs to the insert's end, its silence included


@dataclass
class ChunkVerdict:
    index: int
    sentence: int
    start: int  # its first sample in the insert
    end: int  # where the next chunk starts (the last chunk: the end of the insert, its silence included)
    text: str
    speech: Optional[bool] = None  # None: not heard yet
    identity: Optional[bool] = None  # None: its frame not measured yet (True where not enforced)
    heard: str = ""
    wer: Optional[float] = None
    made_at: float = 0.0  # monotonic: its speech was made
    synth_s: Optional[float] = None  # its voice call's own time (the rest of made_at: waiting, planning)
    judged_at: Optional[float] = None  # monotonic: its last verdict came in

    @property
    def decided(self) -> bool:
        return self.speech is not None and self.identity is not None

    @property
    def passed(self) -> bool:
        return bool(self.speech) and bool(self.identity)

    def summary(self, origin: float) -> dict[str, Any]:
        state = "pending" if not self.decided else "aired" if self.passed else "replaced"
        return {"chunk": self.index, "sentence": self.sentence, "text": self.text, "state": state,
                "samples": [self.start, None if self.end >= OPEN_END else self.end],  # its span of the insert's audio
                "made_after_s": round(self.made_at - origin, 3),  # the request → its speech made
                "synth_s": self.synth_s,
                # its speech made → both verdicts in: what the checks add to the delay line
                "judged_after_s": None if self.judged_at is None else round(self.judged_at - self.made_at, 3),
                "speech_passed": self.speech, "identity_passed": self.identity, "wer": self.wer, "heard": self.heard}


@dataclass
class Released:
    frames: list[np.ndarray]
    audio: np.ndarray
    replaced: list[int] = field(default_factory=list)  # chunks aired as the stand-by card


class DelayLine:
    """A `FrameSink` for a live insert, and its `on_event` callback; `take` is the air side."""

    def __init__(self, standby_frame: np.ndarray, *, identity_enforced: bool = True, origin: Optional[float] = None):
        self.standby_frame = standby_frame
        self.origin = time.monotonic() if origin is None else origin  # monotonic: the insert was asked for
        self.identity_enforced = identity_enforced
        self.shape: Optional[MediaShape] = None
        self.chunks: list[ChunkVerdict] = []
        self._frames: list[Optional[np.ndarray]] = []  # made, not yet released (None once released)
        self._audio = np.zeros(0, np.float32)
        self._audio_from = 0  # sample index of _audio[0]
        self.frames_released = 0
        self.samples_released = 0
        self._drop_frames = 0  # frames already aired as the card (`skip`) that the engine has not made yet
        self._drop_samples = 0
        self.late: set[int] = set()  # chunks that aired as the card because they were not judged in time
        self.finished = False  # the slot ended: success or not, nothing more will come
        self.failed: Optional[str] = None
        self.first_frame_at: Optional[float] = None  # monotonic: the engine's first frame came in
        self._lock = threading.Lock()

    # -- the engine's side: a FrameSink ------------------------------------------------------------
    def open(self, shape: MediaShape) -> None:
        self.shape = shape

    def write_audio(self, chunk: np.ndarray) -> None:
        with self._lock:
            chunk = np.asarray(chunk, np.float32)
            dropped = min(self._drop_samples, len(chunk))
            self._drop_samples -= dropped
            self._audio = np.concatenate([self._audio, chunk[dropped:]])

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        with self._lock:
            if self._drop_frames:
                self._drop_frames -= 1
                return
            self._frames.append(frame)
            if self.first_frame_at is None:
                self.first_frame_at = time.monotonic()

    def finish(self) -> None:
        with self._lock:
            self.finished = True

    def abort(self) -> None:
        """The insert failed as a whole (cancelled, out of time, its final checks): what was not
        released airs as the stand-by card; what already aired stays aired."""
        with self._lock:
            self.finished = True
            self.failed = self.failed or "the insert failed"
            for c in self.chunks:
                if not c.decided:
                    c.speech = c.speech if c.speech is not None else False
                    c.identity = c.identity if c.identity is not None else False

    def on_event(self, event: SlotEvent) -> None:
        d = event.data
        with self._lock:
            if event.kind == "chunk":
                last = d["index"] + 1 == d["of"]
                start = 0 if d["index"] == 0 else d["start"]  # the first covers the insert's start
                self.chunks.append(ChunkVerdict(d["index"], d["sentence"], start,
                                                OPEN_END if last else d["start"] + d["samples"], d["text"],
                                                made_at=time.monotonic(),
                                                synth_s=None if d.get("synth_ms") is None else round(d["synth_ms"] / 1000, 3)))
                if not self.identity_enforced:
                    self.chunks[-1].identity = True
            elif event.kind == "chunk_checked":
                for c in self.chunks:
                    if c.sentence in d["sentences"]:
                        c.speech, c.wer, c.heard = bool(d["passed"]), d.get("wer"), d.get("heard", "")
            elif event.kind == "frame_checked":
                for c in self.chunks:
                    if c.index == d["chunk"]:
                        c.identity = bool(d["passed"]) or not d.get("enforced", True)
            if event.kind in ("chunk_checked", "frame_checked"):
                for c in self.chunks:
                    if c.decided and c.judged_at is None:
                        c.judged_at = time.monotonic()
            if event.kind == "phase_failed":
                self.failed = d.get("error") or "the insert failed"

    # -- the air side ------------------------------------------------------------------------------
    def decided_frames(self) -> int:
        """Frames (from the first) that are made and whose chunk has its verdicts: what `take` may
        release. A frame belongs to the chunk its first sample falls in."""
        with self._lock:
            return self._decided_frames()

    def _decided_frames(self) -> int:
        s = self.shape
        if s is None:
            return 0
        made = self.frames_released + len(self._frames)
        undecided = next((c for c in self.chunks if not c.decided), None)
        if undecided is not None:
            limit = self._first_frame_at(undecided.start)
        elif self.chunks and self.chunks[-1].end >= 1 << 62:  # every chunk known and decided
            limit = made
        else:  # the next chunk is not made yet: frames up to its start
            limit = self._first_frame_at(self.chunks[-1].end if self.chunks else 0)
        return min(made, limit)

    def _first_frame_at(self, sample: int) -> int:
        """The first frame whose first sample is at or after `sample`."""
        s = self.shape
        return -(-sample * s.fps // s.sample_rate)

    def take(self, n_frames: int) -> Released:
        """Up to `n_frames` more decided frames, and the samples they span; a failed chunk's frames
        are the stand-by card and its samples silence."""
        with self._lock:
            n = min(n_frames, self._decided_frames() - self.frames_released)
            if n <= 0:
                return Released([], np.zeros(0, np.float32))
            s = self.shape
            first = self.frames_released
            frames, replaced = [], []
            for i in range(first, first + n):
                chunk = self._chunk_at(-(-i * s.sample_rate // s.fps))
                frame = self._frames[i - first]
                if chunk is not None and not chunk.passed:
                    frame = self.standby_frame
                    if chunk.index not in replaced:
                        replaced.append(chunk.index)
                frames.append(frame)
            del self._frames[:n]
            self.frames_released += n
            end = min(self.frames_released * s.sample_rate // s.fps, self._audio_from + len(self._audio))
            audio = self._audio[: end - self._audio_from].copy()
            for k in replaced:  # silence where the stand-by card airs
                c = self.chunks[k]
                a = max(c.start, self.samples_released) - self.samples_released
                b = min(c.end, end) - self.samples_released
                if b > a:
                    audio[a:b] = 0.0
            self._audio = self._audio[end - self._audio_from:]
            self._audio_from = end
            self.samples_released = end
            return Released(frames, audio, replaced)

    def skip(self, n_frames: int) -> Released:
        """The next `n_frames` air as the card with silence whatever comes: their time has come and
        their chunk is not judged (or not made). Frames and samples of theirs made later are dropped."""
        with self._lock:
            s = self.shape
            first = self.frames_released
            made = min(len(self._frames), n_frames)
            del self._frames[:made]
            self._drop_frames += n_frames - made
            self.frames_released += n_frames
            end = self.frames_released * s.sample_rate // s.fps
            have = self._audio_from + len(self._audio)
            keep_from = min(end, have) - self._audio_from
            self._audio, self._audio_from = self._audio[keep_from:], self._audio_from + keep_from
            self._drop_samples += max(0, end - have)
            self._audio_from = max(self._audio_from, end)
            for i in (first, first + n_frames - 1):
                chunk = self._chunk_at(-(-i * s.sample_rate // s.fps))
                if chunk is not None and not chunk.decided:
                    self.late.add(chunk.index)
            out = Released([self.standby_frame] * n_frames, np.zeros(end - self.samples_released, np.float32), [])
            self.samples_released = end
            return out

    def _chunk_at(self, sample: int) -> Optional[ChunkVerdict]:
        return next((c for c in self.chunks if c.start <= sample < c.end), None)

    def status(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{**c.summary(self.origin), "late": c.index in self.late} for c in self.chunks]
