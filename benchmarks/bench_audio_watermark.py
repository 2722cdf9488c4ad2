"""The audio watermark (vortex.provenance.audio_mark): its level under the speech, what it costs, and
its bit errors after the copies a voice clip goes through (docs/provenance.md).

Takes an unmarked slot MP4 with speech (`vortex generate examples/rick_intro.json --no-sign -o P`),
marks its audio with several payloads, and for each copy prints the payloads found, the bit errors
(before the reader's CRC-checked correction) and the reader's margin:
AAC 96 kbit/s, AAC 64 kbit/s, AAC 96 kbit/s at 44.1 kHz, a 2 s clip cut from the middle, and that
clip through AAC 96 kbit/s. Then the unmarked audio and noise (false finds, want 0).

    python benchmarks/bench_audio_watermark.py P [--payloads 8]
"""

from __future__ import annotations

import argparse
import io
import time

import av
import numpy as np

from vortex.media import read_mono_audio
from vortex.provenance import audio_mark as am
from vortex.provenance.watermark import payload_bits


def decode(source, rate: int = am.RATE) -> np.ndarray:
    return read_mono_audio(source, rate)[0]


def aac(x: np.ndarray, bitrate: int, rate: int = am.RATE) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("aac", rate=rate)
        s.bit_rate, s.layout = bitrate, "mono"
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(x.reshape(1, -1).astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = am.RATE
        for g in resampler.resample(frame) + resampler.resample(None):
            for p in s.encode(g):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    buf.seek(0)
    return decode(buf, rate), rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mp4")
    ap.add_argument("--payloads", type=int, default=8)
    args = ap.parse_args()
    x = decode(args.mp4)
    mid = len(x) // 2 - am.RATE
    print(f"{args.mp4}: {len(x) / am.RATE:.2f} s of audio; DELTA_DB {am.DELTA_DB}, {am.LOW_HZ}-{am.HIGH_HZ} Hz")
    copies = {
        "as marked": lambda y: (y, am.RATE),
        "AAC 96k": lambda y: aac(y, 96_000),
        "AAC 64k": lambda y: aac(y, 64_000),
        "AAC 96k 44.1 kHz": lambda y: aac(y, 96_000, 44_100),
        "2 s clip": lambda y: (y[mid:mid + 2 * am.RATE], am.RATE),
        "2 s clip, AAC 96k": lambda y: aac(y[mid:mid + 2 * am.RATE], 96_000),
    }
    found = {k: 0 for k in copies}
    errors = {k: [] for k in copies}
    margins = {k: [] for k in copies}
    snr, mark_cpu, read_cpu = [], 0.0, 0.0
    for k in range(args.payloads):
        node, slot = f"node-{k}", 1000 + 37 * k
        t = time.process_time()
        y = am.mark_audio(x, node, slot)
        mark_cpu += time.process_time() - t
        snr.append(10 * np.log10(np.sum(x ** 2) / np.sum((y - x) ** 2)))
        want = payload_bits(node, slot)
        for name, copy in copies.items():
            audio, rate = copy(y)
            t = time.process_time()
            read = am.read_audio_mark(audio, rate)
            read_cpu += time.process_time() - t
            ok = read["found"] and read["slot_id_low16"] == slot
            found[name] += ok
            errors[name].append(sum(a != str(int(b)) for a, b in zip(read.get("bits", ""), want)) if read.get("bits") else 48)
            margins[name].append(read["margin"])
    print(f"speech-to-mark ratio {np.mean(snr):.1f} dB (min {np.min(snr):.1f}); marking "
          f"{1000 * mark_cpu / (args.payloads * len(x) / am.RATE):.1f} CPU-ms a second of audio; reading "
          f"{read_cpu / (args.payloads * len(copies)):.2f} CPU-s a copy")
    print(f"{'copy':<20} {'found':>7} {'bit errors (of 48), raw':>26} {'margin P50':>11}")
    for name in copies:
        print(f"{name:<20} {found[name]:>3}/{args.payloads:<3} {str(errors[name]):>26} {np.median(margins[name]):>11.2f}")
    rng = np.random.default_rng(0)
    negatives = [am.read_audio_mark(x)] + [am.read_audio_mark(x[s:s + 2 * am.RATE]) for s in range(0, len(x) - 2 * am.RATE, am.RATE)]
    negatives += [am.read_audio_mark(rng.standard_normal(4 * am.RATE).astype(np.float32) * 0.1) for _ in range(20)]
    print(f"unmarked: {sum(r['found'] for r in negatives)} false finds in {len(negatives)} reads "
          f"(the audio whole, its 2 s clips, 20 noises)")


if __name__ == "__main__":
    main()
