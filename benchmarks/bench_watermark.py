"""The watermark's cost and robustness (docs/provenance.md): marks an unmarked slot's frames (make
it with `vortex generate R -o slot.mp4 --no-sign`), writes them as the engine does (H.264 CRF 20,
with the slot's own audio), then reads the payload back from copies:

    whole file   re-encoded at CRF 30; scaled to 640x360; both; its audio re-encoded to AAC 96 kbit/s
                 with the video stream copied (the frames, so the mark, are untouched: checked by
                 comparing the video packets)
    cut          frames START..end (default 37) re-encoded at CRF 23, at CRF 30, scaled to 640x360,
                 and at CRF 30 from a sweep of cut points; each also read with the frame-0-aligned
                 reader that came before (`--compare`), which assumed the copy starts at frame 0

Prints PSNR, CPU ms a frame (embed, read) and, per copy, found, the bit errors of 48 (against the
payload embedded, whether or not the CRC held) and the reader's margin.

    python benchmarks/bench_watermark.py SLOT.mp4 [--alpha 3] [--start 37]
    python benchmarks/bench_watermark.py SIGNED.mp4 --marked NODE:SLOT_ID   # the engine's own mark
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vortex.media import write_mp4
from vortex.provenance import watermark as wm
from vortex.provenance.watermark import Marker, bit_errors, read_frames, read_watermark_mp4


def decode(path):
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        rate = a.rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1, f.samples)[0] for f in c.decode(a)]).astype(np.float32)
    return frames, pcm, rate


def reencode(src: Path, dst: Path, crf: int, size=None, start: int = 0) -> None:
    """The video of `src` from frame `start` on, as H.264 at `crf` (and `size`): a cut, re-encoded clip."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        v = out.add_stream("libx264", rate=int(round(float(vin.average_rate))), options={"crf": str(crf), "preset": "veryfast"})
        v.width, v.height = size or (vin.width, vin.height)
        v.pix_fmt = "yuv420p"
        first = None
        for index, frame in enumerate(inp.decode(vin)):
            if index < start:
                continue
            first = frame.pts if first is None else first
            frame.pts -= first  # the clip starts at 0
            frame = frame.reformat(width=v.width, height=v.height, format="yuv420p")
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)


def reencode_audio(src: Path, dst: Path, bitrate: int = 96_000) -> None:
    """The whole file with its audio re-encoded to AAC at `bitrate`, its video packets copied as they are."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        v = out.add_stream_from_template(vin)
        a = out.add_stream("aac", rate=ain.rate)
        a.bit_rate = bitrate
        for packet in inp.demux(vin, ain):
            if packet.stream is vin:
                if packet.dts is not None:
                    packet.stream = v
                    out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for p in a.encode(frame):
                        out.mux(p)
        for p in a.encode():
            out.mux(p)


def video_packets_sha(path: Path) -> str:
    h = hashlib.sha256()
    with av.open(str(path)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.size:
                h.update(bytes(p))
    return h.hexdigest()


def audio_bitrate(path: Path) -> float:
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        size = sum(p.size for p in c.demux(a) if p.size)
        return size * 8 / float(a.duration * a.time_base)


def frame0_read(frames) -> dict:
    """The reader before the cut-clip change: signs aligned to the copy's frame 0, no temporal high-pass."""
    acc = sum(wm.sign_at(i) * wm._cells(f) for i, f in enumerate(frames))
    scores = np.zeros(wm.BITS)
    np.add.at(scores, wm._BIT_OF.reshape(-1), (acc * wm._CHIP).reshape(-1))
    bits = (scores > 0).astype(np.uint8)
    return {"found": wm._decode_bits(bits) is not None, "bits": "".join(map(str, bits)),
            "margin": round(float(np.median(np.abs(scores)) / (np.std(scores) + 1e-9)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mp4", type=Path, help="an unmarked slot (vortex generate --no-sign)")
    ap.add_argument("--alpha", type=float, default=3.0)
    ap.add_argument("--start", type=int, default=37, help="the cut clip's first frame")
    ap.add_argument("--sweep", default="13,16,40,43,60,100", help="more cut points, read after CRF 30")
    ap.add_argument("--marked", metavar="NODE:SLOT_ID",
                    help="MP4 is an engine slot marked already (signed) with this payload: read its copies only")
    a = ap.parse_args()
    frames, pcm, rate = decode(a.mp4)
    n, h, w, _ = frames.shape
    if a.marked:  # the engine's own mark, decoded from its MP4 (so the copies are of a second generation)
        node, _, slot_text = a.marked.rpartition(":")
        slot, marked, embed_ms, psnr = int(slot_text), frames, float("nan"), float("nan")
    else:
        node, slot = "bench-node", 4242
        marker = Marker(node, slot, h, w, alpha=a.alpha)
        t = time.process_time()
        marked = np.stack([marker(i, f) for i, f in enumerate(frames)])
        embed_ms = (time.process_time() - t) * 1000 / n
        mse = np.mean((marked.astype(np.float64) - frames) ** 2)
        psnr = 10 * np.log10(255 ** 2 / mse)
    t = time.process_time()
    raw = read_frames(marked)
    read_ms = (time.process_time() - t) * 1000 / n
    rows, old = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        m = tmp / "m.mp4"
        write_mp4(m, marked, pcm, fps=24, sample_rate=rate)
        s = a.start
        copies = {"engine MP4 (CRF 20)": None,
                  "re-encode CRF 30": dict(crf=30), "scaled 640x360 (CRF 23)": dict(crf=23, size=(640, 360)),
                  "640x360 at CRF 30": dict(crf=30, size=(640, 360)),
                  f"cut {s}.. (CRF 23)": dict(crf=23, start=s), f"cut {s}.. CRF 30": dict(crf=30, start=s),
                  f"cut {s}.. 640x360": dict(crf=23, size=(640, 360), start=s),
                  f"cut {s}.. 640x360 CRF 30": dict(crf=30, size=(640, 360), start=s)}
        copies.update({f"cut {k}.. CRF 30": dict(crf=30, start=int(k)) for k in a.sweep.split(",") if k})
        for name, how in copies.items():
            path = m if how is None else tmp / "copy.mp4"
            if how is not None:
                reencode(m, path, **how)
            rows[name] = read_watermark_mp4(path)
            if how is not None and how.get("start"):
                with av.open(str(path)) as c:
                    old[name] = frame0_read(f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0]))
        reencode_audio(m, tmp / "aac.mp4")
        rows["audio to AAC 96 kbit/s (video copied)"] = read_watermark_mp4(tmp / "aac.mp4")
        same = video_packets_sha(m) == video_packets_sha(tmp / "aac.mp4")
        kbps = (audio_bitrate(m) / 1000, audio_bitrate(tmp / "aac.mp4") / 1000)
        unmarked = None if a.marked else read_frames(frames)
    print(f"{n} frames {w}x{h}, alpha {a.alpha}: PSNR {psnr:.1f} dB, embed {embed_ms:.2f} CPU-ms/frame, "
          f"read {read_ms:.2f} CPU-ms/frame")
    for name, r in rows.items():
        line = (f"  {name:<40} found={r['found']!s:<5} bit errors {bit_errors(r, node, slot):2d}/48  "
                f"margin {r.get('margin')}  offset {r.get('offset')}")
        if r.get("corrected_bit") is not None:
            line += f"  (one bit corrected: {r['corrected_bit']})"
        if r.get("found") and (r.get("node_tag"), r.get("slot_id_low16")) != (f"{wm.node_tag(node):04x}", slot):
            line += "  WRONG PAYLOAD"
        if name in old:
            o = old[name]
            line += f"   | frame-0 reader: found={o['found']!s:<5} bit errors {bit_errors(o, node, slot):2d}/48"
        print(line)
    print(f"  AAC re-encode: audio {kbps[0]:.0f} -> {kbps[1]:.0f} kbit/s; video packets identical: {same}")
    if unmarked is not None:
        print(f"  {'unmarked original':<40} found={unmarked['found']!s:<5} bit errors {bit_errors(unmarked, node, slot):2d}/48"
              f"  margin {unmarked.get('margin')}")


if __name__ == "__main__":
    main()
