"""LivePortrait render measurements for the device check: W + G per batch size, a whole 45 s slot
through the engine's render queue (with and without the encoder), 1, 4 and 16 streams rendered at
once (the queue batches their frames into shared W + G calls), fp32 frame by frame, channels-last,
cuDNN autotuning, a captured CUDA graph, torch.compile, and the public LivePortrait networks'
frame-by-frame inference.

Every function takes the animator the engine uses (`LivePortraitAnimator`) and a driving sequence
from the real motion driver; each returns `vortex.bench.timing.Timing` rows (or a dict for the public
comparison). Nothing here is LivePortrait code of the public repository: the public networks are
imported from a folder the caller names, only for the comparison, and skipped when it is absent.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vortex.bench.timing import Timing, time_calls
from vortex.contracts.cancel import CancelToken
from vortex.engine.render import RenderQueue, SlotVideo
from vortex.media import Mp4Writer
from vortex.models.liveportrait.animator import DrivingRows, LivePortraitAnimator, compose_driving_keypoints
from vortex.models.liveportrait.stitching_retargeting import stitch

SAMPLE_RATE = 24000
PUBLIC_FOLDER = ".device-public/LivePortrait"  # src/modules/*.py and src/config/models.yaml of KwaiVGI/LivePortrait


def per_frame(t: Timing, frames: int, extra: str = "") -> Timing:
    ms = t.ms.p50 / frames
    return Timing(t.label, t.ms, t.peak_allocated, t.peak_reserved, f"{ms:.2f} ms/frame = {1000 / ms:.0f} fps{extra}")


@torch.inference_mode()
def frames_uint8(animator: LivePortraitAnimator, source, rows: DrivingRows) -> torch.Tensor:
    """One W + G call and the uint8 conversion, as LivePortraitTrack.render does for a chunk."""
    from vortex.models.liveportrait.animator import to_uint8

    return to_uint8(animator.render_frames(source, rows))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch_sweep(animator: LivePortraitAnimator, source, rows: DrivingRows, batches=(1, 8, 32), repeat: int = 5,
                warmup: int = 2) -> list[Timing]:
    """One W + G call (render_frames + uint8 conversion) at each batch size."""
    out = []
    for b in batches:
        chunk = rows.rows(0, b)
        try:
            t = time_calls(f"W + G, batch {b}", lambda: frames_uint8(animator, source, chunk),
                           device=animator.device, repeat=repeat, warmup=warmup)
        except torch.OutOfMemoryError as exc:
            out.append(Timing(f"W + G, batch {b}", _nan(), note=f"out of memory: {str(exc).splitlines()[0]}"))
            torch.cuda.empty_cache()
            continue
        out.append(per_frame(t, b))
    return out


def _nan():
    from vortex.bench.stats import Percentiles

    return Percentiles(0, *(float("nan"),) * 6)


def _video(animator: LivePortraitAnimator, source) -> SlotVideo:
    size = animator.output_size
    return SlotVideo(animator, source, None, torch.zeros(3, size, size, dtype=torch.uint8, device=animator.device))


def _stream(queue: RenderQueue, video: SlotVideo, driving, sink, priority: int = 1) -> None:
    """One slot's frames through the queue as the engine streams them: batches at multiples of the
    ring, two in flight, each written to `sink` while the next renders."""
    token, ring, n = CancelToken(), queue.capacity, driving.n_frames
    jobs, start = [], 0
    while start < n or jobs:
        while start < n and len(jobs) < 2:
            stop = min(start + ring, n)
            jobs.append(queue.submit(video, start, driving.slice(start, stop), priority))
            start = stop
        job = jobs.pop(0)
        for i, frame in enumerate(job.result(token)):
            sink(job.start + i, frame)


def slot_render(animator: LivePortraitAnimator, source, driving, ring_frames: int, fps: int = 24,
                encode: bool = False, label: str = "") -> Timing:
    """A whole slot through the engine's render queue (ring on the device → host → sink), once warm."""
    n = driving.n_frames
    size = animator.output_size
    queue = RenderQueue(torch.empty(ring_frames, 3, size, size, dtype=torch.uint8, device=animator.device), None, True)
    video = _video(animator, source)
    try:
        with tempfile.TemporaryDirectory(prefix="vortex-render-") as tmp:
            def run() -> None:
                if not encode:
                    _stream(queue, video, driving, lambda i, frame: None)
                    return
                with Mp4Writer(Path(tmp) / "slot.mp4", width=size, height=size, fps=fps, sample_rate=SAMPLE_RATE) as w:
                    w.write_audio(np.zeros(n * SAMPLE_RATE // fps, dtype=np.float32))
                    _stream(queue, video, driving, lambda i, frame: w.write_frame(frame))

            what = "render + H.264 encode (overlapped)" if encode else "render → host, no encode"
            t = time_calls(f"{n}-frame slot, {what}{label}", run, device=animator.device, repeat=1, warmup=1)
    finally:
        queue.close()
    return per_frame(t, n, f"; batch {animator.cfg.batch_frames}, ring {ring_frames}")


def concurrent_streams(animator: LivePortraitAnimator, sources: list, driving, streams=(1, 4, 16),
                       frames: int = 96) -> list[Timing]:
    """N slots streaming at once (one thread each, as N channels would), through one render queue
    whose ring holds batch_frames x N frames: the queue batches the streams' frames into shared
    W + G calls (render_many). Frames per second of all streams together, no encode."""
    import threading

    out = []
    size, batch = animator.output_size, animator.cfg.batch_frames
    part = driving.slice(0, min(frames, driving.n_frames))
    for n in streams:
        queue = RenderQueue(torch.empty(batch * n, 3, size, size, dtype=torch.uint8, device=animator.device), None, True)
        videos = [_video(animator, sources[i % len(sources)]) for i in range(n)]

        def run() -> None:
            threads = [threading.Thread(target=_stream, args=(queue, v, part, lambda i, f: None)) for v in videos]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        try:
            t = time_calls(f"{n} concurrent stream(s), {part.n_frames} frames each", run, device=animator.device,
                           repeat=1, warmup=1)
        except torch.OutOfMemoryError as exc:
            out.append(Timing(f"{n} concurrent stream(s)", _nan(), note=f"out of memory: {str(exc).splitlines()[0]}"))
            torch.cuda.empty_cache()
            continue
        finally:
            queue.close()
        total = part.n_frames * n
        ms = t.ms.p50 / total
        out.append(Timing(t.label, t.ms, t.peak_allocated, t.peak_reserved,
                          f"{1000 / ms:.0f} frames/s in all, {queue.jobs_rendered / max(queue.batches, 1):.1f} "
                          f"streams a call, ring {batch * n}"))
    return out


def frame_by_frame(animator: LivePortraitAnimator, source, rows: DrivingRows, frames: int, label: str,
                   repeat: int = 3) -> Timing:
    """One frame per W + G call, each copied to the host: the public inference's loop shape."""
    def run() -> None:
        for i in range(frames):
            frames_uint8(animator, source, rows.rows(i, i + 1)).cpu()

    t = time_calls(f"{label}, frame by frame ({frames} frames)", run, device=animator.device, repeat=repeat, warmup=1)
    return per_frame(t, frames)


def cuda_graph(animator: LivePortraitAnimator, source, rows: DrivingRows, batch: int, repeat: int = 10) -> Timing:
    """render_frames for a fixed batch captured once as a CUDA graph and replayed: no launch gaps."""
    from vortex.models.liveportrait.animator import to_uint8

    static = rows.rows(0, batch)
    static = DrivingRows(*(t.clone() for t in (static.exp_delta, static.rotation_delta, static.translation_delta,
                                                 static.scale_factor)))
    stream = torch.cuda.Stream(animator.device)
    stream.wait_stream(torch.cuda.current_stream(animator.device))
    with torch.cuda.stream(stream):
        for _ in range(3):  # warm up on the side stream, as capture requires
            frames_uint8(animator, source, static)
    torch.cuda.current_stream(animator.device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.inference_mode(), torch.cuda.graph(graph):
        out = to_uint8(animator.render_frames(source, static))
    nxt = rows.rows(batch, 2 * batch)

    def replay() -> None:
        for mine, new in zip((static.exp_delta, static.rotation_delta, static.translation_delta, static.scale_factor),
                             (nxt.exp_delta, nxt.rotation_delta, nxt.translation_delta, nxt.scale_factor)):
            mine.copy_(new)
        graph.replay()

    t = time_calls(f"W + G, batch {batch}, CUDA graph replay", replay, device=animator.device, repeat=repeat, warmup=2)
    del out
    return per_frame(t, batch)


def compiled(animator: LivePortraitAnimator, source, rows: DrivingRows, batch: int, mode: str = "default",
             repeat: int = 5) -> Timing:
    """W and G through torch.compile (Inductor); the first calls compile, and that time is reported."""
    nets = animator.networks
    eager_w, eager_g = nets.W, nets.G
    nets.W, nets.G = torch.compile(eager_w, mode=mode, dynamic=False), torch.compile(eager_g, mode=mode, dynamic=False)
    try:
        chunk = rows.rows(0, batch)
        start = time.perf_counter()
        frames_uint8(animator, source, chunk)
        _sync(animator.device)
        compile_s = time.perf_counter() - start
        t = time_calls(f"W + G, batch {batch}, torch.compile({mode})", lambda: frames_uint8(animator, source, chunk),
                       device=animator.device, repeat=repeat, warmup=2)
    finally:
        nets.W, nets.G = eager_w, eager_g
    return per_frame(t, batch, f"; first call (compile) {compile_s:.0f} s")


def cudnn_benchmark(animator: LivePortraitAnimator, source, rows: DrivingRows, batch: int = 8) -> Timing:
    """The same call with cuDNN's autotuner on (it times every algorithm once per shape, then keeps the best)."""
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        t = batch_sweep(animator, source, rows, (batch,))[0]
    finally:
        torch.backends.cudnn.benchmark = old
    return Timing(t.label + ", cudnn.benchmark", t.ms, t.peak_allocated, t.peak_reserved, t.note)


# ---- the public networks ------------------------------------------------------------------------------------
def public_available(folder: str | Path = PUBLIC_FOLDER) -> bool:
    root = Path(folder)
    return (root / "src" / "modules" / "warping_network.py").is_file() and (root / "src" / "config" / "models.yaml").is_file()


def public_networks(folder: str | Path, weights_root: Path, device: torch.device):
    """The public WarpingNetwork and SPADEDecoder, built as the public loader builds them (from
    models.yaml), holding the same weight files as ours (strict load), fp32."""
    import yaml

    root = str(Path(folder).resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    warping = importlib.import_module("src.modules.warping_network")
    spade = importlib.import_module("src.modules.spade_generator")
    params = yaml.safe_load((Path(folder) / "src" / "config" / "models.yaml").read_text())["model_params"]
    w = warping.WarpingNetwork(**params["warping_module_params"])
    g = spade.SPADEDecoder(**params["spade_generator_params"])
    for net, file in ((w, "base_models/warping_module.pth"), (g, "base_models/spade_generator.pth")):
        net.load_state_dict(torch.load(weights_root / file, map_location="cpu", weights_only=True), strict=True)
    return w.to(device).eval(), g.to(device).eval()


def driving_keypoints(animator: LivePortraitAnimator, source, rows: DrivingRows) -> torch.Tensor:
    """(n, 21, 3) fp32 x_d as the animator composes it (with stitching when the profile asks for it)."""
    n = len(rows)
    x_d = compose_driving_keypoints(source.kp_info, rows)
    if animator.cfg.stitching:
        x_d = stitch(animator.networks.stitching, source.x_s.expand(n, -1, -1), x_d)
    return x_d


@torch.no_grad()
def public_comparison(folder: str | Path, weights_root: Path, ours16: LivePortraitAnimator,
                      ours32: LivePortraitAnimator, source16, source32, rows: DrivingRows, frames: int = 48,
                      batch: int = 8, repeat: int = 3, warmup: int = 1) -> dict[str, Any]:
    """Same weights, same inputs. Numerics: our fp32 W + G against the public fp32 W + G. Speed: the
    public loop (fp32 weights under fp16 autocast, one frame per call, each frame copied to the
    host as numpy, as its wrapper does) against our fp16 render path (batched W + G, uint8 on the
    device, one host copy per batch)."""
    device = ours16.device
    w, g = public_networks(folder, weights_root, device)
    x_s = source32.x_s
    x_d = driving_keypoints(ours32, source32, rows.rows(0, frames))
    feature32 = source32.feature

    # numerics, fp32 both, up to 4 frames in one call
    k = min(4, frames)
    volume = feature32.expand(k, *feature32.shape[1:])
    ref = g(feature=w(volume, kp_source=x_s.expand(k, -1, -1), kp_driving=x_d[:k])["out"])
    mine = ours32.networks.G(ours32.networks.W(volume, kp_source=x_s.expand(k, -1, -1), kp_driving=x_d[:k])["out"])
    max_abs = float((mine - ref).abs().max())
    rel = float((mine - ref).norm() / ref.norm())

    def public_loop() -> None:
        for i in range(frames):
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=device.type == "cuda"):
                out = g(feature=w(feature32, kp_source=x_s, kp_driving=x_d[i:i + 1])["out"])
            image = out.float().cpu().numpy().transpose(0, 2, 3, 1)
            np.clip(np.clip(image, 0, 1) * 255, 0, 255).astype(np.uint8)

    def our_loop() -> None:
        for start in range(0, frames, batch):
            frames_uint8(ours16, source16, rows.rows(start, min(start + batch, frames))).cpu()

    precision = "fp16 autocast" if device.type == "cuda" else "fp32 (CPU: no autocast)"
    public_t = per_frame(time_calls(f"public LivePortrait W + G, frame by frame, {precision} ({frames} frames)",
                                    public_loop, device=device, repeat=repeat, warmup=warmup), frames)
    ours_t = per_frame(time_calls(f"Vortex render path, {str(ours16.dtype).split('.')[-1]}, batch {batch} "
                                  f"({frames} frames)", our_loop, device=device, repeat=repeat, warmup=warmup), frames)
    ratio = (public_t.ms.p50 / frames) / (ours_t.ms.p50 / frames)
    return {"max_abs_diff_fp32": max_abs, "rel_diff_fp32": rel, "public": public_t, "ours": ours_t,
            "speedup": ratio}
