"""Fragmented MP4 (ISO BMFF) for the channel's LL-HLS parts: one init segment, then moof+mdat fragments.

Written by hand (about 200 lines of boxes) rather than through libavformat's mov muxer, because the
channel needs what that muxer does not let a caller set per call: every fragment's decode time is
the stream's global frame / sample index (so parts cut anywhere, written by any run, line up
gaplessly), one fragment is exactly one part, and the bytes of a part never change once written.

Layout: ``init_segment`` = ftyp + moov (track 1 H.264 ``avc1`` at 90 kHz, track 2 AAC-LC ``mp4a``
at the sample rate, empty sample tables, mvex/trex); ``fragment`` = moof (mfhd, a traf per track
with tfhd default-base-is-moof, tfdt version 1, trun) + one mdat holding the video samples then
the audio samples. hls.js reads a muxed init like this as one "audiovideo" SourceBuffer.

x264 hands out Annex B access units (start codes); MP4 samples are length-prefixed NAL units,
with SPS/PPS moved into the ``avcC`` record of the init segment.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

VIDEO_TRACK, AUDIO_TRACK = 1, 2
VIDEO_TIMESCALE = 90_000  # the MPEG clock: whole ticks per frame at 24, 25, 30, 50, 60 fps
_SPS, _PPS, _AUD = 7, 8, 9
_HIGH_PROFILES = (100, 110, 122, 144)  # avcC carries chroma/bit-depth fields for these
_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
# trun sample flags: a sync sample depends on nothing; any other depends on others and is not sync.
_KEY_FLAGS, _DELTA_FLAGS = 0x02000000, 0x01010000
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class Sample:
    """One coded access unit: its bytes (MP4 form), duration and pts - dts in its track's timescale."""

    data: bytes
    duration: int
    key: bool = True
    composition_offset: int = 0


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


# -- H.264 -----------------------------------------------------------------------------------------

def nal_units(annexb: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit (3- or 4-byte start codes)."""
    units, i, n = [], 0, len(annexb)
    starts = []
    while True:
        j = annexb.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append(j + 3)
        i = j + 3
    for k, start in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else n
        unit = annexb[start:end]
        while unit.endswith(b"\x00"):  # trailing zero bytes belong to the next 4-byte start code
            unit = unit[:-1]
        if unit:
            units.append(unit)
    return units


def parameter_sets(annexb: bytes) -> tuple[bytes, bytes] | None:
    """(SPS, PPS) of an access unit that carries them (x264 repeats them at every IDR), else None."""
    units = nal_units(annexb)
    sps = next((u for u in units if u[0] & 0x1F == _SPS), None)
    pps = next((u for u in units if u[0] & 0x1F == _PPS), None)
    return (sps, pps) if sps and pps else None


def avcc_sample(annexb: bytes) -> bytes:
    """An access unit as an MP4 sample: 4-byte lengths; SPS, PPS and delimiters left to the avcC."""
    return b"".join(struct.pack(">I", len(u)) + u for u in nal_units(annexb) if u[0] & 0x1F not in (_SPS, _PPS, _AUD))


def avc_codec(sps: bytes) -> str:
    """The RFC 6381 codec string (``avc1.64001e``) of an SPS."""
    return f"avc1.{sps[1]:02x}{sps[2]:02x}{sps[3]:02x}"


def _avcc(sps: bytes, pps: bytes) -> bytes:
    record = bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]) + struct.pack(">H", len(sps)) + sps
    record += b"\x01" + struct.pack(">H", len(pps)) + pps
    if sps[1] in _HIGH_PROFILES:  # 4:2:0, 8-bit luma and chroma, no SPS extensions (yuv420p)
        record += bytes([0xFC | 1, 0xF8, 0xF8, 0])
    return box(b"avcC", record)


# -- AAC -------------------------------------------------------------------------------------------

def audio_specific_config(sample_rate: int, channels: int = 1) -> bytes:
    """The 2-byte AudioSpecificConfig of AAC-LC (object type 2)."""
    if sample_rate not in AAC_RATES:
        raise ValueError(f"sample_rate {sample_rate} is not an AAC rate; allowed: {AAC_RATES}")
    value = (2 << 11) | (AAC_RATES.index(sample_rate) << 7) | (channels << 3)
    return struct.pack(">H", value)


def _descriptor(tag: int, payload: bytes) -> bytes:
    n = len(payload)
    size = bytes([0x80 | (n >> 21) & 0x7F, 0x80 | (n >> 14) & 0x7F, 0x80 | (n >> 7) & 0x7F, n & 0x7F])
    return bytes([tag]) + size + payload


def _esds(sample_rate: int, bitrate: int) -> bytes:
    config = _descriptor(4, bytes([0x40, 0x15]) + b"\x00\x00\x00" + struct.pack(">II", bitrate, bitrate)
                         + _descriptor(5, audio_specific_config(sample_rate)))
    es = _descriptor(3, struct.pack(">HB", AUDIO_TRACK, 0) + config + _descriptor(6, b"\x02"))
    return full_box(b"esds", 0, 0, es)


# -- the init segment ------------------------------------------------------------------------------

def init_segment(*, width: int, height: int, sps: bytes, pps: bytes, sample_rate: int, audio_bitrate: int) -> bytes:
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"isom", b"mp41", b"avc1")
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x00010000, 0x0100), _MATRIX,
                    bytes(24), struct.pack(">I", AUDIO_TRACK + 1))
    avc1 = box(b"avc1", bytes(6), struct.pack(">H", 1), bytes(16), struct.pack(">HHIII", width, height, 0x00480000,
               0x00480000, 0), struct.pack(">H", 1), bytes(32), struct.pack(">Hh", 0x0018, -1), _avcc(sps, pps))
    mp4a = box(b"mp4a", bytes(6), struct.pack(">H", 1), bytes(8), struct.pack(">HHHHI", 1, 16, 0, 0, sample_rate << 16),
               _esds(sample_rate, audio_bitrate))
    video = _trak(VIDEO_TRACK, VIDEO_TIMESCALE, b"vide", avc1, width, height)
    audio = _trak(AUDIO_TRACK, sample_rate, b"soun", mp4a, 0, 0)
    trex = [full_box(b"trex", 0, 0, struct.pack(">IIIII", track, 1, 0, 0, 0)) for track in (VIDEO_TRACK, AUDIO_TRACK)]
    return ftyp + box(b"moov", mvhd, video, audio, box(b"mvex", *trex))


def _trak(track: int, timescale: int, handler: bytes, entry: bytes, width: int, height: int) -> bytes:
    volume = 0x0100 if handler == b"soun" else 0
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, track, 0, 0), bytes(8),
                    struct.pack(">hhhH", 0, 0, volume, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, timescale, 0, 0x55C4, 0))  # language "und"
    name = b"VideoHandler\x00" if handler == b"vide" else b"SoundHandler\x00"
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I", 0), handler, bytes(12), name)
    header = full_box(b"vmhd", 0, 1, bytes(8)) if handler == b"vide" else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    empty = [full_box(b"stts", 0, 0, bytes(4)), full_box(b"stsc", 0, 0, bytes(4)),
             full_box(b"stsz", 0, 0, bytes(8)), full_box(b"stco", 0, 0, bytes(4))]
    stbl = box(b"stbl", full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry), *empty)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", header, dinf, stbl)))


# -- fragments -------------------------------------------------------------------------------------

def fragment(sequence: int, video: Sequence[Sample], video_time: int, audio: Sequence[Sample], audio_time: int) -> bytes:
    """One moof + mdat: ``video`` samples from decode time ``video_time`` (90 kHz), ``audio`` samples
    from ``audio_time`` (the sample rate). A track with no samples gets no traf."""
    tracks = [(t, s, time) for t, s, time in ((VIDEO_TRACK, video, video_time), (AUDIO_TRACK, audio, audio_time)) if s]
    if not tracks:
        raise ValueError("a fragment needs at least one sample")

    def moof(offsets: Iterable[int]) -> bytes:
        trafs = [_traf(track, samples, time, offset) for (track, samples, time), offset in zip(tracks, offsets)]
        return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)

    size = len(moof([0] * len(tracks)))  # the offsets are fixed-width: the size does not depend on them
    offsets, at = [], size + 8
    for _, samples, _ in tracks:
        offsets.append(at)
        at += sum(len(s.data) for s in samples)
    data = b"".join(s.data for _, samples, _ in tracks for s in samples)
    return moof(offsets) + box(b"mdat", data)


def _traf(track: int, samples: Sequence[Sample], decode_time: int, data_offset: int) -> bytes:
    tfhd = full_box(b"tfhd", 0, 0x020000, struct.pack(">I", track))  # default-base-is-moof
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
    if track == VIDEO_TRACK:  # data offset, duration, size, flags, composition offset (signed: version 1)
        rows = b"".join(struct.pack(">IIIi", s.duration, len(s.data), _KEY_FLAGS if s.key else _DELTA_FLAGS,
                                    s.composition_offset) for s in samples)
        trun = full_box(b"trun", 1, 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800,
                        struct.pack(">Ii", len(samples), data_offset), rows)
    else:  # audio: every sample is a sync sample (trex default flags 0)
        rows = b"".join(struct.pack(">II", s.duration, len(s.data)) for s in samples)
        trun = full_box(b"trun", 0, 0x000001 | 0x000100 | 0x000200, struct.pack(">Ii", len(samples), data_offset), rows)
    return box(b"traf", tfhd, tfdt, trun)
