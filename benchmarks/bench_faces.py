"""Face analysis: dlib detection, landmarks and descriptor, framing, paste-back, both face checks.

    python benchmarks/bench_faces.py [--repeat 5] [--threads N] [--device cpu|cuda] [--seconds 45]

On skimage.data.astronaut() (512², a ~95 px face). The lip-sync row measures a whole slot:
`--seconds` at 24 fps, landmarks on every `verification.lip_sync_step`-th frame (2: 540
measurements for 45 s), the face tracked between frames. dlib runs on one core whatever
--threads says; --threads sets torch's (paste-back) threads. Times are wall-clock medians; the
CPU seconds the process used are printed beside them (on a shared machine, the steadier figure).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds) of fn() over `repeat` calls after `warmup`."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def row(name: str, seconds: tuple[float, float], per: int = 1, unit: str = "ms", note: str = "") -> None:
    scale = 1000.0 if unit == "ms" else 1.0
    wall, cpu = seconds[0] / per * scale, seconds[1] / per * scale
    print(f"{name:<44} {wall:9.2f} {unit}   cpu {cpu:9.2f} {unit}   {note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for paste-back")
    parser.add_argument("--device", default="cpu", help="paste-back's torch device (cpu, cuda)")
    parser.add_argument("--seconds", type=float, default=45.0, help="the lip-sync slot's length")
    args = parser.parse_args(argv)

    import torch
    from skimage import data

    from vortex.config import FacesConfig, VerificationConfig
    from vortex.faces.analyzer import FaceAnalyzer
    from vortex.faces.framing import frame_portrait
    from vortex.faces.identity import check_identity
    from vortex.faces.lipsync import measure_lip_sync

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg, ver = FacesConfig(), VerificationConfig()
    start = time.perf_counter()
    analyzer = FaceAnalyzer.load(cfg)
    print(f"load: {time.perf_counter() - start:.2f} s (HOG detector, 68- and 5-point predictors, ResNet descriptor)")
    portrait = data.astronaut()
    box = analyzer.primary_face(portrait)
    r = args.repeat
    print(f"torch threads {torch.get_num_threads()}, paste-back on {args.device}; face {box.width} px at 512²")
    for up in sorted({0, cfg.detector_upsample}):
        row(f"detect 512² (upsample {up})", timed(lambda: analyzer.detect_at(portrait, up), r))
    row("landmarks (68 points)", timed(lambda: analyzer.landmarks(portrait, box), r * 10))
    row("descriptor (5 points + ResNet)", timed(lambda: analyzer.descriptor(portrait, box), r))
    row("frame_portrait (detect + 68 points)", timed(lambda: frame_portrait(analyzer, portrait, cfg), r))
    framing = frame_portrait(analyzer, portrait, cfg)
    crop = framing.crop(portrait)
    row(f"crop {cfg.crop_size}² (cv2.warpAffine)", timed(lambda: framing.crop(portrait), r * 10))

    device = torch.device(args.device)
    portrait_t = torch.from_numpy(portrait).permute(2, 0, 1).contiguous().to(device)
    crop_t = torch.from_numpy(crop).permute(2, 0, 1)[None].contiguous().to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    start = time.perf_counter()
    framing.paste_back(crop_t, portrait_t)
    sync()
    print(f"paste-back first call (grid and mask, cached per device): {1000 * (time.perf_counter() - start):.1f} ms")
    for b in (1, 8):
        batch = crop_t.repeat(b, 1, 1, 1)
        row(f"paste-back B={b}, per frame", timed(lambda: (framing.paste_back(batch, portrait_t), sync()), r), per=b)

    fps, sr, step = 24, 24000, ver.lip_sync_step
    n = int(round(args.seconds * fps))
    frames = np.broadcast_to(portrait, (n, *portrait.shape))  # a view: no 850 MB slot in memory
    t = np.arange(int(args.seconds * sr)) / sr
    loudness = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)  # 4 syllables a second
    wave = (np.random.default_rng(0).standard_normal(t.size) * loudness).astype(np.float32)
    measured = len(range(0, n, step))

    def lip_sync():
        return measure_lip_sync(analyzer, frames, wave, sr, fps, step=step, max_lag_ms=ver.lip_sync_max_lag_ms,
                                floor=ver.lip_sync_floor, enforced=True, box_hint=framing.box)

    seconds = timed(lip_sync, max(1, r // 2), warmup=0)
    row(f"lip-sync {args.seconds:g} s, step {step}: {measured} frames", seconds, unit="s")
    row("lip-sync, per measured frame", seconds, per=measured, note="tracked box, confirmed by HOG on a small window")
    k = ver.face_frames
    row(f"identity check, K={k} frames", timed(lambda: check_identity(analyzer, portrait, frames, k,
                                                                      ver.face_max_distance, True), 1), unit="s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
