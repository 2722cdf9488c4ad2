"""The channel's appender: the thread that airs it. It owns the HLS writer and appends, in air order,
the decided slots the generator queues and the live inserts that cut in.

With ``--pace realtime`` every frame is handed to the writer one part before its air time
(pacing.py), so the published stream runs at most about a part ahead of the wall clock and an
insert can take the air at any frame not yet handed over; ``asap`` appends at once (tests, batch
runs). Before each frame it asks the runner's fence (the service's channel lease): a runner that
lost its channel stops writing at once (fencing.py).

Live inserts (live.py) are planned on the writer's frame timeline: "now" at the first frame the
delay line allows (``live_delay_sec`` from the request), "next" at the first boundary between
slots at least that far away; a second insert airs after the first. When the frame of a planned
insert comes due, the slot on air is cut there if the insert's first chunk is judged; else the slot
goes on and the insert cuts in at the first frame it is ready, up to LIVE_SLIP_SEC later, past which
it fails (it cannot start in time) and the slot goes on. After an insert the slots made ahead
air later by what it added; their air times and deadlines are recorded so.
"""

from __future__ import annotations

import math
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, Optional

from . import breaks, filler
from .fencing import ChannelFenced, park
from .handoff import END, Handoff, Ready
from .hls.pacing import WallClockPacer
from .hls.subtitles import sidecar_cues
from .hls.writer import HlsChannelWriter
from .live import LiveInsert
from .marking import Marks, insert_fields, slot_fields
from .records import SlotRecord, iso, parse_iso
from ..program.graphics import slot_lower_third
from ..provenance.watermark import insert_watermark_id


# An insert not ready at its planned frame (its first sentence not yet made and heard) cuts in as soon
# as it is, up to this much later. Measured on the 2-core CPU, default profile (2026-12-08): ready
# 1.36-1.60 s after the request alone, 1.92-2.40 s beside a realtime channel in the service
# (benchmarks/bench_live.py), against the 2.0 s default delay line, whose frames are handed over a
# part (0.5 s) before they air; a GPU makes and hears a sentence in well under a second.
LIVE_SLIP_SEC = 5.0
MAX_PENDING_INSERTS = 3  # planned and not yet on air; one more is refused (409) rather than queued for long


class InsertRefused(Exception):
    """A live insert the channel cannot take now (the service answers 409)."""


class ChannelNotOnAir(InsertRefused):
    """A live insert asked of a channel whose stream has not started (or has ended)."""


class _Pacer(WallClockPacer):
    """The wall-clock pacer of one slot, which also ends it where a due insert takes over, and parks
    the thread where the fence refuses (asked before each frame: fencing.py)."""

    def __init__(self, appender: "Appender", paced: bool, cuts: bool):
        super().__init__(appender.writer, appender.runner.options.part_seconds, appender.handoff.stop)
        self.appender, self.paced, self.cuts = appender, paced, cuts

    def wait_for(self, frame: int) -> bool:
        if self.paced:
            go = super().wait_for(frame)
        else:
            go = not self.stop.is_set()
        go = go and not (self.cuts and self.appender.takes_over(frame))
        if not self.appender.fence_holds():  # asked after the wait, and when the slot ends early
            park(self.appender.parks)  # returning would let the writer publish the slot's last part
        return go


class Appender:
    """The appender thread's side. `runner` (scheduler.ChannelRunner, not imported: it builds on this
    module) is used through its public members only: options, definition, lock, state, save,
    open_writer, media_of, release, appended, on_record, insert_changed, shift_next_air, stop."""

    def __init__(self, runner: Any, handoff: Handoff):
        self.runner, self.handoff = runner, handoff
        self.writer: Optional[HlsChannelWriter] = None
        self.inserts: list[LiveInsert] = []  # planned, in air order, not yet on air
        self.on_air: Optional[LiveInsert] = None
        self.current: Optional[tuple[SlotRecord, int]] = None  # the slot being appended, its first frame
        self.cut: Optional[tuple[SlotRecord, int]] = None  # the slot a due insert just cut
        self.lock = threading.Lock()  # inserts, current
        self.marks = Marks()  # the EXT-X-DATERANGE of every item aired (marking.py)
        # Set once this thread has ended or parked for good (fencing.park): the runner waits on it, not
        # on a join that a parked thread never answers.
        self.settled = threading.Event()
        self.parked = False

    @property
    def paced(self) -> bool:
        return self.runner.options.pace == "realtime"

    # -- the thread -----------------------------------------------------------------------------
    def parks(self) -> None:
        """The fence refused mid-slot and this thread parks: the run fails as fenced, the runner returns."""
        self.parked = True
        self.handoff.fail(self.handoff.fenced or ChannelFenced("the channel's fence refused mid-slot"))
        self.runner.stop()
        self.settled.set()

    def run(self) -> None:
        try:
            self._run()
        finally:
            self.settled.set()

    def _run(self) -> None:
        r, h = self.runner, self.handoff
        name_os_thread(APPENDER_THREAD)  # the stream's encoder threads, started here, inherit the name
        ended = False
        try:
            while True:
                item = h.get(timeout=0.1)
                if item is None:
                    if self.writer is not None:
                        self._air_due_inserts()  # a gap in the schedule: an insert may fill it
                    continue
                if item is END:
                    ended = h.ended
                    if self.writer is not None and not h.stop.is_set():
                        self._air_due_inserts()  # one planned at the end of the last slot ("next") airs
                    break
                if h.stop.is_set():
                    continue  # drain to the end marker
                if self.paced:
                    hold = parse_iso(item.record.air_time) - timedelta(seconds=r.options.part_seconds)
                    if h.stop.wait(max(0.0, (hold - _now()).total_seconds())):
                        continue
                if not h.fence_holds():  # two owners never append to one playlist
                    raise h.fenced
                if self.writer is None:
                    with r.lock:  # a resume deletes stray temporaries: never channel.json's mid-save
                        self.writer = r.open_writer(parse_iso(item.record.air_time))
                    self.marks.recover(self.writer)  # ranges a killed run left open
                self._air_due_inserts()
                self._append(item)
                self._air_due_inserts()
        except BaseException as exc:  # the generator re-raises it
            h.fail(exc)
            r.stop()  # cancels the slot being made
            h.drain()
        finally:
            for ins in list(self.inserts):
                self._fail(ins, "the channel stopped before its air time")
            if self.writer is not None and h.fence_holds():
                self.marks.end(self.writer)
                self.writer.close(end=ended and h.error is None)
                r.subtitles.close(ended=ended and h.error is None)
            with r.lock:
                r.state.ended = ended and self.writer is not None and h.error is None
                r.save()

    def fence_holds(self) -> bool:
        return self.handoff.fence_holds()

    # -- slots ----------------------------------------------------------------------------------
    def _append(self, item: Ready) -> None:
        r, w = self.runner, self.writer
        record, o, fps = item.record, r.options, r.definition.fps
        with r.lock:  # recorded before the append: a restart then knows where the slot began
            record.first_frame, record.appended_at = w.frames_appended, iso(_now())
            record.air_time = iso(w.air_time_at(w.frames_appended))  # later by any insert before it
            r.save()
        with self.lock:
            self.current = (record, w.frames_appended)
        # The slot's caption cues, read once from its sidecar: the WebVTT rendition and a burned-in picture
        cues = sidecar_cues(r.mp4(item.source)) if item.kind in ("aired", "last_good") else ()
        if w.compose is not None:  # the program's lower third; a recipe's wins (fillers: the program's)
            slot = r.definition.slot_at(record.index) if item.kind == "aired" else None
            w.compose.begin_slot(lower_third=slot_lower_third(slot.recipe) if slot else None, cues=cues,
                                 first_frame=w.frames_appended, fps=r.definition.fps,
                                 full_frame=item.kind == "break")  # a break's slate is the whole picture
        self.marks.begin(w, **slot_fields(record, r.definition))
        pace = _Pacer(self, self.paced, cuts=True)
        r.subtitles.slot(w.frames_appended, cues)
        try:
            media = None if item.source is None else r.media_of(item.source)
            if item.source is not None and media is None:
                raise FileNotFoundError(f"slot {item.source}'s media (its spool or MP4) are gone from {r.slots_dir}")
            # The pixel watermark (node, slot index) on what the engine made: not on a break's slate or the
            # stand-by card (not AI-made), nor on a replica's MP4 passed through as decoded (it has its own).
            made = item.kind in ("aired", "last_good") and not (media.suffix == ".mp4" and w.compose is None)
            w.watermark(record.index if made else None)
            if item.kind == "aired":  # its spool (each frame encoded once, here), or a remote engine's MP4
                report = w.append_spool(media, pace=pace) if media.suffix == ".yuv" else w.append_mp4(media, pace=pace)
            elif item.kind == "break":
                slot = r.definition.slots[record.position]
                size = (w.width, w.height) if w.compose is not None else (o.width, o.height)  # a program's: full frame
                frames, waveform = breaks.slate(slot.slate, r.definition.name, record.n_frames, *size,
                                                fps, o.sample_rate)
                report = w.append_slot(pace(frames), waveform)
            elif item.kind == "last_good":
                frames, waveform = filler.last_good(media, record.n_frames, fps, o.sample_rate, o.width, o.height,
                                                    loudness=r.loudness)
                report = w.append_slot(pace(frames), waveform)
            else:
                frames, waveform = filler.standby(r.definition.name, record.n_frames, o.width, o.height, fps,
                                                  o.sample_rate)
                report = w.append_slot(pace(frames), waveform)
        finally:
            with self.lock:
                self.current = None
        if report.n_frames < record.n_frames:  # cut by a live insert (or a stop)
            with r.lock:
                record.aired_frames = report.n_frames
                r.save()
        r.appended += 1
        if item.source is not None:
            with r.lock:
                r.release(item.source)
        if r.on_record is not None:
            r.on_record(record, "appended")

    # -- live inserts -----------------------------------------------------------------------------
    def plan(self, insert: LiveInsert, delay_sec: float) -> None:
        """Give `insert` its air frame (see the module note); raises ChannelNotOnAir."""
        with self.lock:
            w = self.writer
            if w is None or self.handoff.stop.is_set():
                raise ChannelNotOnAir("the channel is not on air yet: its first slot has not started")
            if len(self.inserts) >= MAX_PENDING_INSERTS:
                raise InsertRefused(f"{len(self.inserts)} live inserts already wait to air (at most "
                                    f"{MAX_PENDING_INSERTS}); send this one once the next is on air")
            # the first frame that airs `delay_sec` after now (frames handed over air a part later)
            behind = (_now() + timedelta(seconds=delay_sec) - w.air_time_at(w.frames_appended)).total_seconds()
            earliest = w.frames_appended + max(0, math.ceil(behind * w.fps))
            for other in ([self.on_air] if self.on_air else []) + self.inserts:  # never cut another insert
                earliest = max(earliest, other.air_frame + other.n_frames)
            air = earliest
            if insert.record.at == "next":
                air = next((b for b in self._boundaries(earliest) if b >= earliest), earliest)
            insert.air_frame = air
            insert.record.air_time = iso(w.air_time_at(air))
            self.inserts.append(insert)
            self.inserts.sort(key=lambda i: i.air_frame)

    def _boundaries(self, at_least: int) -> Iterator[int]:
        """Frames where slots end, from the one on air (or the next one, between slots) on: the slots
        queued or being made have their records, the later ones their length in the schedule (lock held)."""
        r, d, w = self.runner, self.runner.definition, self.writer
        if self.current is None:
            end, after = w.frames_appended, None
            yield end
        else:
            record, first = self.current
            end, after = first + record.n_frames, record.index
            yield end
        with r.lock:
            known = {s.index: s.n_frames for s in r.state.slots if s.first_frame is None}
        index = after + 1 if after is not None else min(known, default=len(r.state.slots))
        while end < at_least and (r.options.max_slots is None or index < r.options.max_slots):
            n = known.get(index)
            if n is None:
                slot = d.slot_at(index)
                if slot is None:
                    return
                n = slot.n_frames
            end += n
            index += 1
            yield end

    def takes_over(self, frame: int) -> bool:
        """At `frame`'s due time: True when a due insert is ready to air from here (the slot on air is
        cut); a due insert that is not ready fails, and the slot goes on."""
        with self.lock:
            due = [i for i in self.inserts if i.air_frame <= frame]
        for insert in due:
            if insert.ready():
                with self.lock:
                    self.cut = self.current
                return True
            self._fail_if_too_late(insert, frame)
        return False

    def _fail_if_too_late(self, insert: LiveInsert, frame: int) -> None:
        """Not ready at its planned frame: the slot on air goes on, and the insert cuts in once its first
        chunk is judged, up to LIVE_SLIP_SEC later; past that it fails and the slot goes on."""
        if frame - insert.air_frame >= LIVE_SLIP_SEC * self.writer.fps:
            self._fail(insert, f"its first chunk was not made and checked within {LIVE_SLIP_SEC:g} s of its planned "
                               f"air time ({insert.record.air_time}): it did not air; the slot on air went on")

    def _air_due_inserts(self) -> None:
        w = self.writer
        while True:
            with self.lock:
                due = next((i for i in self.inserts if i.air_frame <= w.frames_appended), None)
            if due is None:
                return
            pacer = _Pacer(self, self.paced, cuts=False)
            if not pacer.wait_for(w.frames_appended):
                return
            if not due.ready():
                self._fail_if_too_late(due, w.frames_appended)  # else the next slot starts; it may cut in there
                return
            self._air(due)

    def _air(self, insert: LiveInsert) -> None:
        r, w = self.runner, self.writer
        with self.lock:
            self.inserts.remove(insert)
            self.on_air = insert
            cut, self.cut = self.cut, None
        rec, first = insert.record, w.frames_appended
        rec.first_frame, rec.air_time, rec.state = first, iso(w.air_time_at(first)), "on_air"
        if cut is not None:
            rec.cut_slot = cut[0].index
        self._shift_schedule(insert, cut, first)
        r.insert_changed(insert)
        self.marks.begin(w, **insert_fields(insert, w.fps))
        pacer = _Pacer(self, self.paced, cuts=False)
        r.subtitles.slot(first, insert.cues, insert.caption_verdict)
        if w.compose is not None:  # a live insert: the BREAKING lower third
            w.compose.begin_slot(lower_third=slot_lower_third(insert.recipe), breaking=True, cues=insert.cues,
                                 keep=insert.caption_verdict, first_frame=first, fps=w.fps)  # `captions: burn`
        w.watermark(insert_watermark_id(rec.id))
        feed = w.open_slot()
        done = 0
        try:
            while done < insert.n_frames:
                if not pacer.wait_for(w.frames_appended):
                    break
                released = insert.line.take(insert.n_frames - done)
                if not released.frames:  # not judged by its air time: the card, this frame
                    released = insert.line.skip(1)
                if released.audio.size:
                    feed.write_audio(released.audio)
                for k, frame in enumerate(released.frames):
                    if k and not pacer.wait_for(w.frames_appended):
                        break
                    feed.write_frame(frame)
                    done += 1
                    if rec.published_after_s is None and w.frames_published >= first + w.part_frames:
                        rec.published_after_s = round(time.monotonic() - insert.requested_mono, 3)
                if done < insert.n_frames and self.handoff.stop.is_set():
                    break
        finally:
            feed.close()
            with self.lock:
                self.on_air = None
        rec.state = "aired"
        if insert.line.failed and not any(c["state"] == "aired" for c in insert.line.status()):
            rec.state, rec.error = "failed", insert.line.failed
        r.insert_changed(insert)

    def _shift_schedule(self, insert: LiveInsert, cut: Optional[tuple[SlotRecord, int]], first: int) -> None:
        """The slots after the insert air later by its length, less what the cut slot does not air."""
        r, fps = self.runner, self.runner.definition.fps
        dropped = 0 if cut is None else max(0, cut[1] + cut[0].n_frames - first)
        shift = (insert.n_frames - dropped) / fps
        insert.record.shift_sec = round(shift, 3)
        with r.lock:
            for s in r.state.slots:
                if s.first_frame is None and s.air_time is not None:
                    s.air_time = iso(parse_iso(s.air_time) + timedelta(seconds=shift))
                    if s.deadline is not None:
                        s.deadline = iso(parse_iso(s.deadline) + timedelta(seconds=shift))
            r.shift_next_air(shift)
            r.save()

    def _fail(self, insert: LiveInsert, why: str) -> None:
        with self.lock:
            if insert in self.inserts:
                self.inserts.remove(insert)
        insert.record.state, insert.record.error = "failed", why
        insert.cancel(why)
        self.runner.insert_changed(insert)


def _now() -> datetime:
    return datetime.now(timezone.utc)


APPENDER_THREAD = "vx-appender"  # the OS thread name: benchmarks/bench_channel_soak.py sums its CPU


def name_os_thread(name: str) -> None:
    """Give the calling thread an OS-level name (Linux prctl PR_SET_NAME, 15 bytes), so a process's
    CPU can be split by thread from /proc; threads it starts (x264's, AAC's) inherit it. Elsewhere a no-op."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
