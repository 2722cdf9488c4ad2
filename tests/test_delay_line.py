"""A live insert's delay line: media wait until their chunk's checks are in, then air; a chunk that
failed airs as the stand-by card with silence for exactly its duration."""

import numpy as np

from vortex.channel.delay import DelayLine
from vortex.contracts.requests import SlotEvent
from vortex.contracts.sinks import MediaShape

FPS, SR = 24, 24000
CARD = np.full((8, 8, 3), 7, np.uint8)


def event(kind, **data):
    return SlotEvent("live-1", kind, 0.0, None, data)


def chunk(index, start_s, seconds, of=2):
    return event("chunk", index=index, of=of, sentence=index, text=f"sentence {index}", start=int(start_s * SR),
                 samples=int(seconds * SR), start_s=start_s, seconds=seconds)


def make(line: DelayLine, first: int, n: int, value: int) -> None:
    for i in range(first, first + n):
        line.write_frame(i, np.full((8, 8, 3), value, np.uint8))


def test_media_wait_for_both_verdicts_then_air_and_a_failed_chunk_is_the_card_with_silence():
    line = DelayLine(CARD)
    line.open(MediaShape(width=8, height=8, fps=FPS, sample_rate=SR, n_frames=48, n_samples=48000))
    line.on_event(chunk(0, 0.0, 1.0))
    line.write_audio(np.full(24000, 0.5, np.float32))
    make(line, 0, 24, 100)
    assert line.decided_frames() == 0 and line.take(48).frames == []  # nothing judged yet
    line.on_event(event("chunk_checked", sentences=[0], wer=0.0, passed=True, heard="sentence zero"))
    assert line.decided_frames() == 0  # its frame's identity is still out
    line.on_event(event("frame_checked", chunk=0, frame=12, distance=0.3, passed=True, enforced=True))
    first = line.take(100)
    assert len(first.frames) == 24 and len(first.audio) == 24000 and first.replaced == []
    assert int(first.frames[0][0, 0, 0]) == 100 and float(first.audio[0]) == 0.5

    line.on_event(chunk(1, 1.0, 1.0))
    line.write_audio(np.full(24000, 0.5, np.float32))
    make(line, 24, 24, 200)
    line.on_event(event("frame_checked", chunk=1, frame=36, distance=0.3, passed=True, enforced=True))
    line.on_event(event("chunk_checked", sentences=[1], wer=1.0, passed=False, heard="zorblax"))
    second = line.take(100)
    assert second.replaced == [1] and len(second.frames) == 24 and len(second.audio) == 24000
    assert all(f is CARD for f in second.frames) and not second.audio.any()
    assert [c["state"] for c in line.status()] == ["aired", "replaced"]
    assert line.status()[1]["heard"] == "zorblax"


def test_an_insert_that_fails_midway_airs_what_passed_and_the_card_for_the_rest():
    line = DelayLine(CARD)
    line.open(MediaShape(width=8, height=8, fps=FPS, sample_rate=SR, n_frames=48, n_samples=48000))
    line.on_event(chunk(0, 0.0, 1.0))
    line.write_audio(np.full(24000, 0.5, np.float32))
    make(line, 0, 30, 100)  # six frames of chunk 1's span were made before it was known
    line.on_event(event("chunk_checked", sentences=[0], wer=0.0, passed=True))
    line.on_event(event("frame_checked", chunk=0, frame=12, distance=0.3, passed=True, enforced=True))
    assert line.decided_frames() == 24  # up to where the next chunk starts
    line.on_event(chunk(1, 1.0, 1.0))
    line.abort()  # out of time: chunk 1 never judged
    out = line.take(100)
    assert len(out.frames) == 30 and out.replaced == [1] and line.finished
    assert all(f is CARD for f in out.frames[24:]) and int(out.frames[0][0, 0, 0]) == 100


def test_identity_that_is_not_enforced_does_not_hold_media():
    line = DelayLine(CARD, identity_enforced=False)
    line.open(MediaShape(width=8, height=8, fps=FPS, sample_rate=SR, n_frames=24, n_samples=24000))
    line.on_event(chunk(0, 0.0, 1.0, of=1))
    line.write_audio(np.full(24000, 0.5, np.float32))
    make(line, 0, 24, 100)
    line.on_event(event("chunk_checked", sentences=[0], wer=0.0, passed=True))
    assert len(line.take(100).frames) == 24


def test_frames_not_judged_in_time_air_as_the_card_and_their_late_media_are_dropped():
    line = DelayLine(CARD)
    line.open(MediaShape(width=8, height=8, fps=FPS, sample_rate=SR, n_frames=48, n_samples=48000))
    line.on_event(chunk(0, 0.0, 1.0))
    make(line, 0, 10, 100)  # made, but chunk 0 is not judged when its time comes
    late = line.skip(30)  # 24 frames of chunk 0 and 6 of chunk 1 air as the card
    assert len(late.frames) == 30 and all(f is CARD for f in late.frames) and len(late.audio) == 30000
    assert not late.audio.any() and line.frames_released == 30
    line.write_audio(np.full(48000, 0.5, np.float32))  # the whole insert's audio arrives now
    make(line, 10, 38, 100)  # ... and its remaining frames: the first 20 of them were skipped
    line.on_event(event("chunk_checked", sentences=[0], wer=0.0, passed=True))
    line.on_event(event("frame_checked", chunk=0, frame=12, distance=0.3, passed=True, enforced=True))
    line.on_event(chunk(1, 1.0, 1.0))
    line.on_event(event("chunk_checked", sentences=[1], wer=0.0, passed=True))
    line.on_event(event("frame_checked", chunk=1, frame=36, distance=0.3, passed=True, enforced=True))
    rest = line.take(100)
    assert len(rest.frames) == 18 and len(rest.audio) == 18000 and float(rest.audio[0]) == 0.5
    assert line.frames_released == 48 and line.samples_released == 48000
    assert line.status()[0]["late"] is True  # chunk 1 was not known yet when its first frames aired as the card
