"""VRAM monitor limits, pre-allocated buffers, the frame ring's streaming, and the registry's errors."""

import logging
import threading
import time

import numpy as np
import pytest
import torch

from vortex.config import VortexConfig
from vortex.contracts.cancel import CancelToken, SlotCancelled
from vortex.engine.registry import ModelRegistry
from vortex.engine.render import RenderQueue, SlotVideo
from vortex.errors import MemoryPressureError, VortexInitializationError
from vortex.memory.buffers import SlotBuffers
from vortex.memory.monitor import VRAMMonitor
from vortex.memory.stats import GIB, format_bytes, module_bytes, vram_stats
from vortex.motion import DrivingSequence


class Reading:
    """A settable usage reading: the monitor's input on a machine with no GPU."""

    def __init__(self, gib: float = 0.0):
        self.bytes = int(gib * GIB)

    def __call__(self) -> int:
        return self.bytes


def test_monitor_below_soft_is_quiet(caplog):
    reading = Reading(10.0)
    mon = VRAMMonitor(11.0, 11.5, usage_fn=reading)
    with caplog.at_level(logging.WARNING, logger="vortex"):
        assert mon.check("x") == reading.bytes
    assert not mon.soft_warned and not caplog.records


def test_monitor_warns_once_above_soft(caplog):
    reading = Reading(11.2)
    mon = VRAMMonitor(11.0, 11.5, usage_fn=reading)
    with caplog.at_level(logging.WARNING, logger="vortex"):
        mon.check("a")
        mon.check("b")
    assert mon.soft_warned and len(caplog.records) == 1
    mon.reset_warning()
    with caplog.at_level(logging.WARNING, logger="vortex"):
        mon.check("c")
    assert len(caplog.records) == 2


def test_monitor_raises_above_hard():
    reading = Reading(11.6)
    mon = VRAMMonitor(11.0, 11.5, usage_fn=reading)
    with pytest.raises(MemoryPressureError, match=r"at voice.*11.60 GiB.*11.50 GiB"):
        mon.check("voice")
    reading.bytes = int(11.4 * GIB)
    mon.check("recovered")  # not latched: pressure is a reading, not a state


def test_monitor_limits_are_validated_and_cpu_is_inactive():
    with pytest.raises(ValueError):
        VRAMMonitor(12.0, 11.5, usage_fn=Reading())
    mon = VRAMMonitor(11.0, 11.5, device="cpu")
    assert not mon.active and mon.check() == 0


def test_stats_helpers():
    assert vram_stats("cpu").total == 0
    assert format_bytes(3 * GIB) == "3.00 GiB" and format_bytes(1536) == "1.50 KiB" and format_bytes(12) == "12 B"
    lin = torch.nn.Linear(10, 4)
    assert module_bytes(lin) == (10 * 4 + 4) * 4
    q = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(64, 32)), {torch.nn.Linear}, dtype=torch.qint8)
    assert 64 * 32 <= module_bytes(q) < 64 * 32 * 2  # int8 weights, counted though they are not parameters


def test_buffers_are_sized_by_config_and_reused():
    cfg = VortexConfig.load().buffers
    buf = SlotBuffers.allocate(cfg, "cpu", crop_size=512)
    assert buf.frame_ring.shape == (cfg.video.ring_frames, 3, 512, 512)
    assert buf.crop_ring.shape == (cfg.video.ring_frames, 3, 512, 512)
    assert buf.frame_ring.shape[0] < cfg.video.max_frames  # a ring, never the whole slot
    assert buf.nbytes == 2 * cfg.video.ring_frames * 3 * 512 * 512
    assert SlotBuffers.allocate(cfg, "cpu").crop_ring is None  # no framing, no crops


class CountingAnimator:
    """Renders frame i of a stream as the value (stream + i) % 251: order, completeness and which
    stream a frame belongs to can be read back from its pixels."""

    name = "counting"
    crops_face = False
    needs_landmarks = False

    def __init__(self, batches_streams: bool):
        self.batches_streams = batches_streams
        self.calls: list[list[int]] = []  # the streams of each call
        self.thread = None
        self.gate = threading.Event()
        self.gate.set()

    def render(self, source, driving, out):
        self.render_many([(source, driving, out)])

    def render_many(self, items):
        self.gate.wait(30)
        self.thread = threading.current_thread()
        self.calls.append([source for source, _, _ in items])
        for source, driving, out in items:
            first = int(driving.rotation_delta[0, 0])  # the test writes the first frame's index there
            for j in range(out.shape[0]):
                out[j].fill_((source + first + j) % 251)


def _rows(start: int, n: int) -> DrivingSequence:
    rotation = np.zeros((n, 3), np.float32)
    rotation[0, 0] = start
    return DrivingSequence(fps=24, exp_delta=np.zeros((n, 21, 3), np.float32), rotation_delta=rotation,
                           translation_delta=np.zeros((n, 3), np.float32), scale_factor=np.ones(n, np.float32),
                           mouth_open=np.zeros(n, np.float32), eye_open=np.ones(n, np.float32))


def _queue(animator, frames=8, batch_streams=True) -> RenderQueue:
    ring = torch.zeros(frames, 3, 8, 8, dtype=torch.uint8)
    return RenderQueue(ring, None, batch_streams)


def _video(animator, stream: int) -> SlotVideo:
    return SlotVideo(animator, stream, None, torch.zeros(3, 8, 8, dtype=torch.uint8))


def test_the_render_queue_renders_in_its_own_thread_into_host_frames():
    animator = CountingAnimator(batches_streams=False)
    queue = _queue(animator, frames=4)
    try:
        token = CancelToken()
        jobs = [queue.submit(_video(animator, 0), start, _rows(start, 4), 2) for start in (0, 4, 8)]
        frames = np.concatenate([job.result(token) for job in jobs])
        assert frames.shape == (12, 8, 8, 3) and frames.flags.c_contiguous
        assert [int(f[0, 0, 0]) for f in frames] == list(range(12))
        assert animator.thread is not threading.current_thread()
        with pytest.raises(ValueError, match="at most 4 frames"):
            queue.submit(_video(animator, 0), 0, _rows(0, 5), 2)
    finally:
        queue.close()


def test_the_render_queue_serves_the_higher_priority_first_and_batches_streams():
    animator = CountingAnimator(batches_streams=True)
    queue = _queue(animator, frames=8)
    try:
        animator.gate.clear()  # hold the worker on the first job while the others queue up
        first = queue.submit(_video(animator, 100), 0, _rows(0, 2), 2)
        time.sleep(0.2)
        job_a = queue.submit(_video(animator, 0), 0, _rows(0, 4), 2)  # a job's stream
        live = queue.submit(_video(animator, 50), 0, _rows(0, 4), 0)  # a live stream: first
        job_b = queue.submit(_video(animator, 10), 0, _rows(0, 4), 2)  # does not fit beside the two
        animator.gate.set()
        token = CancelToken()
        for job in (first, job_a, live, job_b):
            job.result(token)
        assert animator.calls == [[100], [50, 0], [10]]  # live first, a job's frames in the same call
        assert int(live.frames[1, 0, 0, 0]) == 51 and int(job_a.frames[3, 0, 0, 0]) == 3
        assert queue.streams_batched == 2
    finally:
        queue.close()


def test_a_render_error_reaches_the_slot_and_a_cancelled_slot_stops_waiting():
    class Broken(CountingAnimator):
        def render_many(self, items):
            raise RuntimeError("boom")

    animator = Broken(batches_streams=False)
    queue = _queue(animator)
    try:
        job = queue.submit(_video(animator, 0), 0, _rows(0, 2), 2)
        with pytest.raises(RuntimeError, match="boom"):
            job.result(CancelToken())
        waiting = CountingAnimator(batches_streams=False)
        waiting.gate.clear()
        job = queue.submit(_video(waiting, 0), 0, _rows(0, 2), 2)
        token = CancelToken()
        token.cancel("deadline")
        with pytest.raises(SlotCancelled):
            job.result(token)
        waiting.gate.set()
    finally:
        queue.close()


def test_registry_get_model_and_unknown_name():
    reg = ModelRegistry.load(VortexConfig.load(), loaders={"tiny": lambda loaded: torch.nn.Linear(2, 2)})
    assert isinstance(reg.get_model("tiny"), torch.nn.Linear) and reg.names == ["tiny"]
    with pytest.raises(KeyError, match="no component named 'flux'; loaded: tiny"):
        reg.get_model("flux")


def test_registry_turns_out_of_memory_into_a_remedy():
    def oom(loaded):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    cfg = VortexConfig.load(profile="rtx3060-12gb")
    with pytest.raises(VortexInitializationError, match=r"out of GPU memory while loading 'flux'.*vortex plan --profile rtx3060-12gb"):
        ModelRegistry.load(cfg, loaders={"kokoro": lambda loaded: object(), "flux": oom})


def test_quiet_libraries_silences_bitsandbytes_notices_not_errors():
    """bitsandbytes logs "Failed to load CPU gemm_4bit_forward from kernels-community" as a warning
    on import (CPUs with AVX512-BF16, no `kernels` package); the CLI's quiet_libraries drops it."""
    import subprocess
    import sys

    pytest.importorskip("bitsandbytes")
    loud = subprocess.run([sys.executable, "-c", "import bitsandbytes"], capture_output=True, text=True, timeout=120)
    quiet = subprocess.run([sys.executable, "-c", (
        "import logging; from vortex.logs import quiet_libraries; quiet_libraries(); import bitsandbytes; "
        "log = logging.getLogger('bitsandbytes.backends.cpu.ops'); "
        "print(log.isEnabledFor(logging.WARNING), log.isEnabledFor(logging.ERROR), "
        "logging.getLogger('vortex').isEnabledFor(logging.WARNING))")], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == ["False", "True", "True"]
    if "kernels-community" in loud.stderr:  # this machine shows the notice: it must be gone
        assert "kernels-community" not in quiet.stderr
    assert quiet.stderr.strip() == ""
