"""The encoder: 512x512 H.264 (libx264, yuv420p) + AAC through vortex.media.Mp4Writer, per preset
and per kind of content, in milliseconds a frame.

    python benchmarks/bench_encode.py [--frames 120] [--presets ultrafast veryfast medium]

Content bounds the cost: "still" is one frame repeated (a talking head is mostly this), "moving"
shifts and reshapes a pattern every frame, "noise" is incompressible (the worst case). The
engine encodes with preset veryfast in a thread beside rendering; at 24 fps a 45 s slot is 1080
frames, so N ms a frame costs about N x 1.08 s a slot unless it hides behind the render.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_verify import test_pattern  # noqa: E402

from vortex.bench.timing import Timing, time_calls, timing_table  # noqa: E402
from vortex.media import Mp4Writer  # noqa: E402

FPS, SAMPLE_RATE = 24, 24000


def content(kind: str, n_frames: int, size: int = 512) -> list[np.ndarray]:
    if kind == "still":
        return [test_pattern(size, size)] * n_frames
    if kind == "moving":
        return [np.roll(test_pattern(size, size, phase=i / 8.0), shift=(i % 16) - 8, axis=1) for i in range(n_frames)]
    if kind == "noise":
        rng = np.random.default_rng(0)
        distinct = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8)]
        return [distinct[i % 8] for i in range(n_frames)]
    raise ValueError(f"unknown content '{kind}' (still, moving, noise)")


def encode(frames: list[np.ndarray], folder: Path, preset: str) -> None:
    h, w = frames[0].shape[:2]
    with Mp4Writer(folder / f"bench-{preset}.mp4", width=w, height=h, fps=FPS, sample_rate=SAMPLE_RATE,
                   preset=preset) as writer:
        writer.write_audio(np.zeros(round(len(frames) * SAMPLE_RATE / FPS), dtype=np.float32))
        for frame in frames:
            writer.write_frame(frame)


def measure_encoder(n_frames: int = 120, presets=("ultrafast", "veryfast", "medium"),
                    kinds=("still", "moving", "noise"), repeat: int = 3, warmup: int = 1) -> list[Timing]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="vortex-bench-encode-") as tmp:
        for kind in kinds:
            frames = content(kind, n_frames)
            for preset in presets:
                t = time_calls(f"{n_frames} frames, {kind}, {preset}", lambda: encode(frames, Path(tmp), preset),
                               device="cpu", repeat=repeat, warmup=warmup)
                per_frame = t.ms.p50 / n_frames
                rows.append(Timing(t.label, t.ms, note=f"{per_frame:.2f} ms/frame = {1000 / per_frame:.0f} fps; "
                                                     f"1080 frames ~ {per_frame * 1.08:.1f} s"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--presets", nargs="+", default=["ultrafast", "veryfast", "medium"])
    parser.add_argument("--kinds", nargs="+", default=["still", "moving", "noise"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    rows = measure_encoder(args.frames, args.presets, args.kinds, args.repeat, args.warmup)
    print(timing_table("bench_encode · libx264 yuv420p 512x512 + AAC, Mp4Writer", rows, "cpu"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
