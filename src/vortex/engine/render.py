"""Frames: one render queue per engine, serving every slot in flight by priority.

A slot asks for a batch of frames (at most the ring's size) once their motion is final; the
queue's one thread renders them into the device ring buffer (the face crops into a crop ring,
then pasted back into the whole portrait), copies them to the host, and hands them back, while the
slot's own thread writes the previous batch into its sinks. No slot ever holds its video on the
device, and the ring is the only frame memory the device keeps.

Batching across streams: where the animator renders batches (`batches_streams`: LivePortrait),
the queue takes the highest-priority job and then others of the same animator, in priority
order, until the ring is full, and renders them in one `render_many` call (one W + G call per
`batch_frames` frames, whichever portraits). On a GPU this is how several channels share one
card; on the CPU the preview renders frame by frame and gains nothing from it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from ..contracts.cancel import CancelToken
from ..motion import DrivingSequence
from .components import Animator
from .cpu import CpuLedger
from .scheduling import TICK_S

log = logging.getLogger("vortex.engine")


@dataclass(frozen=True)
class SlotVideo:
    """What one slot renders: the animator's source state, the framing, and the whole portrait."""

    animator: Animator
    source: Any
    framing: Any  # vortex.faces.Framing, or None: the animator's frames are the whole picture
    portrait: torch.Tensor  # (3, H, W) uint8 on the render device

    @property
    def name(self) -> str:
        return self.animator.name

    @property
    def pasted(self) -> bool:
        return self.framing is not None and self.animator.crops_face


@dataclass(eq=False)
class RenderJob:
    video: SlotVideo
    start: int  # the first frame's index in the slot
    driving: DrivingSequence  # the rows of frames start .. start+count-1
    priority: int
    seq: int
    wake: Optional[threading.Event] = None  # set too when the job is done (the slot's thread waits on it)
    cpu: Optional[CpuLedger] = None  # the slot's: the render's and the paste-back's CPU seconds
    done: threading.Event = field(default_factory=threading.Event)
    frames: Optional[np.ndarray] = None  # (count, H, W, 3) uint8 on the host, once done
    error: Optional[BaseException] = None

    @property
    def count(self) -> int:
        return self.driving.n_frames

    def result(self, token: CancelToken) -> np.ndarray:
        """The rendered frames; raises SlotCancelled if the slot is cancelled (or out of time) first."""
        while not self.done.wait(TICK_S):
            token.raise_if_cancelled()
        if self.error is not None:
            raise self.error
        return self.frames


class RenderQueue:
    def __init__(self, ring: torch.Tensor, crop_ring: Optional[torch.Tensor], batch_streams: bool):
        self.ring = ring  # (R, 3, H, W) uint8
        self.crop_ring = crop_ring  # (R, 3, S, S) uint8, where faces are framed
        self.batch_streams = batch_streams
        self.batches = 0  # render calls made (a batch across streams counts once)
        self.jobs_rendered = 0
        self.streams_batched = 0  # jobs that shared a call with another stream's
        self._jobs: list[RenderJob] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="vortex-render", daemon=True)
        self._thread.start()

    @property
    def capacity(self) -> int:
        return self.ring.shape[0]

    def submit(self, video: SlotVideo, start: int, driving: DrivingSequence, priority: int,
               wake: Optional[threading.Event] = None, cpu: Optional[CpuLedger] = None) -> RenderJob:
        if driving.n_frames > self.capacity:
            raise ValueError(f"a render job holds at most {self.capacity} frames (buffers.video.ring_frames), "
                             f"got {driving.n_frames}")
        job = RenderJob(video, start, driving, int(priority), next(self._seq), wake, cpu)
        with self._cond:
            if self._closed:
                raise RuntimeError("the render queue is closed")
            self._jobs.append(job)
            self._cond.notify()
        return job

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for job in self._jobs:
                job.error = RuntimeError("the engine closed")
                _done(job)
            self._jobs.clear()
            self._cond.notify_all()
        self._thread.join(timeout=60)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch = self._take()
            try:
                self._render(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to every slot in the batch
                for job in batch:
                    job.error = exc
            finally:
                for job in batch:
                    _done(job)

    def _take(self) -> list[RenderJob]:
        """The highest-priority job, and (batching) more of the same animator that fit the ring."""
        self._jobs.sort(key=lambda j: (j.priority, j.seq))
        first = self._jobs.pop(0)
        batch, room = [first], self.capacity - first.count
        if self.batch_streams and first.video.animator.batches_streams:
            for job in list(self._jobs):
                if job.video.animator is first.video.animator and job.count <= room \
                        and job.video.pasted == first.video.pasted:
                    batch.append(job)
                    self._jobs.remove(job)
                    room -= job.count
        return batch

    @torch.inference_mode()
    def _render(self, batch: list[RenderJob]) -> None:
        offset, items = 0, []
        for job in batch:
            views = self.crop_ring if job.video.pasted else self.ring
            items.append((job.video.source, job.driving, views[offset:offset + job.count]))
            offset += job.count
        animator = batch[0].video.animator
        started = time.thread_time()
        if len(items) > 1:
            animator.render_many(items)
            self.streams_batched += len(items)
        else:
            animator.render(*items[0])
        self.batches += 1
        self.jobs_rendered += len(batch)
        spent, frames = time.thread_time() - started, sum(job.count for job in batch)
        offset = 0
        for job, (_, _, rendered) in zip(batch, items):
            if job.cpu is not None:  # a call shared by several streams: each pays for its frames
                job.cpu.add("render", spent * job.count / frames)
            started = time.thread_time()
            out = self.ring[offset:offset + job.count]
            if job.video.pasted:
                out.copy_(job.video.framing.paste_back(rendered, job.video.portrait))
            # One contiguous (B, H, W, 3) copy on the host: the ring is free again, and every sink
            # (encoder, hash, checks) reads the frames without a strided copy of its own.
            job.frames = out.permute(0, 2, 3, 1).contiguous().cpu().numpy()
            if job.cpu is not None:
                job.cpu.add("paste-back", time.thread_time() - started)
            offset += job.count


def _done(job: RenderJob) -> None:
    job.done.set()
    if job.wake is not None:
        job.wake.set()
