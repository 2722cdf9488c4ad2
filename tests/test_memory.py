"""VRAM monitor limits, pre-allocated buffers, the frame ring's streaming, and the registry's errors."""

import logging
import threading

import numpy as np
import pytest
import torch

from vortex.engine.cancel import CancelToken, SlotCancelled
from vortex.config import BuffersConfig, VortexConfig
from vortex.errors import MemoryPressureError, VortexInitializationError
from vortex.memory.buffers import SlotBuffers
from vortex.memory.monitor import VRAMMonitor
from vortex.memory.stats import GIB, format_bytes, module_bytes, vram_stats
from vortex.models.registry import ModelRegistry
from vortex.engine.render import StillTrack, stream_frames


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
    buf = SlotBuffers.allocate(cfg, "cpu")
    assert buf.actor.shape == (3, 512, 512) and buf.audio.shape == (1_080_000,)
    assert buf.frame_ring.shape == (cfg.video.ring_frames, 3, 512, 512)
    assert buf.frame_ring.shape[0] < cfg.video.max_frames  # a ring, never the whole slot
    ptrs = buf.data_ptrs()
    img = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    assert torch.equal(buf.load_actor(img).permute(1, 2, 0), torch.from_numpy(img))
    wave = np.linspace(-1, 1, 48000, dtype=np.float32)
    assert torch.equal(buf.load_audio(wave), torch.from_numpy(wave))
    assert buf.data_ptrs() == ptrs
    with pytest.raises(ValueError, match="exceeds"):
        buf.load_audio(np.zeros(1_080_001, np.float32))
    with pytest.raises(ValueError, match=r"\(512, 512, 3\) uint8"):
        buf.load_actor(np.zeros((256, 256, 3), np.uint8))


class CountingTrack:
    """A track whose frame i is filled with the value i % 251, to check order and completeness."""

    name = "counting"

    def __init__(self):
        self.thread = None

    def render(self, start, out):
        self.thread = threading.current_thread()
        for j in range(out.shape[0]):
            out[j].fill_((start + j) % 251)


def _small_ring(frames=4):
    return SlotBuffers.allocate(BuffersConfig(video={"ring_frames": frames, "height": 8, "width": 8},
                                              actor={"height": 8, "width": 8}), "cpu")


def test_stream_frames_delivers_every_frame_in_order_from_another_thread():
    buf = _small_ring(4)
    seen, threads = [], set()

    def sink(i, frame):
        threads.add(threading.current_thread())
        seen.append((i, int(frame[0, 0, 0])))

    track = CountingTrack()
    stream_frames(track, 10, buf.frame_ring, sink)
    assert seen == [(i, i % 251) for i in range(10)]
    assert track.thread not in threads  # encoding ran beside rendering, not inside it


def test_stream_frames_cancel_and_sink_errors():
    buf = _small_ring(2)
    token = CancelToken()
    token.cancel("deadline")
    with pytest.raises(SlotCancelled):
        stream_frames(CountingTrack(), 6, buf.frame_ring, lambda i, f: None, token)

    def broken(i, frame):
        if i == 3:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        stream_frames(CountingTrack(), 50, buf.frame_ring, broken)


def test_still_track_repeats_the_actor():
    buf = _small_ring(3)
    buf.actor.copy_(torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(3, 8, 8))
    frames = []
    stream_frames(StillTrack(buf.actor), 5, buf.frame_ring, lambda i, f: frames.append(f.copy()))
    assert len(frames) == 5 and all(np.array_equal(f, buf.actor.permute(1, 2, 0).numpy()) for f in frames)


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
