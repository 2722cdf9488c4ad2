"""The cost of the program picture (vortex.program): the composite per frame at the program size,
x264 at 1280x720 against 512² at the channel's settings, and the channel writer's CPU per content
second before (512²) and after (the program at 1280x720). CPU seconds of this process (all its
threads: x264's too), not wall time: the 2-core box is shared.

    python benchmarks/bench_program.py [--slot-mp4 SLOT.mp4] [--seconds 10] [--size 1280x720]
    python benchmarks/bench_hls.py --program ...     (the same, after the writer's table)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_encode import content  # noqa: E402

from vortex.channel.hls import HlsChannelWriter  # noqa: E402
from vortex.channel.hls.encoder import DEFAULT_CRF, DEFAULT_PRESET, ChannelEncoder  # noqa: E402
from vortex.channel.hls.spool import read_mp4_slot  # noqa: E402
from vortex.program.compose import PROGRAM_PRESET, ProgramCompositor  # noqa: E402
from vortex.program.spec import parse_program  # noqa: E402

FPS, SR = 24, 24000
PROGRAM = {"lower_third": {"name": "Ada Reyes", "title": "Evening News"},
           "ticker": ["Comet seen over the harbor", "Markets close higher", "Rain expected by the weekend"]}
SETTINGS = [("veryfast", DEFAULT_CRF), ("superfast", DEFAULT_CRF), ("ultrafast", DEFAULT_CRF), ("veryfast", 27)]


def anchor_frames(slot_mp4: Path | None, n: int) -> list[av.VideoFrame]:
    """512² yuv420p frames as the channel's spool hands them over: a real slot's, or a moving pattern."""
    if slot_mp4 is not None:
        frames = list(read_mp4_slot(slot_mp4, rgb=False)[0])
        return [frames[k % len(frames)] for k in range(n)]
    return [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p") for f in content("moving", n, 512)]


def cpu_ms_per(fn, items) -> float:
    start = time.process_time()
    for k, item in enumerate(items):
        fn(item, k)
    return (time.process_time() - start) * 1000.0 / len(items)


def measure_composite(anchors: list[av.VideoFrame], size: str) -> list[str]:
    spec = parse_program({**PROGRAM, "size": size})
    comp = ProgramCompositor(spec)
    rgb = [a.to_ndarray(format="rgb24") for a in anchors[:48]]
    best_yuv = min(cpu_ms_per(comp, anchors) for _ in range(2))
    best_rgb = min(cpu_ms_per(comp, rgb) for _ in range(2))
    start = time.process_time()
    ProgramCompositor(spec)
    build = time.process_time() - start
    return [f"composite at {size}: {best_yuv:.2f} ms/frame CPU from the spool's yuv420p 512² frames, {best_rgb:.2f} "
            f"ms/frame from RGB 512² (a live insert's, a filler's); the layers rendered once: {build * 1000:.0f} ms"]


def measure_encode(frames: list[av.VideoFrame], label: str, preset: str, crf: int) -> tuple[float, float, float]:
    w, h = frames[0].width, frames[0].height
    enc = ChannelEncoder(width=w, height=h, fps=FPS, sample_rate=SR, gop=48, crf=crf, preset=preset)
    start = time.process_time()
    packets = []
    for k, f in enumerate(frames):
        packets += enc.encode_frame(f, k, idr=k % 48 == 0)
    packets += enc.flush_video()
    ms = (time.process_time() - start) * 1000.0 / len(frames)
    kbps = sum(len(p.data) for p in packets) * 8 / (len(frames) / FPS) / 1000
    decoder = av.CodecContext.create("h264", "r")
    decoded = [d for p in packets for d in decoder.decode(av.Packet(p.data))] + list(decoder.decode(None))
    mse = [np.mean((s.to_ndarray()[:h].astype(np.float64) - d.to_ndarray()[:h]) ** 2) for s, d in zip(frames, decoded)]
    psnr = float(np.mean([10 * np.log10(255.0 ** 2 / max(m, 1e-9)) for m in mse]))
    return ms, kbps, psnr


def measure_encoders(anchors: list[av.VideoFrame], size: str) -> list[str]:
    comp = ProgramCompositor(parse_program({**PROGRAM, "size": size}))
    program = [comp(a, k) for k, a in enumerate(anchors)]
    lines = [f"x264 (the channel's ChannelEncoder: zerolatency, keyint 48) on {len(anchors)} frames, CPU ms/frame:"]
    for frames, what in ((anchors, "512x512"), (program, size)):
        for preset, crf in SETTINGS:
            if what == "512x512" and (preset, crf) != (DEFAULT_PRESET, DEFAULT_CRF):
                continue
            ms, kbps, psnr = min((measure_encode(frames, what, preset, crf) for _ in range(2)), key=lambda r: r[0])
            now = " (the channel's)" if (preset, crf) == (DEFAULT_PRESET, DEFAULT_CRF) else ""
            lines.append(f"  {what:9s} {preset:9s} CRF {crf}{now:16s} {ms:5.2f} ms/frame · {kbps:5.0f} kbps · "
                         f"PSNR-Y {psnr:.2f} dB")
    return lines


def measure_channel(anchors: list[av.VideoFrame], size: str) -> list[str]:
    """The writer's whole cost (composite + x264 + AAC + parts/segments written) per content second."""
    seconds = len(anchors) / FPS
    wave = (0.2 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * SR)) / SR)).astype(np.float32)
    lines = []
    for what, preset in (("512x512", DEFAULT_PRESET), (size, DEFAULT_PRESET), (size, PROGRAM_PRESET)):
        with tempfile.TemporaryDirectory() as tmp:
            kw = {}
            w = h = 512
            if what != "512x512":
                comp = ProgramCompositor(parse_program({**PROGRAM, "size": size}))
                w, h, kw = comp.width, comp.height, {"compose": comp}
            writer = HlsChannelWriter(tmp, width=w, height=h, fps=FPS, sample_rate=SR, preset=preset,
                                      program_start=datetime.now(timezone.utc), **kw)
            start = time.process_time()
            writer.append_slot(list(anchors), wave)
            writer.close()
            cpu = time.process_time() - start
        lines.append(f"  {what:9s} {preset:9s} {cpu / seconds:.3f} CPU s per content second ({cpu:.2f} s for "
                     f"{seconds:g} s)")
    return [f"channel writer (append_slot of spooled frames, x264 CRF {DEFAULT_CRF} + AAC + LL-HLS parts; the "
            f"program airs with {PROGRAM_PRESET}):"] + lines


def report(slot_mp4: Path | None, seconds: float, size: str) -> list[str]:
    anchors = anchor_frames(slot_mp4, int(seconds * FPS))
    source = f"frames of {slot_mp4.name}" if slot_mp4 else "a moving pattern"
    return ([f"bench_program · {len(anchors)} anchor frames ({source}), process CPU seconds (shared box)"]
            + measure_composite(anchors, size) + measure_encoders(anchors, size) + measure_channel(anchors, size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slot-mp4", type=Path, help="a real slot MP4 (vortex generate) for the anchor frames")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args(argv)
    print("\n".join(report(args.slot_mp4, args.seconds, args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
