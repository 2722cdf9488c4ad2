"""The channel's live HLS segmenter: gapless across slots, keyframed segments, atomic, crash-safe.

Three synthetic slots (2.3 s, 1.7 s, 3.0 s) go through one writer. Every frame carries its global
index as a 16-bit block code, so the decoded stream proves which frames it holds and in what
order; the audio is a tone whose pitch changes at each slot start while its phase runs on, so a
priming gap or a lost AAC frame at a boundary shows as a misaligned waveform.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from vortex.channel import HlsChannelWriter, read_playlist
from vortex.channel import hls as hls_module
from vortex.channel.playlist import parse_playlist
from vortex.media import write_mp4
from vortex.engine.sinks import MediaShape

FPS, SR, SIZE = 24, 24000, 128
DURATIONS = (2.3, 1.7, 3.0)
PITCH = (330.0, 550.0, 770.0)
START = datetime(2026, 12, 1, 21, 0, 0, tzinfo=timezone.utc)
TS = 90_000


def frame_of(index: int) -> np.ndarray:
    """A moving gradient with the frame's index in 16 blocks (2 rows x 8, 16 px each) on top."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img = np.stack([(x * 2 + index * 5) % 256, (y * 2 + index * 3) % 256, ((x + y + index * 7) % 256)], -1)
    img = img.astype(np.uint8)
    for bit in range(16):
        r, c = divmod(bit, 8)
        img[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = 255 if (index >> bit) & 1 else 0
    return img


def index_of(rgb: np.ndarray) -> int:
    value = 0
    for bit in range(16):
        r, c = divmod(bit, 8)
        if rgb[r * 16 + 4:(r + 1) * 16 - 4, c * 16 + 4:(c + 1) * 16 - 4].mean() > 128:
            value |= 1 << bit
    return value


def tone(n_samples: int, pitch: float, phase: float) -> tuple[np.ndarray, float]:
    """A tone that starts at ``phase`` (cycles), and the phase where it ends."""
    t = np.arange(n_samples) / SR
    wave = (0.3 * np.sin(2 * np.pi * (phase + pitch * t))).astype(np.float32)
    return wave, phase + pitch * n_samples / SR


def slots(durations=DURATIONS, first_frame: int = 0):
    """(frames, waveform) per slot: round(d*fps) frames and round(d*sr) samples."""
    out, frame, phase = [], first_frame, 0.0
    for d, pitch in zip(durations, PITCH):
        n, ns = round(d * FPS), round(d * SR)
        wave, phase = tone(ns, pitch, phase)
        out.append(([frame_of(frame + i) for i in range(n)], wave))
        frame += n
    return out


def new_writer(folder: Path, **kw) -> HlsChannelWriter:
    return HlsChannelWriter(folder, width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, program_start=START, **kw)


def concat(folder: Path) -> bytes:
    return b"".join((folder / s.uri).read_bytes() for s in read_playlist(folder).segments)


def decode(folder: Path):
    """(frame indices, video pts, audio frames [(pts, samples)], pcm, video start, audio start) of the stream."""
    data = concat(folder)
    with av.open(io.BytesIO(data), format="mpegts") as c:
        vs = c.streams.video[0]
        frames = [(f.pts, index_of(f.to_ndarray(format="rgb24"))) for f in c.decode(vs)]
    with av.open(io.BytesIO(data), format="mpegts") as c:
        aus = c.streams.audio[0]
        chunks = [(f.pts, f.to_ndarray().reshape(-1)) for f in c.decode(aus)]
        v_start, a_start = c.streams.video[0].start_time, aus.start_time
    pts = [p for p, _ in frames]
    return ([i for _, i in frames], pts, [(p, a.size) for p, a in chunks],
            np.concatenate([a for _, a in chunks]), v_start, a_start)


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    """The three slots through one writer, closed; also records every playlist write."""
    folder = tmp_path_factory.mktemp("hls") / "channel-7"
    listed_missing: list[str] = []
    real_write = hls_module.write_playlist

    def checking_write(dest, playlist):
        # At every playlist write each named segment must already exist under its final name.
        listed_missing.extend(s.uri for s in playlist.segments if not (Path(dest) / s.uri).is_file())
        return real_write(dest, playlist)

    hls_module.write_playlist = checking_write
    try:
        writer = new_writer(folder)
        reports = [writer.append_slot(f, w) for f, w in slots()]
        writer.close()
    finally:
        hls_module.write_playlist = real_write
    return folder, reports, listed_missing


def expected_pcm(reports) -> np.ndarray:
    """The slots' waveforms as the writer fits them: each cut or padded so audio ends with video."""
    parts = []
    for (_, wave), rep in zip(slots(), reports):
        fitted = wave[:rep.n_samples] if wave.size >= rep.n_samples else np.pad(wave, (0, rep.n_samples - wave.size))
        parts.append(fitted)
    return np.concatenate(parts)


def test_exact_frames_and_samples_no_gap_at_slot_boundaries(channel):
    folder, reports, _ = channel
    n_frames = sum(round(d * FPS) for d in DURATIONS)
    n_samples = sum(round(d * SR) for d in DURATIONS)
    indices, vpts, afr, pcm, v_start, a_start = decode(folder)
    assert indices == list(range(n_frames))  # every frame once, in order
    assert set(np.diff(vpts)) == {TS // FPS}  # +1 frame each, no gap at 55 or 96
    assert [r.first_frame for r in reports] == [0, 55, 96]
    # Audio: contiguous AAC frames; the only priming is the stream's first 1024 samples.
    assert set(np.diff([p for p, _ in afr])) == {1024 * TS // SR}
    priming = (v_start - a_start) * SR // TS
    assert priming == 1024
    assert sum(r.n_samples for r in reports) == n_samples
    assert pcm.size - priming >= n_samples and pcm.size - priming - n_samples < 1024  # the last frame is padded
    decoded = pcm[priming:priming + n_samples]
    ref = expected_pcm(reports)
    snr = 10 * np.log10(np.sum(ref ** 2) / np.sum((decoded - ref) ** 2))
    assert snr > 20.0, f"decoded audio differs from the slots' PCM (SNR {snr:.1f} dB)"
    # Around each slot boundary the waveform sits exactly where it was fed (lag 0, not 1024).
    for boundary in (55_000, 96_000):
        window = slice(boundary - 2048, boundary + 2048)
        lags = range(-1100, 1101, 4)
        best = max(lags, key=lambda k: float(np.dot(ref[window], pcm[priming + boundary - 2048 + k:][:4096])))
        assert abs(best) < 4


def test_segments_start_with_keyframes_and_extinf_is_exact(channel):
    folder, _, listed_missing = channel
    text = (folder / "index.m3u8").read_text()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    playlist = parse_playlist(text)
    assert [s.uri for s in playlist.segments] == [f"seg-{n:05d}.ts" for n in range(1, 5)]
    assert [round(s.duration_sec * FPS) for s in playlist.segments] == [48, 48, 48, 24]  # last one short
    pdt = START
    for seg in playlist.segments:
        assert seg.program_date_time == pdt
        with av.open(str(folder / seg.uri)) as c:  # read packets while their container is open
            demuxed = [(p.stream.type, p.pts, p.is_keyframe) for p in c.demux() if p.size]
        packets = [(pts, key) for kind, pts, key in demuxed if kind == "video"]
        audio = [pts for kind, pts, _ in demuxed if kind == "audio"]
        # The segment holds the AAC frames that start within its span (1024 samples = 3840 ticks;
        # the first segment also the priming frame), so its audio runs to its end.
        seg_start = round((pdt - START).total_seconds() * TS) + TS
        seg_end = seg_start + round(seg.duration_sec * TS)
        assert seg_start - 3840 <= audio[0] < seg_start + 3840
        assert seg_end - 3840 <= audio[-1] < seg_end
        assert packets[0] == (seg_start, True)  # decode order: the segment opens with its IDR
        assert abs(seg.duration_sec - len(packets) / FPS) < 1e-6
        pdt += timedelta(seconds=len(packets) / FPS)
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T21:00:02.000+00:00" in text
    assert listed_missing == []  # renamed before the playlist named it
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    # ffmpeg's own HLS demuxer plays the playlist through.
    with av.open(str(folder / "index.m3u8")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 168


def test_live_playlist_lists_only_complete_segments(tmp_path):
    seen: list[tuple[str, int]] = []

    def check(segment):
        # Called right after the playlist write: the listed file is complete and decodes on its own.
        playlist = read_playlist(tmp_path)
        assert not playlist.ended and playlist.segments[-1] == segment
        with av.open(str(tmp_path / segment.uri)) as c:
            seen.append((segment.uri, sum(1 for _ in c.decode(video=0))))

    writer = new_writer(tmp_path, on_segment=check)
    assert read_playlist(tmp_path).segments == ()  # a valid empty live playlist from the start
    for frames, wave in slots():
        writer.append_slot(frames, wave)
        assert writer.frames_published <= writer.frames_appended
    assert seen == [("seg-00001.ts", 48), ("seg-00002.ts", 48), ("seg-00003.ts", 48)]
    writer.close()
    assert seen[-1] == ("seg-00004.ts", 24)


_CRASHING = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_hls import new_writer, slots
    from pathlib import Path
    writer = new_writer(Path({folder!r}))
    for frames, wave in slots((2.3, 1.7)):
        writer.append_slot(frames, wave)
    Path({marker!r}).write_text(str(writer.frames_published))
    time.sleep(60)  # killed here with SIGKILL: no close, encoders hold unpublished frames
""")


def test_resume_after_sigkill_keeps_segments_and_continues(tmp_path):
    folder, marker = tmp_path / "ch", tmp_path / "published"
    script = _CRASHING.format(tests=str(Path(__file__).parent), folder=str(folder), marker=str(marker))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the writer process did not get going"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = read_playlist(folder)
    assert [s.uri for s in before.segments] == ["seg-00001.ts"] and not before.ended  # 96 frames: 1 full segment
    digests = {s.uri: hashlib.sha256((folder / s.uri).read_bytes()).hexdigest() for s in before.segments}
    (folder / ".seg-00002.ts.tmp").write_bytes(b"half a segment")  # what a crash mid-write leaves
    (folder / "seg-00002.ts").write_bytes(b"renamed, never listed")

    air = START + timedelta(seconds=30)
    writer = HlsChannelWriter.resume(folder, width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, air_time=air)
    assert not (folder / ".seg-00002.ts.tmp").exists()
    frames, wave = slots((3.0,), first_frame=48)[0]  # the next slot: 72 frames
    writer.append_slot(frames, wave)
    writer.close()

    after = read_playlist(folder)
    assert after.segments[: len(before.segments)] == before.segments
    for uri, digest in digests.items():
        assert hashlib.sha256((folder / uri).read_bytes()).hexdigest() == digest
    new = after.segments[len(before.segments):]
    assert [s.uri for s in new] == ["seg-00002.ts", "seg-00003.ts"]  # numbering continues
    assert [s.discontinuity for s in after.segments] == [False, True, False]
    assert new[0].program_date_time == air and new[1].program_date_time == air + timedelta(seconds=2)
    text = (folder / "index.m3u8").read_text()
    assert text.count("#EXT-X-DISCONTINUITY") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    indices, vpts, afr, *_ = decode(folder)
    assert indices == list(range(48 + 72))  # timestamps run on after the restart
    assert set(np.diff(vpts)) == {TS // FPS}


def test_slot_sink_airs_only_committed_slots(tmp_path):
    writer = new_writer(tmp_path)
    (f1, w1), (f2, w2), _ = slots()
    shape = MediaShape(width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, n_frames=len(f1))
    failed = writer.slot_sink()
    failed.open(shape)
    failed.write_audio(w1)
    for i, f in enumerate(f1[:10]):
        failed.write_frame(i, f)
    failed.abort()
    assert writer.frames_appended == 0 and not list(tmp_path.glob(".slot-*"))
    for frames, wave in ((f1, w1), (f2, w2)):
        sink = writer.slot_sink()
        sink.open(MediaShape(SIZE, SIZE, FPS, SR, len(frames)))
        sink.write_audio(wave)
        for i, f in enumerate(frames):
            sink.write_frame(i, f)
        sink.finish()
        assert writer.frames_appended == (0 if frames is f1 else 55)  # finished is not yet aired
        sink.commit()
    assert writer.frames_appended == 96 and not list(tmp_path.glob(".slot-*"))
    writer.close()
    assert decode(tmp_path)[0] == list(range(96))
    with pytest.raises(ValueError, match="do not match the channel"):
        new_writer(tmp_path / "other").slot_sink().open(MediaShape(256, 256, FPS, SR, 10))


def test_append_mp4_slot_round_trips(tmp_path):
    (frames, wave), *_ = slots()
    mp4 = write_mp4(tmp_path / "slot.mp4", frames, wave, fps=FPS, sample_rate=SR)
    writer = new_writer(tmp_path / "ch")
    report = writer.append_mp4(mp4)
    writer.close()
    assert (report.n_frames, report.n_samples) == (55, 55_000)
    assert abs(report.fitted_samples) <= SR // FPS // 2  # 55200 given, fitted to 55 frames
    assert decode(tmp_path / "ch")[0] == list(range(55))


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no timezone"):
        HlsChannelWriter(tmp_path / "a", width=SIZE, height=SIZE, fps=FPS, program_start=datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="whole number of frames"):
        HlsChannelWriter(tmp_path / "b", width=SIZE, height=SIZE, fps=FPS, program_start=START, segment_seconds=2.01)
    writer = new_writer(tmp_path / "c")
    with pytest.raises(FileExistsError, match="resume"):
        new_writer(tmp_path / "c")
    with pytest.raises(ValueError, match="slot lengths disagree"):
        writer.append_slot([frame_of(0)] * 24, np.zeros(SR * 2, np.float32))
    with pytest.raises(ValueError, match="frame 0: expected a uint8 RGB frame of shape"):
        writer.append_slot(np.zeros((1, 64, 64, 3), np.uint8), np.zeros(1000, np.float32))
    with pytest.raises(FileNotFoundError, match="no index.m3u8"):
        HlsChannelWriter.resume(tmp_path / "d", width=SIZE, height=SIZE, fps=FPS, air_time=START)


def test_a_slot_that_breaks_midway_leaves_the_stream_consistent(tmp_path):
    (f1, w1), (f2, w2), _ = slots()
    writer = new_writer(tmp_path)

    def broken():  # e.g. a slot MP4 that turns out corrupt after 10 frames
        yield from f1[:10]
        raise OSError("slot.mp4: invalid data")

    with pytest.raises(OSError, match="invalid data"):
        writer.append_slot(broken(), w1)
    assert writer.frames_appended == 10  # what was encoded stays, its audio fitted to it
    rest = [frame_of(10 + i) for i in range(len(f2))]
    report = writer.append_slot(rest, w2)
    assert (report.first_frame, report.n_samples) == (10, 41_000)
    writer.close()
    indices, vpts, afr, pcm, v_start, a_start = decode(tmp_path)
    assert indices == list(range(51)) and set(np.diff(vpts)) == {TS // FPS}
    assert 0 <= pcm.size - 1024 - 51_000 < 1024  # audio still ends with video
