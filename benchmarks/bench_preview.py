"""The preview animator (mesh warp, CPU): frames a second at 512² per ring batch size.

    python benchmarks/bench_preview.py [--frames 480] [--batch 1,8] [--repeat 3] [--threads N]
                                       [--strip /tmp/preview_strip.png]

The face is `skimage.data.astronaut()` framed to 512² (centred, eyes level, ≈ S/2.3 wide) with
dlib's 68-point predictor giving the landmarks, as the engine's framing does. The driving sequence
is the real shape of speech motion, hand-built so the bench needs no voice: the mouth opening and
closing about 4 times a second with "eee"/"ooo" corners, a blink every 2 s, a ±3° sway on all
three axes, breathing in the scale. Frames go through one reused ring (vortex.engine.render's pattern);
the best of --repeat runs is reported, since other work on a shared machine only ever slows it.

--strip writes 8 crops side by side (mouth_open 0 / 0.5 / 1, spread, round, eyes shut, roll ±10°)
to look at.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
from skimage import data

from vortex.models.preview import CROP_SIZE, Pose, PreviewAnimator
from vortex.motion import DrivingSequence

S = CROP_SIZE


def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
    """(crop, landmarks): the astronaut framed as the pipeline frames her (vortex.faces), 68 points in the crop."""
    from vortex.config import FacesConfig
    from vortex.faces import FaceAnalyzer, frame_portrait

    cfg = FacesConfig(crop_size=S)
    framing = frame_portrait(FaceAnalyzer.load(cfg), data.astronaut(), cfg)
    return framing.crop(data.astronaut()), framing.landmarks


def talking(n: int, fps: int = 24) -> DrivingSequence:
    t = np.arange(n) / fps
    mouth = 0.5 - 0.5 * np.cos(2 * np.pi * 4 * t)
    rotation = 3 * np.stack([np.sin(2 * np.pi * 0.2 * t), np.sin(2 * np.pi * 0.3 * t + 1),
                             np.sin(2 * np.pi * 0.13 * t)], axis=1)
    eye = np.ones(n)
    eye[(np.arange(n) % (2 * fps)) < 4] = 0.0  # a 4-frame blink every 2 s
    f32 = np.float32
    return DrivingSequence(
        fps=fps, exp_delta=np.zeros((n, 21, 3), f32), rotation_delta=rotation.astype(f32),
        translation_delta=np.zeros((n, 3), f32), scale_factor=(1 + 0.003 * np.sin(2 * np.pi * 0.25 * t)).astype(f32),
        mouth_open=mouth.astype(f32), eye_open=eye.astype(f32),
        mouth_spread=np.clip(np.sin(2 * np.pi * 0.7 * t), 0, 1).astype(f32),
        mouth_round=np.clip(-np.sin(2 * np.pi * 0.7 * t), 0, 1).astype(f32))


def frames_per_second(track, n: int, batch: int, repeat: int) -> float:
    ring = torch.empty((batch, 3, S, S), dtype=torch.uint8)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for first in range(0, n, batch):
            track.render(first, ring[: min(batch, n - first)])
        best = min(best, time.perf_counter() - start)
    return n / best


def write_strip(animator: PreviewAnimator, source, path: str) -> None:
    poses = [Pose(), Pose(mouth_open=0.5), Pose(mouth_open=1.0), Pose(mouth_open=0.6, mouth_spread=1.0),
             Pose(mouth_open=0.4, mouth_round=1.0), Pose(eye_open=0.0), Pose(roll=10.0, mouth_open=0.3),
             Pose(roll=-10.0, yaw=6.0, tx=0.05, scale=1.05, mouth_open=0.7)]
    track = animator.track(source, talking(1))
    frame = np.empty((3, S, S), np.uint8)
    tiles = [track.render_frame(pose, frame).transpose(1, 2, 0).copy() for pose in poses]
    cv2.imwrite(path, cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--batch", default="1,8", help="comma-separated ring batch sizes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="cv2 threads (0: OpenCV's default)")
    parser.add_argument("--strip", default="", help="write an 8-frame PNG strip here")
    args = parser.parse_args()
    if args.threads:
        cv2.setNumThreads(args.threads)
    crop, landmarks = astronaut_face()
    animator = PreviewAnimator.load(None)
    start = time.perf_counter()
    source = animator.prepare(crop, landmarks)
    track = animator.track(source, talking(args.frames))
    setup = time.perf_counter() - start
    mesh = source.mesh
    print(f"preview animator, {S}², {len(mesh.triangles)} triangles ({len(mesh.moving_triangles)} moving), "
          f"prepare + track {setup * 1e3:.1f} ms, cv2 threads {cv2.getNumThreads()}")
    track.render(0, torch.empty((1, 3, S, S), dtype=torch.uint8))  # warm-up
    for batch in (int(b) for b in args.batch.split(",")):
        fps = frames_per_second(track, args.frames, batch, args.repeat)
        print(f"B={batch}: {fps:7.1f} frames/s ({1e3 / fps:.2f} ms a frame) over {args.frames} frames, "
              f"best of {args.repeat}")
    if args.strip:
        write_strip(animator, source, args.strip)
        print(f"strip: {args.strip}")


if __name__ == "__main__":
    main()
