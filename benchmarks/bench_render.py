"""LivePortrait rendering: W + G in milliseconds a frame per batch size, and how encoding overlaps it.

    python benchmarks/bench_render.py [--profile cpu-miniature] [--frames N] [--batch 1,4,8]
                                      [--size auto|profile|full|miniature] [--channels-last off|on|both]
                                      [--threads N] [--repeat N]

What runs is the animator the engine runs (`LivePortraitAnimator`): a drawn portrait through F and
M once, then a hand-built driving sequence (a mouth opening and closing on keypoint 19.y, a slow
yaw sway) rendered through a frame ring. Sizes: "profile" loads the weights the profile names
(the miniature for cpu-miniature); "full" builds the public full-size architecture with seeded
random weights on the profile's device and precision: the real cost of the real model, without
its weights; "auto" is "full" on a GPU and "profile" elsewhere.

Then the encode/render overlap, at the profile's batch_frames through a ring of
buffers.video.ring_frames, into `vortex.media.Mp4Writer` (libx264 veryfast, as the engine):
render-only (vortex.engine.render.stream_frames into a sink that drops frames), encode-only (frames
already on the host) and overlapped (stream_frames into the writer, as a slot does). Overlapped
close to max(render, encode) means the encoder hides behind the renderer.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.bench.timing import Timing, time_calls, timing_table  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402
from vortex.media import Mp4Writer  # noqa: E402
from vortex.models.liveportrait import build_networks  # noqa: E402
from vortex.models.liveportrait.animator import LivePortraitAnimator, liveportrait_dtype  # noqa: E402
from vortex.motion import DrivingSequence  # noqa: E402
from vortex.engine.render import stream_frames  # noqa: E402

SAMPLE_RATE = 24000


def drawn_portrait(size: int = 512) -> np.ndarray:
    """A head drawn with ellipses: skin, eyes, mouth, on a gradient (no weights make faces here)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) * (512 / size)
    image = np.stack([40 + 0.2 * y, 60 + 0.1 * y, 120 + 0.15 * x], axis=-1)
    image[((x - 256) / 150) ** 2 + ((y - 250) / 190) ** 2 < 1] = (224, 172, 140)
    for cx in (196, 316):
        image[((x - cx) / 22) ** 2 + ((y - 210) / 12) ** 2 < 1] = (30, 30, 40)
    image[((x - 256) / 60) ** 2 + ((y - 340) / 14) ** 2 < 1] = (150, 40, 50)
    return image.clip(0, 255).astype(np.uint8)


def talking_sequence(n: int, fps: int = 24) -> DrivingSequence:
    """Mouth opening and closing about 4 times a second (Δ19.y up to 0.08) and a ±3° yaw sway."""
    t = np.arange(n, dtype=np.float32) / fps
    mouth = (0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)).astype(np.float32)
    exp = np.zeros((n, 21, 3), np.float32)
    exp[:, 19, 1] = 0.08 * mouth
    rotation = np.zeros((n, 3), np.float32)
    rotation[:, 1] = 3 * np.sin(2 * np.pi * 0.3 * t)
    return DrivingSequence(fps=fps, exp_delta=exp, rotation_delta=rotation,
                           translation_delta=np.zeros((n, 3), np.float32), scale_factor=np.ones(n, np.float32),
                           mouth_open=mouth, eye_open=np.ones(n, np.float32))


def make_animator(cfg: VortexConfig, size: str, device: str, cache: Path) -> tuple[LivePortraitAnimator, str]:
    lp = cfg.models.liveportrait
    if size == "full":
        networks = build_networks("full", device=device, dtype=liveportrait_dtype(lp.precision), seed=0)
        return LivePortraitAnimator(networks, lp, device), f"full size, seeded random weights, {lp.precision}"
    if size == "miniature":
        lp = lp.model_copy(update={"source": "miniature"})
    animator = LivePortraitAnimator.load(lp, device, cache)
    return animator, f"{lp.source} weights, {lp.precision}"


def render_all(track, n: int, ring: torch.Tensor) -> None:
    for start in range(0, n, ring.shape[0]):
        track.render(start, ring[: min(ring.shape[0], n - start)])


def encode(frames: list[np.ndarray], path: Path, fps: int) -> None:
    h, w = frames[0].shape[:2]
    with Mp4Writer(path, width=w, height=h, fps=fps, sample_rate=SAMPLE_RATE) as writer:
        writer.write_audio(np.zeros(len(frames) * SAMPLE_RATE // fps, dtype=np.float32))
        for frame in frames:
            writer.write_frame(frame)


def stream_into_mp4(track, n: int, ring: torch.Tensor, path: Path, fps: int) -> None:
    with Mp4Writer(path, width=ring.shape[3], height=ring.shape[2], fps=fps, sample_rate=SAMPLE_RATE) as writer:
        writer.write_audio(np.zeros(n * SAMPLE_RATE // fps, dtype=np.float32))
        stream_frames(track, n, ring, lambda i, frame: writer.write_frame(frame))


def per_frame(t: Timing, n: int, extra: str = "") -> Timing:
    ms = t.ms.p50 / n
    return Timing(t.label, t.ms, t.peak_allocated, t.peak_reserved,
                  f"{ms:.1f} ms/frame = {1000 / ms:.1f} fps{extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-miniature")
    parser.add_argument("--frames", type=int, default=24, help="frames per measured render (default 24 = 1 s)")
    parser.add_argument("--batch", default="1,4,8", help="frames per W + G call, comma-separated")
    parser.add_argument("--size", choices=["auto", "profile", "full", "miniature"], default="auto")
    parser.add_argument("--channels-last", choices=["off", "on", "both"],
                        help="G's memory format: NCHW (off, the animator's default), NHWC (on), or both "
                             "(default: both on a GPU, off on the CPU)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--cache", type=Path, help="weights cache (default: the profile's cache_dir)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = VortexConfig.load(args.profile)
    lp = cfg.models.liveportrait
    device = cfg.placement_device(lp.placement)
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"profile '{args.profile}' places LivePortrait on {device}, but torch sees no CUDA device here; "
              "run with --profile cpu-miniature", file=sys.stderr)
        return 2
    size = ("full" if device.startswith("cuda") else "profile") if args.size == "auto" else args.size
    animator, weights = make_animator(cfg, size, device, args.cache or cfg.cache_path)
    n, fps = args.frames, 24
    batches = [int(b) for b in args.batch.split(",")]
    layout = args.channels_last or ("both" if device.startswith("cuda") else "off")
    formats = {"on": [True], "off": [False], "both": [False, True]}[layout]

    source = animator.prepare(drawn_portrait())
    sequence = talking_sequence(n, fps)
    baseline = torch.cuda.memory_allocated(device) if device.startswith("cuda") else 0
    rows = [time_calls("prepare (F + M, once a slot)", lambda: animator.prepare(drawn_portrait()), device=device,
                       repeat=args.repeat)]
    for channels_last in formats:
        for b in batches:
            # NHWC converts G's weights in place: give it its own copy of the networks.
            networks = copy.deepcopy(animator.networks) if channels_last else animator.networks
            a = LivePortraitAnimator(networks, lp.model_copy(update={"batch_frames": b}), device,
                                     channels_last=channels_last)
            ring = torch.zeros(b, 3, a.output_size, a.output_size, dtype=torch.uint8, device=device)
            track = a.track(source, sequence)
            fmt = (" NHWC" if channels_last else " NCHW") if len(formats) > 1 else ""
            t = time_calls(f"render {n} frames, batch {b}{fmt}", lambda: render_all(track, n, ring), device=device,
                           repeat=args.repeat)
            extra = f"; activations ≈ {(t.peak_allocated - baseline) / 2**30:.2f} GiB" if baseline else ""
            rows.append(per_frame(t, n, extra))

    ring_frames = cfg.buffers.video.ring_frames
    ring = torch.zeros(ring_frames, 3, animator.output_size, animator.output_size, dtype=torch.uint8, device=device)
    track = animator.track(source, sequence)  # the profile's batch_frames
    frames: list[np.ndarray] = [np.empty(0)] * n
    stream_frames(track, n, ring, frames.__setitem__)
    with tempfile.TemporaryDirectory(prefix="vortex-bench-render-") as tmp:
        mp4 = Path(tmp) / "bench.mp4"
        label = f"batch {lp.batch_frames}, ring {ring_frames}"
        render = time_calls(f"render-only ({label})", lambda: stream_frames(track, n, ring, lambda i, f: None),
                            device=device, repeat=args.repeat)
        enc = time_calls("encode-only (frames on the host)", lambda: encode(frames, mp4, fps), device="cpu",
                         repeat=args.repeat)
        both = time_calls("overlapped (stream_frames → Mp4Writer)",
                          lambda: stream_into_mp4(track, n, ring, mp4, fps), device=device, repeat=args.repeat)
    # What encoding adds on top of rendering, from the fastest runs (on a shared machine the
    # medians carry other processes' noise): 0 when the encoder hides entirely, encode-only at worst.
    added = both.ms.min - render.ms.min
    rows += [per_frame(render, n), per_frame(enc, n),
             per_frame(both, n, f"; adds {added:+.0f} ms to render-only (encode-only {enc.ms.min:.0f} ms; "
                                f"fastest runs)")]

    title = (f"bench_render · LivePortrait ({weights}) · profile {args.profile} · {n} frames "
             f"({n / fps:.1f} s at {fps} fps) · {torch.get_num_threads()} torch threads")
    print(timing_table(title, rows, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
