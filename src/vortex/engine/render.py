"""The video track: frames rendered in small batches into the device ring buffer, copied to the
host and handed to an encoder thread, so encoding overlaps rendering and no slot ever holds
its whole video on the device."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Protocol

import numpy as np
import torch

from .cancel import CancelToken
from .sinks import FrameSink, MediaShape, open_all

_DONE = object()


class VideoTrack(Protocol):
    name: str  # written in the result as `animation`

    def render(self, start: int, out: torch.Tensor) -> None:
        """Fill `out` (B, 3, H, W) uint8, on the ring's device, with frames start .. start+B-1."""


class StillTrack:
    """The actor portrait held still: the video track until the animation stage lands."""

    name = "still"

    def __init__(self, actor: torch.Tensor):
        self.actor = actor  # (3, H, W) uint8, the pre-allocated actor buffer

    def render(self, start: int, out: torch.Tensor) -> None:
        out.copy_(self.actor.unsqueeze(0).expand_as(out))


def stream_frames(
    track: VideoTrack,
    n_frames: int,
    ring: torch.Tensor,
    sink: Callable[[int, np.ndarray], None],
    cancel: CancelToken | None = None,
) -> None:
    """Render `n_frames` through `ring` and call `sink(index, frame HWC uint8)` for each, in order,
    from a second thread. Returns when every frame has been sunk; re-raises the sink's error."""
    batches: queue.Queue = queue.Queue(maxsize=2)  # back-pressure: render at most 2 batches ahead
    failure: list[BaseException] = []

    def encode() -> None:
        try:
            while (item := batches.get()) is not _DONE:
                start, frames = item
                for i, frame in enumerate(frames):
                    sink(start + i, frame)
        except BaseException as exc:  # noqa: BLE001 - handed to the rendering thread
            failure.append(exc)
            while batches.get() is not _DONE:  # drain so the renderer never blocks on a dead consumer
                pass

    consumer = threading.Thread(target=encode, name="vortex-encode", daemon=True)
    consumer.start()
    try:
        batch = ring.shape[0]
        for start in range(0, n_frames, batch):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if failure:
                break
            view = ring[: min(batch, n_frames - start)]
            track.render(start, view)
            # An explicit copy (a no-op .cpu() on a CPU ring would alias it): the ring slot is free again.
            batches.put((start, view.permute(0, 2, 3, 1).to("cpu", copy=True).numpy()))
    finally:
        batches.put(_DONE)
        consumer.join()
    if failure:
        raise failure[0]


def render_into_sinks(track: VideoTrack, shape: MediaShape, waveform: np.ndarray, sinks: list[FrameSink],
                      ring: torch.Tensor, cancel: CancelToken | None = None,
                      on_frame: Callable[[int], None] | None = None) -> None:
    """One slot's media into every sink: the audio, then each frame in order (the encoder thread
    writes while the next batch renders). All sinks finish, or all are aborted."""
    opened = open_all(sinks, shape, waveform)

    def sink(i: int, frame: np.ndarray) -> None:
        for s in opened:
            s.write_frame(i, frame)
        if on_frame is not None:
            on_frame(i)

    try:
        stream_frames(track, shape.n_frames, ring, sink, cancel)
        for s in opened:
            s.finish()
    except BaseException:
        for s in opened:
            s.abort()
        raise


class FramedTrack:
    """An animator's track that renders the framed face crop, pasted back into the whole portrait
    (vortex.faces.Framing): only the head moves; pixels away from it are the portrait's, exactly."""

    def __init__(self, inner: VideoTrack, framing, portrait: torch.Tensor):
        self.inner = inner
        self.name = inner.name
        self.framing = framing
        self.portrait = portrait  # (3, H, W) uint8 on the ring's device: the pre-allocated actor buffer
        self._crops: torch.Tensor | None = None

    def render(self, start: int, out: torch.Tensor) -> None:
        s = self.framing.crop_size
        if self._crops is None or self._crops.shape[0] < out.shape[0] or self._crops.device != out.device:
            self._crops = torch.empty((out.shape[0], 3, s, s), dtype=torch.uint8, device=out.device)
        crops = self._crops[: out.shape[0]]
        self.inner.render(start, crops)
        out.copy_(self.framing.paste_back(crops, self.portrait))
