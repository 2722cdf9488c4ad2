"""What the pixel watermark costs in H.264 bits, against the window its sign flips on (docs/provenance.md).

Takes an unmarked channel recording (`vortex channel run examples/program_channel.yaml --out D
--pace asap --max-slots 3 --no-sign`), marks its first 144 frames on the luma as the channel does
(`LumaMarker`) with the sign flipping every WINDOW frames, encodes each with x264 as the stream does
(CRF 25, zerolatency), and prints the size against the unmarked encode, the luma PSNR of the encode
against what went into x264 (at the flips and elsewhere), and whether a 640x360 CRF 30 copy still
reads the payload (the reader's PERIOD follows the window). A window of 10**6 never flips.

    python benchmarks/bench_watermark_window.py D [--preset superfast] [--windows 6 12 24 1000000]
"""

from __future__ import annotations

import argparse
import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vortex.channel.hls.playlist import read_playlist
from vortex.provenance import watermark as wm


def recording(folder: Path, n: int) -> list[av.VideoFrame]:
    listed = read_playlist(folder)
    data = (folder / listed.segments[0].map_uri).read_bytes()
    data += b"".join((folder / s.uri).read_bytes() for s in listed.segments)
    with av.open(io.BytesIO(data)) as c:
        return [f.reformat(format="yuv420p") for f in c.decode(c.streams.video[0])][:n]


def encode(frames, crf: int, preset: str, size=None) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=24, options={"crf": str(crf), "preset": preset, "tune": "zerolatency"})
        v.width, v.height = size or (frames[0].width, frames[0].height)
        v.pix_fmt = "yuv420p"
        for i, f in enumerate(frames):
            g = f if size is None else f.reformat(width=size[0], height=size[1])
            g.pts, g.time_base = i, Fraction(1, 24)
            for p in v.encode(g):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
    return buf.getvalue()


def luma_psnr(encoded: bytes, source, window: int) -> str:
    """Mean luma PSNR of the decoded encode against what went into x264: frames where the sign flips, others."""
    h = source[0].height
    dec = [f.to_ndarray()[:h].astype(np.float64) for f in av.open(io.BytesIO(encoded)).decode(video=0)]
    psnr = np.array([10 * np.log10(255 ** 2 / max(1e-9, float(((d - s.to_ndarray()[:h]) ** 2).mean())))
                     for d, s in zip(dec, source)])
    flips = np.array([i > 0 and i % window == 0 for i in range(len(psnr))])
    return f"luma PSNR {psnr[~flips].mean():.1f} dB" + (f", {psnr[flips].mean():.1f} at the flips" if flips.any() else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="an unmarked channel's output folder (index.m3u8, seg-*.m4s)")
    ap.add_argument("--preset", default="superfast", help="x264 preset: the program stream's superfast, 512²'s veryfast")
    ap.add_argument("--frames", type=int, default=144)
    ap.add_argument("--windows", type=int, nargs="+", default=[6, 12, 24, 10**6])
    a = ap.parse_args()
    frames = recording(a.folder, a.frames)
    h, w = frames[0].height, frames[0].width
    plain = encode(frames, 25, a.preset)
    base = len(plain)
    print(f"{w}x{h}, {len(frames)} frames, unmarked {base / 1e3:.0f} KB, {luma_psnr(plain, frames, 10**6)}")
    for window in a.windows:
        wm.WINDOW, wm.PERIOD = window, 2 * window  # module constants: the embedder's and the reader's
        marker = wm.LumaMarker("bench-node", 1234, h, w)
        source = [marker(i, f, copy=True) for i, f in enumerate(frames)]
        marked = encode(source, 25, a.preset)
        line = f"window {window}: {len(marked) / 1e3:.0f} KB (x{len(marked) / base:.2f}), {luma_psnr(marked, source, window)}"
        if window * 2 < len(frames):
            copy = encode(list(av.open(io.BytesIO(marked)).decode(video=0)), 30, "veryfast", (640, 360))
            with av.open(io.BytesIO(copy)) as c:
                read = wm.read_frames([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
            line += (f"; 640x360 CRF 30 copy: found {read['found']}, bit errors "
                     f"{wm.bit_errors(read, 'bench-node', 1234)}/48, margin {read.get('margin')}")
        print(line)


if __name__ == "__main__":
    main()
