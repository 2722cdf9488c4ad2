"""Verification: CLIP ViT-B/32 + ViT-L/14 scoring K sampled frames of a slot against its prompt.

    python benchmarks/bench_verify.py [--profile cpu-miniature | --config FILE] [--repeat 5] [--warmup 1]

The frames are a synthetic test pattern (a CLIP forward pass costs the same whatever the pixels),
presented as a 1080-frame slot of which the verifier samples `verification.frames`. The verifier
here holds L/14's own text tower; the engine borrows Flux's instead (the same network and cost).
On the embedded default both CLIPs are miniatures with seeded random weights.
"""

from __future__ import annotations

import os
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from vortex.bench.cli import component_parser  # noqa: E402
from vortex.bench.recipes import BENCH_PROMPT  # noqa: E402
from vortex.bench.timing import Timing, time_calls, timing_table  # noqa: E402
from vortex.config import VortexConfig  # noqa: E402
from vortex.logs import quiet_libraries  # noqa: E402


def test_pattern(height: int = 512, width: int = 512, phase: float = 0.0) -> np.ndarray:
    """A smooth (H, W, 3) uint8 pattern with a disc in the middle: an input, not a model's output."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot(y - height / 2, x - width / 2)
    image = np.stack([
        128 + 100 * np.sin(x / 37.0 + phase),
        128 + 100 * np.cos(y / 53.0 - phase),
        np.where(r < height / 5, 220.0, 60 + 40 * np.sin((x + y) / 71.0)),
    ], axis=-1)
    return np.clip(image, 0, 255).astype(np.uint8)


def measure_verifier(verifier, n_frames: int = 1080, prompt: str = BENCH_PROMPT, device: str = "cpu",
                     repeat: int = 5, warmup: int = 1) -> list[Timing]:
    frames = np.broadcast_to(test_pattern(), (n_frames, 512, 512, 3))  # a view: no 850 MB slot in memory
    k = len(verifier.sample_indices(n_frames))
    return [time_calls(f"verify {k} of {n_frames} frames (B/32 + L/14)",
                       lambda: verifier.verify(frames, prompt), device=device, repeat=repeat, warmup=warmup,
                       note="preprocessing on the host, both image towers, both text towers")]


def main(argv: list[str] | None = None) -> int:
    parser = component_parser(__doc__.splitlines()[0], repeat=5)
    args = parser.parse_args(argv)
    quiet_libraries(load=True)
    cfg = VortexConfig.load(args.profile, args.config)

    from vortex.models.clip import ClipVerifier

    m = cfg.models
    verifier = ClipVerifier.load(m.clip_b, m.clip_l, cfg.verification, cfg.device.name, cfg.cache_path)
    device = cfg.placement_device(m.clip_l.placement)
    rows = measure_verifier(verifier, device=device, repeat=args.repeat, warmup=args.warmup)
    stand_in = " · MINIATURE stand-ins" if "miniature" in (m.clip_b.source, m.clip_l.source) else ""
    print(timing_table(f"bench_verify · profile {cfg.profile} · CLIP {m.clip_b.precision}/{m.clip_l.precision}{stand_in}",
                       rows, device))
    return 0


if __name__ == "__main__":
    sys.exit(main())
