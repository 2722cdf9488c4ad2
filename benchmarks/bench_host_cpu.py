"""What one channel costs the HOST CPU on a GPU node: the stages that stay on the host when the
voice, the actor, the animator and CLIP run on the GPU, in CPU seconds per content second.

    python benchmarks/bench_host_cpu.py [--seconds 8] [--repeat 2] [--cores 16] [--json out.json]

One real slot of the default profile (cpu-preview: the Kokoro int8 voice, the stand-in portrait,
the preview animator) is made first; its audio and frames are the input of every stage below,
each run by the project's own component, timed by the process's CPU clock (all its threads:
CTranslate2's, x264's, dlib's), the median of --repeat runs:

  g2p            misaki/espeak phonemes of the script (the voice's text front end, on the host)
  motion         the speech-driven motion driver (numpy)
  speech, cpu    faster-whisper tiny.en int8 on the host (the CPU profiles' check)
  speech, host   what stays on the host when tiny.en decodes on the GPU (CUDA profiles): the
                 24->16 kHz resampling and faster-whisper's log-mel features (numpy)
  framing        dlib: face, 68 landmarks, crop matrix of the portrait (once a slot)
  identity       dlib: the portrait's descriptor and K=verification.face_frames frames' (a slot)
  lip sync       dlib: landmarks on every lip_sync_step-th frame, tracked, and the correlation
  clip pixels    CLIP's image preprocessing of the K frames and the portrait (PIL, on the host)
  encode         the slot's MP4: x264 (veryfast, crf 20) + AAC through vortex.media.Mp4Writer
  paste-back     the crops warped back into the portrait: torch on the ring's device, so on the
                 GPU in CUDA profiles; measured here on the CPU for a CPU node

Fixed per-slot costs (framing, identity) are divided by the slot's length; the summary gives the
channels a --cores host can feed at 5 s and 45 s slots. Measure CPU seconds, not wall time, on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ON_GPU_IN_CUDA_PROFILES = {"speech, cpu", "paste-back"}  # replaced there by the rows named in the notes


def cpu_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Median process CPU seconds (user + system, every thread) of fn() over `repeat` runs, after one warm-up."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        runs.append(time.process_time() - start)
    return statistics.median(runs)


def make_slot(seconds: float):
    from vortex.bench.recipes import bench_recipe
    from vortex.config import VortexConfig
    from vortex.engine.factory import build_engine

    cfg = VortexConfig.load("cpu-preview")
    recipe = bench_recipe(seconds)
    pipe = build_engine(cfg)
    try:
        result = pipe.generate_slot_sync(recipe, keep_frames=True)
        if not result.success:
            raise SystemExit(f"the slot failed: {result.error_msg}")
        voice = pipe.registry.get_model("kokoro")
        speech = voice.synthesize(recipe.audio_track.script, recipe.audio_track.voice_id, 1.0, "neutral",
                                  recipe.slot_params.n_samples(cfg.buffers.audio.sample_rate), seed=0)
        clip = pipe.registry.get_model("clip")
        return cfg, recipe, result, speech, voice, clip
    finally:
        pipe.close()


def measure(seconds: float, repeat: int) -> dict:
    import torch

    from vortex.asr import WhisperTranscriber
    from vortex.engine.portrait import stand_in_portrait
    from vortex.faces import FaceAnalyzer, frame_portrait
    from vortex.faces.identity import IdentityMeter
    from vortex.faces.lipsync import LipSyncMeter
    from vortex.media import Mp4Writer
    from vortex.motion.driver import MotionDriver
    from vortex.asr.whisper import resample

    cfg, recipe, result, speech, voice, clip = make_slot(seconds)
    frames, wave = result.video_frames, result.audio_waveform
    n, fps, rate = len(frames), recipe.slot_params.fps, cfg.buffers.audio.sample_rate
    content = n / fps
    v = cfg.verification
    portrait = stand_in_portrait(cfg.pipeline.actor, cfg.buffers.actor.height, cfg.buffers.actor.width)
    analyzer = FaceAnalyzer.load(cfg.faces)
    framing = frame_portrait(analyzer, portrait, cfg.faces)
    whisper = WhisperTranscriber.load(cfg.models.whisper)
    features = whisper._model.feature_extractor  # faster-whisper's own log-mel (numpy)

    def identity() -> None:
        meter = IdentityMeter(analyzer, portrait, n, v.face_frames, v.face_max_distance)
        for i in meter.indices:
            meter.measure(i, frames[i])

    def lip_sync() -> None:
        meter = LipSyncMeter(analyzer, n, step=v.lip_sync_step, box_hint=framing.box)
        for i in range(0, n, v.lip_sync_step):
            meter.measure(i, frames[i])
        meter.report(wave, rate, fps, max_lag_ms=v.lip_sync_max_lag_ms, floor=v.lip_sync_floor, enforced=True)

    def encode() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            with Mp4Writer(Path(tmp) / "slot.mp4", width=frames.shape[2], height=frames.shape[1], fps=fps,
                           sample_rate=rate) as writer:
                for frame in frames:
                    writer.write_frame(frame)
                writer.write_audio(wave)

    crops = torch.from_numpy(np.stack([framing.crop(f) for f in frames])).permute(0, 3, 1, 2).contiguous()
    portrait_t = torch.from_numpy(portrait.copy()).permute(2, 0, 1).contiguous()
    sampled = [frames[i] for i in clip.sample_indices(n)] + [portrait]

    stages = {
        "g2p": lambda: voice._phonemize(recipe.audio_track.script),
        "motion": lambda: MotionDriver(cfg.motion).drive(speech, n, fps, seed=0),
        "speech, cpu": lambda: whisper.transcribe(wave, rate),
        "speech, host": lambda: features(resample(wave, rate)),
        "framing": lambda: frame_portrait(analyzer, portrait, cfg.faces),
        "identity": identity,
        "lip sync": lip_sync,
        "clip pixels": lambda: clip.clip_b.pixels(sampled),
        "encode": encode,
        "paste-back": lambda: [framing.paste_back(crops[i:i + 8], portrait_t) for i in range(0, n, 8)],
    }
    per_slot = {name: cpu_seconds(fn, repeat) for name, fn in stages.items()}
    return {"slot_seconds": content, "speech_window_s": v.speech_window_sec, "frames": n, "fps": fps, "repeat": repeat, "torch_threads": torch.get_num_threads(),
            "whisper": {"compute_type": cfg.models.whisper.compute_type, "cpu_threads": cfg.models.whisper.cpu_threads},
            "cpu_s_per_slot": per_slot, "cpu_s_per_content_s": {k: s / content for k, s in per_slot.items()}}


FIXED = ("framing", "identity", "clip pixels")  # once a slot, whatever its length (K frames)
# Once a window: tiny.en pads every window to its 30 s input, and the check closes a window at
# the first sentence end after verification.speech_window_sec (8 s) of audio.
WINDOWED = ("speech, cpu",)


def host_cost(report: dict, slot_s: float, gpu_node: bool) -> float:
    """CPU seconds per content second of a channel of `slot_s` slots: per-frame stages scale with
    the content, the fixed ones are paid once a slot."""
    measured, window = report["slot_seconds"], report["speech_window_s"]
    total = 0.0
    for name, s in report["cpu_s_per_slot"].items():
        if gpu_node and name in ON_GPU_IN_CUDA_PROFILES:
            continue
        if not gpu_node and name == "speech, host":
            continue  # included in "speech, cpu"
        if name in FIXED:
            total += s / slot_s
        elif name in WINDOWED:  # the measured slot is one window
            total += s * max(1, int(slot_s // window)) / slot_s
        else:
            total += s / measured
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0,
                        help="the measured slot's length (at most speech_window_sec + a sentence: one window)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cores", type=int, default=16, help="the GPU node's host cores, for the summary")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = measure(args.seconds, args.repeat)
    print(f"host CPU of one channel's stages, one {report['slot_seconds']:g} s slot ({report['frames']} frames), "
          f"median of {args.repeat}; CPU seconds (user + system, all threads)")
    print(f"{'stage':<14} {'CPU s/slot':>11} {'CPU s per content s':>20}  where on a CUDA profile")
    for name, s in report["cpu_s_per_slot"].items():
        where = "GPU" if name in ON_GPU_IN_CUDA_PROFILES else "host"
        print(f"{name:<14} {s:11.4f} {report['cpu_s_per_content_s'][name]:20.4f}  {where}")
    summary = {}
    for slot_s in (5.0, 45.0):
        for gpu_node in (True, False):
            cost = host_cost(report, slot_s, gpu_node)
            key = f"{'gpu' if gpu_node else 'cpu-whisper'} node, {slot_s:g} s slots"
            summary[key] = {"cpu_s_per_content_s": cost, "channels": args.cores / cost}
            print(f"{key:<32} {cost:6.3f} core-s per content s -> {args.cores / cost:5.1f} channels on {args.cores} cores")
    report["summary"] = summary
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
