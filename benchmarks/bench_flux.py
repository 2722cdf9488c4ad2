"""The actor, FLUX.1-schnell through diffusers: text encoders, the denoising loop, the VAE decode
and a whole portrait, each timed on its own device (the 12 GB profile runs T5 on the host).

    python benchmarks/bench_flux.py [--profile cpu-miniature | --config FILE] [--repeat 5] [--warmup 1]

On the embedded default profile the transformer, T5, CLIP-L and VAE are miniatures (seeded random
weights) loaded through the real loader: the figures time the loader's code path, not FLUX.1.
A GPU profile needs the real weights (`vortex models pull`); benchmarks/device/check.py times the
full-size architectures with random weights instead.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.bench.cli import component_parser  # noqa: E402
from vortex.bench.recipes import BENCH_PROMPT  # noqa: E402
from vortex.bench.timing import Timing, time_calls, timing_table  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402
from vortex.logs import quiet_libraries  # noqa: E402


def measure_actor(actor, prompt: str = BENCH_PROMPT, seed: int = 0, repeat: int = 5, warmup: int = 1) -> list[Timing]:
    """Time each part of one portrait: the prompt encoders (uncached), the denoising steps, the decode,
    and `generate` with the prompt cached (what a recurring actor costs)."""
    cfg = actor.cfg
    rows = [time_calls("text encoders (T5-XXL + CLIP-L), uncached", lambda: actor._encode_uncached(prompt),
                       device=actor.text_device, repeat=repeat, warmup=warmup,
                       note=f"on {actor.text_device}, T5 {cfg.t5_precision}, {cfg.max_sequence_length} tokens")]
    prompt_embeds, pooled = actor.encode_prompt(prompt)
    denoise = time_calls(f"denoise {cfg.steps} steps @ {cfg.height}x{cfg.width}",
                         lambda: actor._denoise(prompt_embeds, pooled, seed, None),
                         device=actor.device, repeat=repeat, warmup=warmup, note=f"transformer {cfg.precision}")
    rows.append(Timing(denoise.label, denoise.ms, denoise.peak_allocated, denoise.peak_reserved,
                       f"{denoise.note}; {denoise.ms.p50 / cfg.steps:.1f} ms a step"))
    latents = actor._denoise(prompt_embeds, pooled, seed, None)
    rows.append(time_calls("VAE decode", lambda: actor._decode(latents), device=actor.device, repeat=repeat,
                           warmup=warmup, note=f"VAE {cfg.vae_precision}"))
    rows.append(time_calls("portrait, prompt cached", lambda: actor.generate(prompt, seed), device=actor.device,
                           repeat=repeat, warmup=warmup))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = component_parser(__doc__.splitlines()[0], repeat=5)
    args = parser.parse_args(argv)
    quiet_libraries(load=True)
    cfg = VortexConfig.load(args.profile, args.config)

    from vortex.models.flux import FluxActor

    actor = FluxActor.load(cfg.models.flux, cfg.device.name, cfg.cache_path)
    rows = measure_actor(actor, repeat=args.repeat, warmup=args.warmup)
    title = f"bench_flux · profile {cfg.profile}" + (" · MINIATURE stand-in" if cfg.models.flux.source == "miniature" else "")
    print(timing_table(title, rows, actor.device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
