"""The voice, Kokoro-82M: G2P and synthesis of the built-in news read at several slot lengths,
with the real-time factor (synthesis time / speech length).

    python benchmarks/bench_voice.py [--profile cpu-miniature | --config FILE] [--repeat 3] [--warmup 1]

The embedded default runs the real model (the official int8 ONNX export, onnxruntime on the CPU);
a GPU profile runs `kokoro.KModel` in fp32 on the GPU and needs the real weights.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.bench.cli import component_parser  # noqa: E402
from vortex.bench.recipes import bench_recipe  # noqa: E402
from vortex.bench.timing import Timing, time_calls, timing_table  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402
from vortex.logs import quiet_libraries  # noqa: E402

SAMPLE_RATE = 24000


def measure_voice(voice, device: str, voice_id: str = "rick_c137", durations=(5.0, 15.0, 45.0),
                  repeat: int = 3, warmup: int = 1) -> list[Timing]:
    """G2P of the longest script, then one synthesis per slot length (the script that fits it)."""
    longest = bench_recipe(max(durations)).audio_track.script
    rows = [time_calls(f"G2P, {len(longest.split())} words", lambda: voice.phoneme_chunks(longest), device="cpu",
                       repeat=repeat, warmup=warmup, note="misaki espeak backend, host")]
    for seconds in durations:
        script = bench_recipe(seconds).audio_track.script
        n = round(seconds * SAMPLE_RATE)
        speech = voice.synthesize(script, voice_id, 1.0, "neutral", n, seed=0)
        t = time_calls(f"speech for a {seconds:g} s slot ({len(script.split())} words)",
                       lambda: voice.synthesize(script, voice_id, 1.0, "neutral", n, seed=0),
                       device=device, repeat=repeat, warmup=warmup)
        spoken = speech.speech_samples / SAMPLE_RATE
        rows.append(Timing(t.label, t.ms, t.peak_allocated, t.peak_reserved,
                           f"{spoken:.1f} s spoken at speed {speech.speed:.2f}; RTF {t.ms.p50 / 1000 / spoken:.3f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = component_parser(__doc__.splitlines()[0], repeat=3)
    parser.add_argument("--durations", type=float, nargs="+", default=[5.0, 15.0, 45.0])
    args = parser.parse_args(argv)
    quiet_libraries(load=True)
    cfg = VortexConfig.load(args.profile, args.config)

    from vortex.models.kokoro import KokoroVoice

    k = cfg.models.kokoro
    voice = KokoroVoice.load(k, cfg.device.name, cfg.cache_path)
    device = cfg.placement_device(k.placement) if k.backend == "torch" else "cpu"
    rows = measure_voice(voice, device, durations=args.durations, repeat=args.repeat, warmup=args.warmup)
    print(timing_table(f"bench_voice · profile {cfg.profile} · Kokoro-82M {k.backend} {k.precision}", rows, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
