"""MP4 output: exact frame and sample counts, codecs, faststart, fidelity, atomic writes."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vortex.media import MediaInfo, Mp4Writer, probe_mp4, write_mp4

SR = 24000
SIZE = 512


def smooth_frame(index: int, size: int = SIZE) -> np.ndarray:
    """A smooth colour pattern that moves 8 px a frame, so every frame differs from its neighbours."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    phase = index * 8 / size
    r = 128 + 100 * np.sin(2 * np.pi * (x + phase))
    g = 128 + 100 * np.cos(2 * np.pi * (y - phase))
    b = 128 + 60 * np.sin(2 * np.pi * (x + y))
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def speech_like(n_samples: int) -> np.ndarray:
    """A rising chirp under a slow envelope: not periodic, so any sample offset shows up."""
    t = np.arange(n_samples) / SR
    envelope = 0.5 + 0.4 * np.sin(2 * np.pi * 1.3 * t)
    return (0.5 * envelope * np.sin(2 * np.pi * (200 * t + 150 * t**2))).astype(np.float32)


def lengths(duration_sec: float, fps: int) -> tuple[int, int]:
    return round(duration_sec * fps), round(duration_sec * SR)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def top_level_boxes(path: Path) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of the file's top-level boxes."""
    return _boxes(path.read_bytes(), 0, path.stat().st_size)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, box end) of the boxes in data[start:end]; 32-bit sizes suffice here."""
    found, offset = [], start
    while offset + 8 <= end:
        size, box = struct.unpack(">I4s", data[offset : offset + 8])
        found.append((box, offset + 8, offset + size))
        offset += size
    return found


def audio_edit_list(path: Path) -> tuple[int, int, int]:
    """Read (movie timescale, segment duration, media_time) of the sound track's edit list by hand,
    independently of ffmpeg's demuxer."""
    data = path.read_bytes()
    (moov,) = [b for b in _boxes(data, 0, len(data)) if b[0] == b"moov"]
    children = _boxes(data, moov[1], moov[2])
    mvhd = next(b for b in children if b[0] == b"mvhd")
    assert data[mvhd[1]] == 0, "expected a version-0 mvhd"
    movie_timescale = struct.unpack(">I", data[mvhd[1] + 12 : mvhd[1] + 16])[0]
    for trak in (b for b in children if b[0] == b"trak"):
        inner = {b[0]: b for b in _boxes(data, trak[1], trak[2])}
        mdia = {b[0]: b for b in _boxes(data, inner[b"mdia"][1], inner[b"mdia"][2])}
        handler = data[mdia[b"hdlr"][1] + 8 : mdia[b"hdlr"][1] + 12]
        if handler != b"soun":
            continue
        (elst,) = _boxes(data, inner[b"edts"][1], inner[b"edts"][2])
        version, count = data[elst[1]], struct.unpack(">I", data[elst[1] + 4 : elst[1] + 8])[0]
        assert version == 0 and count == 1, "expected one version-0 edit"
        segment_duration, media_time = struct.unpack(">Ii", data[elst[1] + 8 : elst[1] + 16])
        return movie_timescale, segment_duration, media_time
    raise AssertionError("no sound track")


# -- exact lengths -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_sec", "fps"),
    [(1.0, 24), (2.5, 24), (0.7, 24), (1 / 3, 24), (1.0, 25), (0.7, 25)],
)
def test_counts_follow_the_duration_exactly(tmp_path: Path, duration_sec: float, fps: int) -> None:
    n_frames, n_samples = lengths(duration_sec, fps)
    path = write_mp4(
        tmp_path / "slot.mp4", (smooth_frame(i) for i in range(n_frames)), speech_like(n_samples), fps=fps
    )

    info = probe_mp4(path)
    assert info == MediaInfo(
        n_frames=n_frames,
        fps=float(fps),
        width=SIZE,
        height=SIZE,
        video_codec="h264",
        pix_fmt="yuv420p",
        audio_codec="aac",
        sample_rate=SR,
        n_audio_samples=n_samples,
        duration_sec=pytest.approx(max(n_frames / fps, n_samples / SR), abs=1e-6),
        faststart=True,
    )

    # Independently of ffmpeg's demuxer: the edit list skips the AAC priming and announces the
    # exact sample count (a 1000-tick movie timescale would say 333 ms = 7992 samples for 1/3 s).
    movie_timescale, segment_duration, media_time = audio_edit_list(path)
    assert media_time == 1024
    assert Fraction(segment_duration * SR, movie_timescale) == n_samples


def test_audio_streams_are_mono_aac_lc_and_video_is_tagged_bt709(tmp_path: Path) -> None:
    path = write_mp4(tmp_path / "a.mp4", [smooth_frame(0)] * 6, speech_like(6000), fps=24)
    with av.open(str(path)) as container:
        audio, video = container.streams.audio[0], container.streams.video[0]
        assert audio.codec_context.layout.name == "mono"
        assert audio.codec_context.profile == "LC"
        assert video.codec_context.profile == "High"
        frame = next(container.decode(video))
        assert frame.colorspace == 1 and frame.color_range == 1  # BT.709, limited range: what we convert with


# -- fidelity ----------------------------------------------------------------------------------


def test_decoded_frames_match_the_input_in_order(tmp_path: Path) -> None:
    fps, n_frames = 24, 12
    frames = np.stack([smooth_frame(i) for i in range(n_frames)])
    path = write_mp4(tmp_path / "f.mp4", frames, speech_like(12000), fps=fps)

    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == n_frames
    for i, frame in enumerate(decoded):
        own = psnr(frame, frames[i])
        assert own > 30, f"frame {i}: PSNR {own:.1f} dB"
        if i + 1 < n_frames:  # order kept: each frame is closer to its own input than to the next
            assert own > psnr(frame, frames[i + 1]) + 3


def test_decoded_audio_lines_up_with_the_input(tmp_path: Path) -> None:
    """Priming removed and nothing shifted: the decoded track correlates with the input at lag 0."""
    n_samples = 36000
    source = speech_like(n_samples)
    path = write_mp4(tmp_path / "s.mp4", [smooth_frame(0)] * 36, source, fps=24)

    with av.open(str(path)) as container:
        decoded = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])[:n_samples]
    assert decoded.shape == (n_samples,)
    snr = 10 * np.log10(np.sum(source**2) / np.sum((decoded - source) ** 2))
    assert snr > 15, f"audio SNR {snr:.1f} dB"
    shifted = 10 * np.log10(np.sum(source[:-1024] ** 2) / np.sum((decoded[1024:] - source[:-1024]) ** 2))
    assert shifted < 3  # a 1024-sample misalignment would be caught


# -- streaming and atomic writes ---------------------------------------------------------------


def test_frames_stream_one_at_a_time_and_audio_may_come_last(tmp_path: Path) -> None:
    target = tmp_path / "late.mp4"
    with Mp4Writer(target, width=64, height=48, fps=24) as writer:
        for i in range(30):
            writer.write_frame(smooth_frame(i, 64)[:48])
            assert not target.exists()  # nothing appears at the target before close
        assert writer.frames_written == 30
        writer.write_audio(speech_like(30000))
    info = probe_mp4(target)
    assert (info.n_frames, info.width, info.height, info.n_audio_samples) == (30, 64, 48, 30000)
    assert [p.name for p in tmp_path.iterdir()] == ["late.mp4"]


def test_exception_inside_the_block_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "broken.mp4"
    with pytest.raises(KeyError):
        with Mp4Writer(target, width=64, height=64, fps=24) as writer:
            writer.write_audio(speech_like(24000))
            for i in range(5):
                writer.write_frame(smooth_frame(i, 64))
            raise KeyError("render failed")
    assert list(tmp_path.iterdir()) == []


def test_existing_target_survives_a_failed_write_and_is_replaced_by_a_good_one(tmp_path: Path) -> None:
    target = tmp_path / "slot.mp4"
    target.write_bytes(b"previous slot")
    with pytest.raises(RuntimeError):
        with Mp4Writer(target, width=64, height=64, fps=24) as writer:
            writer.write_frame(smooth_frame(0, 64))
            raise RuntimeError("cancelled")
    assert target.read_bytes() == b"previous slot"
    assert [p.name for p in tmp_path.iterdir()] == ["slot.mp4"]

    write_mp4(target, [smooth_frame(i, 64) for i in range(24)], speech_like(SR), fps=24)
    assert probe_mp4(target).n_frames == 24
    assert [p.name for p in tmp_path.iterdir()] == ["slot.mp4"]


def test_mismatched_lengths_are_refused_at_close_without_a_file(tmp_path: Path) -> None:
    target = tmp_path / "mismatch.mp4"
    with pytest.raises(ValueError, match="video and audio lengths disagree"):
        write_mp4(target, [smooth_frame(i, 64) for i in range(24)], speech_like(2 * SR), fps=24)
    with pytest.raises(ValueError, match="no audio was written"):
        with Mp4Writer(target, width=64, height=64, fps=24) as writer:
            writer.write_frame(smooth_frame(0, 64))
    assert list(tmp_path.iterdir()) == []


# -- bad inputs --------------------------------------------------------------------------------


def test_bad_frames_are_rejected_naming_the_expected_shape(tmp_path: Path) -> None:
    with Mp4Writer(tmp_path / "x.mp4", width=64, height=64, fps=24) as writer:
        with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
            writer.write_frame(np.zeros((64, 64, 4), np.uint8))
        with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
            writer.write_frame(np.zeros((32, 64, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write_frame(np.zeros((64, 64, 3), np.float32))
        assert writer.frames_written == 0
        writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_bad_audio_is_rejected(tmp_path: Path) -> None:
    with Mp4Writer(tmp_path / "x.mp4", width=64, height=64, fps=24) as writer:
        with pytest.raises(ValueError, match="float32"):
            writer.write_audio(np.zeros(2400, np.float64))
        with pytest.raises(ValueError, match="float32"):
            writer.write_audio(np.zeros((1, 2400), np.float32))
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            writer.write_audio(np.full(2400, 1.5, np.float32))
        with pytest.raises(ValueError, match="NaN"):
            writer.write_audio(np.full(2400, np.nan, np.float32))
        writer.abort()


def test_audio_in_chunks_interleaved_with_frames_makes_the_same_file(tmp_path: Path) -> None:
    """A streamed slot hands the encoder its speech chunk by chunk between frames: the file is the
    one the whole track would make, byte for byte."""
    wave = speech_like(48000)
    frames = np.random.default_rng(2).integers(0, 255, (48, 64, 64, 3), dtype=np.uint8)

    def write(path: Path, cuts: list[int]) -> bytes:
        with Mp4Writer(path, width=64, height=64, fps=24) as writer:
            shown = 0
            for piece in np.split(np.concatenate([wave, wave]), np.cumsum(cuts))[:len(cuts)]:
                writer.write_audio(piece)
                for frame in frames[shown:shown + 5]:
                    writer.write_frame(frame)
                shown += 5
            for frame in frames[shown:]:
                writer.write_frame(frame)
        return path.read_bytes()

    assert write(tmp_path / "whole.mp4", [48000]) == write(tmp_path / "chunks.mp4", [1000, 7000, 333, 20000, 19667])
    with pytest.raises(ValueError, match="lengths disagree"):
        write(tmp_path / "long.mp4", [48000, 24000])
    assert not (tmp_path / "long.mp4").exists()


def test_bad_settings_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Mp4Writer(tmp_path / "missing" / "x.mp4", width=64, height=64, fps=24)
    with pytest.raises(ValueError, match="even"):
        Mp4Writer(tmp_path / "x.mp4", width=63, height=64, fps=24)
    with pytest.raises(ValueError, match="fps"):
        Mp4Writer(tmp_path / "x.mp4", width=64, height=64, fps=0)
    assert list(tmp_path.iterdir()) == []


def test_probe_tells_a_file_without_faststart(tmp_path: Path) -> None:
    path = tmp_path / "plain.mp4"
    with av.open(str(path), "w", format="mp4") as container:  # no movflags: moov lands at the end
        stream = container.add_stream("libx264", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=SR, layout="mono")
        tone = av.AudioFrame.from_ndarray(speech_like(3000)[None, :], format="flt", layout="mono")
        tone.sample_rate, tone.pts = SR, 0
        for packet in audio.encode(tone) + audio.encode(None):
            container.mux(packet)
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(smooth_frame(i, 64), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    boxes = [box for box, _, _ in top_level_boxes(path)]
    assert boxes.index(b"mdat") < boxes.index(b"moov")
    assert probe_mp4(path).faststart is False
