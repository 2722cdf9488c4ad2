"""Loudness: the per-chunk normalisation a streamed slot gets against one pass over the whole slot,
on Kokoro's real speech, and what it costs (CPU ms per second of audio, this thread's CPU time).

    python benchmarks/bench_loudness.py [--profile cpu-preview] [--seconds 5 15 45] [--target -23]

For each voice and slot length: the raw speech's level, the streamed result (StreamNormalizer,
chunk by chunk as the engine feeds it), the whole-slot result (vortex.program.loudness.normalize:
one gain from the whole slot's measure, the same limiter), both measured with the BS.1770-4 meter.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from vortex.bench.recipes import bench_recipe  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402
from vortex.logs import quiet_libraries  # noqa: E402
from vortex.program import loudness as L  # noqa: E402

SAMPLE_RATE = 24000


def stream(chunks: list[np.ndarray], padding: int, target: float, peak: float) -> tuple[np.ndarray, float]:
    """The engine's path (engine/stream.py): each chunk, the silence after, the limiter's rest; CPU s."""
    started = time.thread_time()
    n = L.StreamNormalizer(SAMPLE_RATE, target, peak)
    out = [n.process(c) for c in chunks]
    if padding:
        out.append(n.process(np.zeros(padding, np.float32), speech=False))
    out.append(n.finish())
    return np.concatenate(out), time.thread_time() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu-preview")
    parser.add_argument("--seconds", type=float, nargs="+", default=[5.0, 15.0, 45.0])
    parser.add_argument("--target", type=float, default=-23.0)
    parser.add_argument("--peak", type=float, default=-1.0)
    args = parser.parse_args(argv)
    quiet_libraries(load=True)
    cfg = VortexConfig.load(args.profile)

    from vortex.models.kokoro import KokoroVoice

    voice = KokoroVoice.load(cfg.models.kokoro, cfg.device.name, cfg.cache_path)
    rows, cpu, audio_s = [], {"stream": 0.0, "whole": 0.0, "report": 0.0}, 0.0
    for voice_id in cfg.models.kokoro.voices:
        for seconds in args.seconds:
            script = bench_recipe(seconds).audio_track.script
            n_samples = round(seconds * SAMPLE_RATE)
            plan = voice.plan(script, voice_id, 1.0, "neutral", n_samples)
            chunks = [voice.speak(plan, i, seed=0).audio for i in range(len(plan.chunks))]
            raw = np.zeros(n_samples, np.float32)
            raw[:sum(len(c) for c in chunks)] = np.concatenate(chunks)
            streamed, spent = stream(chunks, n_samples - sum(len(c) for c in chunks), args.target, args.peak)
            started = time.thread_time()
            whole = L.normalize(raw, SAMPLE_RATE, args.target, args.peak)
            cpu["whole"] += time.thread_time() - started
            started = time.thread_time()
            s = L.report(streamed, SAMPLE_RATE, args.target)
            cpu["report"] += time.thread_time() - started
            w = L.report(whole, SAMPLE_RATE, args.target)
            cpu["stream"] += spent
            audio_s += seconds
            assert streamed.size == n_samples
            rows.append({"voice": voice_id, "seconds": seconds, "chunks": len(chunks),
                         "raw_lufs": round(L.integrated_lufs(raw, SAMPLE_RATE), 2),
                         "raw_dbtp": round(L.true_peak_dbtp(raw), 2),
                         "stream_lufs": s["integrated_lufs"], "stream_dbtp": s["true_peak_dbtp"],
                         "whole_lufs": w["integrated_lufs"], "whole_dbtp": w["true_peak_dbtp"],
                         "stream_minus_whole_lu": round(s["integrated_lufs"] - w["integrated_lufs"], 2),
                         "max_abs_sample_db_diff": _gain_diff_db(streamed, whole)})
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"cpu_ms_per_audio_s": {k: round(1000 * v / audio_s, 2) for k, v in cpu.items()},
                      "audio_s": audio_s,
                      "worst_stream_off_target_lu": max(abs(r["stream_lufs"] - args.target) for r in rows),
                      "worst_stream_minus_whole_lu": max(abs(r["stream_minus_whole_lu"]) for r in rows)}))
    return 0


def _gain_diff_db(a: np.ndarray, b: np.ndarray) -> float:
    """The largest gain difference between two versions of the same speech, where it is not quiet."""
    loud = np.abs(b) > 10 ** (-40 / 20)
    if not loud.any():
        return 0.0
    ratio = np.abs(a[loud]) / np.abs(b[loud])
    return round(float(np.max(np.abs(20 * np.log10(np.maximum(ratio, 1e-6))))), 2)


if __name__ == "__main__":
    sys.exit(main())
