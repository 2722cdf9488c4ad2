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
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
import pytest

from vortex.channel.hls import HlsChannelWriter, read_playlist
from vortex.channel.hls import publish as publish_module
from vortex.channel.hls.pacing import WallClockPacer
from vortex.channel.hls.playlist import parse_playlist
from vortex.channel.hls.spool import SlotSpool, read_spool
from vortex.contracts.sinks import MediaShape
from vortex.media import write_mp4

from streams import stream_bytes

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


def parts_on_disk(folder: Path) -> list[str]:
    """Every part file, in stream order (segment number, then part index)."""
    def key(p: Path):
        seg, part = p.name[len("part-"):-len(".m4s")].split(".")
        return int(seg), int(part)
    return [p.name for p in sorted(folder.glob("part-*.m4s"), key=key)]


def decode(folder: Path, uris=None):
    """(frame indices, video pts, audio frames [(pts, samples)], pcm, video start, audio start) of the
    listed segments (or of ``uris``, e.g. the parts), times in 90 kHz ticks."""
    data = stream_bytes(folder, uris)
    with av.open(io.BytesIO(data), format="mp4") as c:
        frames = [(f.pts, index_of(f.to_ndarray(format="rgb24"))) for f in c.decode(c.streams.video[0])]
    with av.open(io.BytesIO(data), format="mp4") as c:
        aus = c.streams.audio[0]
        chunks = [(f.pts * TS // SR, f.to_ndarray().reshape(-1)) for f in c.decode(aus)]
        v_start, a_start = c.streams.video[0].start_time, aus.start_time * TS // SR
    pts = [p for p, _ in frames]
    return ([i for _, i in frames], pts, [(p, a.size) for p, a in chunks],
            np.concatenate([a for _, a in chunks]), v_start, a_start)


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    """The three slots through one writer, closed; also records every playlist write."""
    folder = tmp_path_factory.mktemp("hls") / "channel-7"
    listed_missing: list[str] = []
    real_write = publish_module.write_playlist

    def checking_write(dest, playlist, text=None):
        # At every playlist write each named file must already exist under its final name ...
        named = [s.uri for s in playlist.segments] + [p.uri for s in playlist.segments for p in s.parts]
        named += [s.map_uri for s in playlist.segments] + ([p.uri for p in playlist.open.parts] if playlist.open else [])
        listed_missing.extend(uri for uri in named if not (Path(dest) / uri).is_file())
        # ... and the writer's incremental rendering is the playlist's own text.
        assert text is None or text.render(playlist) == playlist.render()
        return real_write(dest, playlist, text)

    publish_module.write_playlist = checking_write
    try:
        writer = new_writer(folder)
        reports = [writer.append_slot(f, w) for f, w in slots()]
        writer.close()
    finally:
        publish_module.write_playlist = real_write
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
    # The parts, concatenated, are the same stream: each segment is exactly its parts' bytes.
    playlist = read_playlist(folder)
    for seg in playlist.segments:
        n = seg.number
        assert (folder / seg.uri).read_bytes() == b"".join(
            (folder / p).read_bytes() for p in parts_on_disk(folder) if p.startswith(f"part-{n:05d}."))
    by_parts = decode(folder, parts_on_disk(folder))
    assert by_parts[0] == indices and by_parts[1] == vpts and np.array_equal(by_parts[3], pcm)


def test_segments_and_parts_start_with_keyframes_and_durations_are_exact(channel):
    folder, _, listed_missing = channel
    text = (folder / "index.m3u8").read_text()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n")
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    playlist = parse_playlist(text)
    assert [s.uri for s in playlist.segments] == [f"seg-{n:05d}.m4s" for n in range(1, 5)]
    assert [round(s.duration_sec * FPS) for s in playlist.segments] == [48, 48, 48, 24]  # last one short
    init = (folder / playlist.segments[0].map_uri).read_bytes()
    pdt = START
    for seg in playlist.segments:
        assert seg.program_date_time == pdt
        with av.open(io.BytesIO(init + (folder / seg.uri).read_bytes()), format="mp4") as c:
            demuxed = [(p.stream.type, p.pts, p.is_keyframe) for p in c.demux() if p.size]
        packets = [(pts, key) for kind, pts, key in demuxed if kind == "video"]
        audio = [pts * TS // SR for kind, pts, _ in demuxed if kind == "audio"]
        # The segment holds the AAC frames that start within its span (1024 samples = 3840 ticks;
        # the first segment also the priming frame), so its audio runs to its end.
        seg_start = round((pdt - START).total_seconds() * TS) + TS
        seg_end = seg_start + round(seg.duration_sec * TS)
        assert seg_start - 3840 <= audio[0] < seg_start + 3840
        assert seg_end - 3840 <= audio[-1] < seg_end
        assert packets[0] == (seg_start, True)  # the segment opens with its IDR ...
        assert not any(key for _, key in packets[1:])  # ... its only keyframe (a GOP of one segment)
        assert abs(seg.duration_sec - len(packets) / FPS) < 1e-6
        # Its parts: 12 frames each (the last one of the stream may be shorter); only the first independent.
        assert [round(p.duration_sec * FPS) for p in seg.parts] == [12] * (len(packets) // 12)
        assert [p.independent for p in seg.parts] == [True] + [False] * (len(seg.parts) - 1)
        pdt += timedelta(seconds=len(packets) / FPS)
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T21:00:02.000+00:00" in text
    assert listed_missing == []  # renamed before the playlist named it
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    # ffmpeg's own HLS demuxer (no LL-HLS: it reads the segments) plays the playlist through.
    with av.open(str(folder / "index.m3u8")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 168


def test_ll_hls_tags_are_present_and_well_formed(tmp_path):
    """A live playlist mid-stream: server control, part target, parts with exact durations, the next
    part hinted, parts listed only for the segments within 3 target durations of the end."""
    writer = new_writer(tmp_path)
    for frames, wave in slots((3.0, 3.0, 3.0)) + slots((2.5,), first_frame=216):  # 11.5 s
        writer.append_slot(frames, wave)
    text = (tmp_path / "index.m3u8").read_text()
    lines = text.splitlines()
    assert lines[:8] == ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:2",
                         "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=2.000",
                         "#EXT-X-PART-INF:PART-TARGET=0.500", "#EXT-X-MEDIA-SEQUENCE:0",
                         "#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-INDEPENDENT-SEGMENTS"]
    assert lines[8].startswith('#EXT-X-MAP:URI="init-') and text.count("#EXT-X-MAP") == 1
    playlist = parse_playlist(text)
    assert playlist.render() == text  # the writer's incremental text is the whole playlist's, line for line
    assert playlist.part_target == 0.5 and not playlist.ended
    part_lines = [line for line in lines if line.startswith("#EXT-X-PART:")]
    for line in part_lines:
        attrs = dict(a.split("=", 1) for a in line.split(":", 1)[1].split(","))
        assert 0 < float(attrs["DURATION"]) <= 0.5 and attrs["URI"].startswith('"part-') and attrs["URI"].endswith('.m4s"')
        assert set(attrs) <= {"DURATION", "URI", "INDEPENDENT"} and attrs.get("INDEPENDENT", "YES") == "YES"
        assert (tmp_path / attrs["URI"].strip('"')).is_file()
    # 276 frames appended, the last few still inside the encoders: 5 segments of 48 + open parts.
    published = writer.frames_published
    assert [round(s.duration_sec * FPS) for s in playlist.segments] == [48] * 5
    assert 240 < published <= 276 and published % 12 == 0
    assert [p.uri for p in playlist.open.parts] == [f"part-00006.{k}.m4s" for k in range((published - 240) // 12)]
    assert playlist.preload_hint == f"part-00006.{(published - 240) // 12}.m4s" and lines[-1].startswith(
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=")
    # Parts stay listed for the segments that end within 3 target durations (6 s) of the end.
    end = sum(s.duration_sec for s in playlist.segments)
    for seg, ends in zip(playlist.segments, np.cumsum([s.duration_sec for s in playlist.segments])):
        assert bool(seg.parts) == (end - ends <= 6.0), (seg.uri, ends, end)
    assert playlist.has_part(5, 0) and not playlist.has_part(5, len(playlist.open.parts))
    assert playlist.has_part(4, 4)  # past a complete segment's last part: part 0 of the next one
    writer.close()
    closed = (tmp_path / "index.m3u8").read_text()
    assert "#EXT-X-PRELOAD-HINT" not in closed and closed.rstrip().endswith("#EXT-X-ENDLIST")


def test_parts_are_published_while_a_slot_is_encoded(tmp_path):
    """Each part is listed as soon as the encoders have handed it out: a few frames (the AAC frames
    that overlap its end) after its last frame went in, in the middle of append_slot."""
    seen: list[tuple[int, int, int]] = []

    def check(part):
        playlist = read_playlist(tmp_path)
        listed = playlist.open.parts if playlist.open is not None else playlist.segments[-1].parts
        assert listed[-1].uri == part.uri and (tmp_path / part.uri).is_file()
        assert playlist.next_msn - (playlist.open is None) == part.msn
        seen.append((part.start_frame, part.end_frame, writer.frames_appended))

    writer = new_writer(tmp_path, on_part=check)
    (f1, w1), (f2, w2), _ = slots()
    writer.append_slot(f1, w1)
    assert [s[:2] for s in seen] == [(0, 12), (12, 24), (24, 36), (36, 48)]  # 55 frames in: 4 parts out
    for start, end, appended in seen:
        assert 0 < appended - end <= 4  # 1024-3072 samples of AAC look-ahead: at most 4 frames at 24 fps
    writer.append_slot(f2, w2)
    writer.close()
    assert [s[:2] for s in seen][4:] == [(48, 60), (60, 72), (72, 84), (84, 96)]
    # init + the parts listed so far decode on their own, exactly.
    assert decode(tmp_path, parts_on_disk(tmp_path)[:6])[0] == list(range(72))


def test_a_streamed_slot_is_the_same_stream_as_a_whole_one(tmp_path):
    """open_slot: audio chunks ahead of, behind and between frames give the very bytes append_slot gives."""
    whole = new_writer(tmp_path / "whole")
    streamed = new_writer(tmp_path / "streamed")
    for frames, wave in slots():
        whole.append_slot(frames, wave)
        feed = streamed.open_slot()
        rng = np.random.default_rng(len(frames))
        cuts = np.sort(rng.integers(0, wave.size, 9))
        chunks = np.split(wave, cuts)
        feed.write_audio(chunks[0])
        for i, frame in enumerate(frames):
            feed.write_frame(frame)
            if i % 7 == 3 and len(chunks) > 1:
                feed.write_audio(chunks[1])
                del chunks[1]
        for chunk in chunks[1:]:
            feed.write_audio(chunk)  # the rest after the last frame: held, then fitted
        report = feed.close()
        assert report.n_frames == len(frames) and report.n_samples == len(frames) * SR // FPS
    whole.close()
    streamed.close()
    for name in parts_on_disk(tmp_path / "whole") + [s.uri for s in read_playlist(tmp_path / "whole").segments]:
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes(), name
    with pytest.raises(RuntimeError, match="already open"):
        w = new_writer(tmp_path / "twice")
        w.open_slot()
        w.open_slot()


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


def test_resume_after_sigkill_keeps_segments_and_parts_and_continues(tmp_path):
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
    # 96 frames in, the last few inside the encoders: segment 1 complete, 3 parts of segment 2 listed.
    assert [s.uri for s in before.segments] == ["seg-00001.m4s"] and not before.ended
    assert [p.uri for p in before.open.parts] == ["part-00002.0.m4s", "part-00002.1.m4s", "part-00002.2.m4s"]
    assert before.preload_hint == "part-00002.3.m4s" and int(marker.read_text()) == 84
    listed = [s.uri for s in before.segments] + [p.uri for s in before.segments for p in s.parts]
    listed += [p.uri for p in before.open.parts] + [before.segments[0].map_uri]
    digests = {uri: hashlib.sha256((folder / uri).read_bytes()).hexdigest() for uri in listed}
    (folder / ".part-00002.3.m4s.tmp").write_bytes(b"half a part")  # what a crash mid-write leaves
    (folder / "part-00002.3.m4s").write_bytes(b"renamed, never listed")
    (folder / "seg-00002.m4s").write_bytes(b"renamed, never listed")

    air = START + timedelta(seconds=30)
    writer = HlsChannelWriter.resume(folder, width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, air_time=air)
    assert not (folder / ".part-00002.3.m4s.tmp").exists() and not (folder / "part-00002.3.m4s").exists()
    frames, wave = slots((3.0,), first_frame=84)[0]  # the next slot: 72 frames, after the 84 listed
    writer.append_slot(frames, wave)
    writer.close()

    after = read_playlist(folder)
    assert after.segments[: len(before.segments)] == before.segments
    for uri, digest in digests.items():  # nothing listed is lost or rewritten
        assert hashlib.sha256((folder / uri).read_bytes()).hexdigest() == digest, uri
    new = after.segments[len(before.segments):]
    # The open segment became a short segment of exactly its listed parts; numbering continues.
    assert [s.uri for s in new] == ["seg-00002.m4s", "seg-00003.m4s", "seg-00004.m4s"]
    assert [p.uri for p in new[0].parts] == [p.uri for p in before.open.parts]
    assert (folder / "seg-00002.m4s").read_bytes() == b"".join((folder / p.uri).read_bytes() for p in before.open.parts)
    assert [round(s.duration_sec * FPS) for s in new] == [36, 48, 24]
    assert [s.discontinuity for s in after.segments] == [False, False, True, False]
    assert new[1].program_date_time == air and new[2].program_date_time == air + timedelta(seconds=2)
    assert {s.map_uri for s in after.segments} == {before.segments[0].map_uri}  # the same init: reused
    text = (folder / "index.m3u8").read_text()
    assert text.count("#EXT-X-DISCONTINUITY") == 1 and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert parse_playlist(text).render() == text
    indices, vpts, afr, *_ = decode(folder)
    assert indices == list(range(84 + 72))  # timestamps run on after the restart
    assert set(np.diff(vpts)) == {TS // FPS}
    assert decode(folder, parts_on_disk(folder))[0] == indices


def test_a_slot_spool_airs_only_once_appended_with_its_exact_samples(tmp_path):
    """The engine streams a made-ahead slot into a spool (yuv420p frames, its samples): nothing of it
    reaches the encoders until it is appended, a failed one leaves no file, and the samples the
    stream's encoder gets are exactly the ones made."""
    writer = new_writer(tmp_path / "ch")
    (f1, w1), (f2, w2), _ = slots()
    failed = SlotSpool(tmp_path / "slot-00000.yuv", width=SIZE, height=SIZE, fps=FPS, sample_rate=SR)
    failed.open(MediaShape(width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, n_frames=len(f1)))
    failed.write_audio(w1)
    for i, f in enumerate(f1[:10]):
        failed.write_frame(i, f)
    failed.abort()
    assert not list(tmp_path.glob("*slot-*"))
    spools = []
    for k, (frames, wave) in enumerate(((f1, w1), (f2, w2))):
        spool = SlotSpool(tmp_path / f"slot-{k:05d}.yuv", width=SIZE, height=SIZE, fps=FPS, sample_rate=SR)
        spool.open(MediaShape(SIZE, SIZE, FPS, SR, len(frames)))
        for chunk in np.array_split(wave, 3):  # the engine streams the audio chunk by chunk
            spool.write_audio(chunk)
        for i, f in enumerate(frames):
            spool.write_frame(i, f)
        spool.finish()
        _, samples, n = read_spool(spool.video, SIZE, SIZE)
        assert n == len(frames) and np.array_equal(samples, wave)
        spools.append(spool.video)
    assert writer.frames_appended == 0  # finished is not yet aired
    for video in spools:
        writer.append_spool(video)
    assert writer.frames_appended == 96 and not list(tmp_path.glob(".slot-*"))
    writer.close()
    assert decode(tmp_path / "ch")[0] == list(range(96))
    with pytest.raises(ValueError, match="do not match the channel"):
        SlotSpool(tmp_path / "x.yuv", width=SIZE, height=SIZE, fps=FPS, sample_rate=SR).open(
            MediaShape(256, 256, FPS, SR, 10))
    with pytest.raises(FileNotFoundError, match="no complete slot spool"):
        read_spool(tmp_path / "slot-00009.yuv", SIZE, SIZE)


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
    for part_seconds, problem in ((0.3, "whole number of frames"), (1.5, "at most 1.0 s"), (0.75, "divide")):
        with pytest.raises(ValueError, match=problem):
            new_writer(tmp_path / f"p{part_seconds}", part_seconds=part_seconds)
    with pytest.raises(ValueError, match="fps 7 does not divide the 90 kHz"):
        HlsChannelWriter(tmp_path / "e", width=SIZE, height=SIZE, fps=7, sample_rate=SR, program_start=START,
                         segment_seconds=2.0, part_seconds=1.0)
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


class _Clock:
    """A wall clock that moves only when the pacer waits (no real sleeping, no timing in the test)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class _ClockStop(threading.Event):
    def __init__(self, clock: _Clock, stop_at: datetime | None = None) -> None:
        super().__init__()
        self.clock, self.stop_at = clock, stop_at

    def wait(self, timeout=None):
        self.clock.now += timedelta(seconds=timeout)
        if self.stop_at is not None and self.clock.now >= self.stop_at:
            self.set()
        return self.is_set()


def test_the_pacer_hands_frames_over_one_part_before_air(tmp_path):
    clock = _Clock(START - timedelta(seconds=10))  # the slots are made 10 s ahead
    leads: list[float] = []
    writer = new_writer(tmp_path, on_part=lambda p: leads.append(
        (writer.air_time_at(p.end_frame) - clock()).total_seconds()))
    pacer = WallClockPacer(writer, 0.5, _ClockStop(clock), clock=clock)
    handed = []

    def watched(frames):
        for frame in pacer(frames):
            handed.append((writer.air_time_at(writer.frames_appended) - clock()).total_seconds())
            yield frame

    for frames, wave in slots():
        writer.append_slot(watched(frames), wave)
    assert len(handed) == 168 and max(handed) <= 0.5 + 1e-6  # never more than a part ahead of the clock
    assert min(handed) > 0.5 - 1 / FPS  # ... and not later than needed
    # A part is listed when its end is at most a part ahead of the clock (less the AAC look-ahead).
    assert len(leads) == 13 and all(0 < lead <= 0.5 for lead in leads), leads
    assert not hasattr(pacer(frame_of(i) for i in range(3)), "__len__")  # no length: none invented
    assert len(pacer([frame_of(0)] * 3)) == 3  # a known one kept: the writer checks it before encoding

    # Stopped midway: the slot ends at the frame reached; its audio is fitted; the stream goes on.
    clock2 = _Clock(START)
    stopped = new_writer(tmp_path / "stopped")
    stop = _ClockStop(clock2, stop_at=START + timedelta(seconds=1.0))
    (f1, w1), (f2, w2), _ = slots()
    report = stopped.append_slot(WallClockPacer(stopped, 0.5, stop, clock=clock2)(f1), w1)
    assert report.n_frames == 36 and report.n_samples == 36_000  # air time 1.5 s = frame 36 reached at 1.0 s
    stopped.append_slot([frame_of(36 + i) for i in range(len(f2))], w2)
    stopped.close()
    assert decode(tmp_path / "stopped")[0] == list(range(36 + len(f2)))


def test_the_servers_quick_read_of_a_playlist_agrees_with_the_parser(tmp_path):
    """`vortex serve` answers blocking reloads from a light read of the playlist text (it grows all
    day); for every segment/part a client may ask for it must say what the full parser says."""
    from vortex.service.channels.hls_serving import PlaylistState

    writer = new_writer(tmp_path)
    for frames, wave in slots((3.0, 3.0)) + slots((2.3,), first_frame=144):
        writer.append_slot(frames, wave)
        text = (tmp_path / "index.m3u8").read_bytes()
        full, quick = parse_playlist(text.decode()), PlaylistState.of(text)
        assert (quick.next_msn, quick.open_parts, quick.hint, quick.ended) == (
            full.next_msn, len(full.open.parts) if full.open else 0, full.preload_hint, full.ended)
        for msn in range(full.next_msn + 2):
            assert quick.has(msn, None) == (msn < full.next_msn)
            for part in range(6):
                assert quick.has(msn, part) == full.has_part(msn, part), (msn, part)
    writer.close()
    assert PlaylistState.of((tmp_path / "index.m3u8").read_bytes()).ended


def test_a_channel_from_before_ll_hls_resumes_in_fmp4_after_a_discontinuity(tmp_path):
    """A folder the MPEG-TS writer made (seg-*.ts, version 3, no parts) goes on: its segments stay
    listed as they are, the new ones are fMP4 with parts after #EXT-X-DISCONTINUITY and #EXT-X-MAP."""
    (tmp_path / "seg-00001.ts").write_bytes(b"old segment 1")
    (tmp_path / "seg-00002.ts").write_bytes(b"old segment 2")
    (tmp_path / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T21:00:00.000+00:00\n#EXTINF:2.000000,\n"
        "seg-00001.ts\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T21:00:02.000+00:00\n#EXTINF:1.500000,\nseg-00002.ts\n")
    air = START + timedelta(seconds=60)
    writer = HlsChannelWriter.resume(tmp_path, width=SIZE, height=SIZE, fps=FPS, sample_rate=SR, air_time=air)
    frames, wave = slots((2.0,), first_frame=84)[0]
    writer.append_slot(frames, wave)
    writer.close()
    text = (tmp_path / "index.m3u8").read_text()
    after = parse_playlist(text)
    assert [s.uri for s in after.segments] == ["seg-00001.ts", "seg-00002.ts", "seg-00003.m4s"]
    assert [s.map_uri is None for s in after.segments] == [True, True, False]
    assert after.segments[2].discontinuity and after.segments[2].program_date_time == air
    assert text.index("#EXT-X-DISCONTINUITY") < text.index("#EXT-X-MAP") < text.index("seg-00003.m4s")
    assert (tmp_path / "seg-00001.ts").read_bytes() == b"old segment 1"
    init = (tmp_path / after.segments[2].map_uri).read_bytes()
    with av.open(io.BytesIO(init + (tmp_path / "seg-00003.m4s").read_bytes()), format="mp4") as c:
        assert [index_of(f.to_ndarray(format="rgb24")) for f in c.decode(video=0)] == list(range(84, 132))


def test_a_live_sink_airs_an_engine_slot_while_it_is_made(tmp_path):
    """HlsLiveSink: the engine's FrameSink protocol straight into a SlotFeed. Parts are published
    between the engine's frames; finish fits the audio; a wrong shape or order is refused."""
    from vortex.channel.hls import HlsLiveSink

    seen: list[int] = []
    writer = new_writer(tmp_path, on_part=lambda p: seen.append(writer.frames_appended))
    (frames, wave), *_ = slots()
    sink = HlsLiveSink(writer)
    sink.open(MediaShape(SIZE, SIZE, FPS, SR, len(frames), wave.size))
    for k, chunk in enumerate(np.array_split(wave, 5)):  # audio by chunk, ahead of the frames
        sink.write_audio(chunk)
        for i in range(k * 11, (k + 1) * 11):
            sink.write_frame(i, frames[i])
    with pytest.raises(ValueError, match="in order"):
        sink.write_frame(99, frames[0])
    sink.finish()
    assert (sink.report.n_frames, sink.report.n_samples, sink.report.fitted_samples) == (55, 55_000, -200)
    assert seen[:4] and all(n < 55 for n in seen[:4])  # the first parts were out before the last frame came
    writer.close()
    assert decode(tmp_path)[0] == list(range(55))
    with pytest.raises(ValueError, match="do not match the channel"):
        HlsLiveSink(new_writer(tmp_path / "other")).open(MediaShape(256, 256, FPS, SR, 10))
    stopped = threading.Event()
    stopped.set()
    assert not WallClockPacer(writer, 0.5, stopped).wait_for(10**6)  # a cut ends the slot at once
