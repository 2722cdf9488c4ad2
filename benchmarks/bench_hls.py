"""The channel's HLS writer: encode cost per frame at 512² 24 fps, and segment write latency.

    python benchmarks/bench_hls.py [--slots 4] [--slot-seconds 5] [--preset veryfast]

Slots of moving content (the encoder benchmark's pattern) and a tone are appended to one
``HlsChannelWriter``. "append" is the whole cost a slot puts on the channel (RGB→YUV, x264, AAC,
the segments it completes); "segment write" is one segment's mux into MPEG-TS + fsync + rename +
playlist rewrite, the part that sits between encoded packets and a player seeing them.
"Lag" is how far the published stream trails what was appended after each slot (x264 look-ahead
and the open segment): the channel must append at least that far ahead of air time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_encode import content  # noqa: E402

from vortex.bench.stats import Percentiles  # noqa: E402
from vortex.bench.timing import Timing, timing_table  # noqa: E402
from vortex.channel import HlsChannelWriter  # noqa: E402

FPS, SAMPLE_RATE, SIZE = 24, 24000, 512


def measure(n_slots: int, slot_seconds: float, preset: str) -> tuple[list[Timing], list[float]]:
    n = round(slot_seconds * FPS)
    frames = content("moving", n, SIZE)
    t = np.arange(round(slot_seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    appends, segments, lags = [], [], []
    with tempfile.TemporaryDirectory(prefix="vortex-bench-hls-") as tmp:
        writer = HlsChannelWriter(Path(tmp) / "ch", width=SIZE, height=SIZE, fps=FPS, sample_rate=SAMPLE_RATE,
                                  program_start=datetime.now(timezone.utc), preset=preset)
        write_segment = writer._write_segment  # time the publish step on its own

        def timed(*args):
            start = time.perf_counter()
            write_segment(*args)
            segments.append((time.perf_counter() - start) * 1000.0)

        writer._write_segment = timed
        for _ in range(n_slots):
            start = time.perf_counter()
            writer.append_slot(frames, wave)
            appends.append((time.perf_counter() - start) * 1000.0)
            lags.append((writer.frames_appended - writer.frames_published) / FPS)
        start = time.perf_counter()
        writer.close()
        close_ms = (time.perf_counter() - start) * 1000.0
    per_frame = Percentiles.of([a / n for a in appends])
    rows = [
        Timing(f"append a {slot_seconds:g} s slot ({n} frames)", Percentiles.of(appends),
               note=f"{per_frame.p50:.2f} ms/frame = {1000 / per_frame.p50:.0f} fps; real time needs < {1000 / FPS:.1f}"),
        Timing("segment write (2 s, mux+fsync+rename)", Percentiles.of(segments), note=f"{len(segments)} segments"),
        Timing("close (drain encoders, last segment)", Percentiles.of([close_ms])),
    ]
    return rows, lags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--slot-seconds", type=float, default=5.0)
    parser.add_argument("--preset", default="veryfast")
    args = parser.parse_args(argv)
    rows, lags = measure(args.slots, args.slot_seconds, args.preset)
    print(timing_table(f"bench_hls · HlsChannelWriter {SIZE}x{SIZE} {FPS} fps, libx264 {args.preset} + AAC", rows, "cpu"))
    print(f"published lag after each append: {', '.join(f'{lag:.2f} s' for lag in lags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
