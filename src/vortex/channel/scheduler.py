"""The channel runner: its two threads, its files and the order of appends. What it decides (air
times and deadlines, retries, skips, fillers, a "now" start's preroll, where a restart resumes) is
asked of policy.py, pure functions that carry the rules.

The generator (generator.py, on the caller's thread) owns the engine's requests and makes slots,
``slots_in_flight`` at once (the next one's voice beside this one's render and checks), each within
its deadline, and decides them in schedule order; a slot that is not made gets a filler. Every
attempt ends by its slot's deadline and deadlines grow with air times, so every slot is decided
before its air time: never a gap. With ``--pace realtime`` at most ``lookahead`` slots, made or in
flight, are ahead of the air (fillers cost nothing and do not count).

The appender thread (appender.py) owns the ``HlsChannelWriter`` and airs the decided slots in
order, one part ahead of the clock with ``realtime``, and the live inserts that cut in
(``insert``: live.py). The two share only a ``Handoff`` (handoff.py): the queue, stop, end, error
and fence. With asap the generator makes the next slots (up to ``lookahead`` queued) while the
appender encodes and publishes the one before.

Each frame is encoded once: an engine that streams into this process's sinks (``VortexPipeline``:
``streams_sinks``) makes a channel slot into a spool (hls/spool.py: yuv420p frames and its samples,
``slots/slot-NNNNN.yuv`` + ``.pcm``) and no MP4; the appender encodes the spool into the stream once
the slot is decided. A remote engine (Ray Serve) hands back the slot MP4, decoded and encoded once.
The last good slot's media stay on disk for the ``last_good`` filler (and a restart, or another node).

A restart (``DIR/channel.json``, see records.py) resumes with a new epoch;
``HlsChannelWriter.resume`` marks the DISCONTINUITY. ``--pace asap`` runs ahead of any clock:
each attempt gets the profile's ``generation_timeout_sec``; air times are still computed (the
program date-times) and lead times recorded.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import VortexError
from . import filler, policy, program_text
from .definition import ChannelDefinition, ChannelError
from .appender import LIVE_SLIP_SEC, Appender, ChannelNotOnAir
from .generator import Generator
from .handoff import END, Handoff
from .hls.spool import spool_frames
from .hls.subtitles import ChannelSubtitles
from .hls.writer import HlsChannelWriter
from .live import At, LiveInsert
from .hls.playlist import PLAYLIST_NAME, read_playlist
from .policy import Pace
from .records import ChannelState, Epoch, SlotRecord, iso, parse_iso
from ..program.loudness import channel_target
from ..program.compose import PROGRAM_PRESET, ProgramCompositor


@dataclass(frozen=True)
class RunOptions:
    out: Path
    width: int
    height: int
    sample_rate: int
    pace: Pace = "asap"
    max_slots: Optional[int] = None  # the channel's total slot count (across restarts); None: run until stopped
    segment_seconds: float = 2.0
    part_seconds: float = 0.5  # LL-HLS parts; realtime also hands frames over this long before air


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ChannelRunner:
    """Runs ``definition`` through ``engine`` (a ``vortex.contracts.protocol.Engine``), its slots at channel priority."""

    def __init__(self, definition: ChannelDefinition, engine: Any, options: RunOptions,
                 generation_timeout_sec: float, say: Callable[[str], None] = print,
                 on_record: Optional[Callable[[SlotRecord, str], None]] = None,
                 fence: Optional[Callable[[], None]] = None,
                 on_insert: Optional[Callable[[LiveInsert], None]] = None):
        self.definition, self.engine, self.options = definition, engine, options
        self.on_insert = on_insert  # a live insert changed state: the service's metrics
        self.on_record = on_record  # (record, "decided" | "appended"): the service's metrics and pages
        self.timeout = generation_timeout_sec
        self.say = say
        self.out = Path(options.out)
        self.slots_dir = self.out / "slots"
        self.lock = threading.Lock()  # the state (channel.json) and the file references
        # asap: the queue bounds how far ahead the generator runs; realtime: the lookahead gate does.
        # fence: raises ChannelFenced once another node may own the channel (service/store/lease.py).
        self.handoff = Handoff(definition.lookahead if options.pace == "asap" else 0, fence)
        self._stop = self.handoff.stop
        self._refs: Counter[int] = Counter()  # slot media still needed (queued, or the last good one)
        # Stream the slot into a spool (each frame encoded once) where the engine runs our sinks.
        self.spools = bool(getattr(engine, "streams_sinks", False))
        self.appended = 0  # slots appended in this run
        self.state: Optional[ChannelState] = None  # channel.json, once run() has read or made it
        self._resuming = False  # a restart: the writer continues the playlist after a DISCONTINUITY
        self._next_air: Optional[datetime] = None  # the next slot's air time (None: "now", once it is ready)
        self._appender = Appender(self, self.handoff)
        self.generator = Generator(self, self.handoff)  # makes slots, `slots_in_flight` at once
        # The program picture (a definition with `program`): the writer composes every frame at its size.
        self.program = ProgramCompositor(definition.program, (options.width, options.height)) \
            if definition.program is not None else None
        self._program_text: Optional[dict] = None  # a PATCH's text in force (channel.json's `program`)
        self._program_lock = threading.Lock()

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run (SIGTERM, Ctrl-C): the slots being made are cancelled; the playlist keeps no ENDLIST."""
        self._stop.set()
        self.generator.cancel()

    def snapshot(self) -> Optional[ChannelState]:
        """A consistent copy of the state for the service's pages (None before the run prepared it)."""
        with self.lock:
            return None if self.state is None else copy.deepcopy(self.state)

    def insert(self, recipe, at: At = "now") -> LiveInsert:
        """A live insert (live.py): planned on the stream's timeline, made at live priority, aired
        while it is made. Raises appender.ChannelNotOnAir before the first slot airs."""
        o = self.options
        card = filler.standby_card(self.definition.name, o.width, o.height)
        insert = LiveInsert(recipe, at, self.definition.fps, card, loudness=channel_target(self.definition.program))
        self._appender.plan(insert, self.definition.live_delay_sec)
        # It must have streamed by the end of its air; a little more for the whole slot's judgement.
        ends = (parse_iso(insert.record.air_time) - _now()).total_seconds() + insert.record.duration_sec
        insert.start(self.engine, deadline_s=max(1.0, ends + LIVE_SLIP_SEC + 5.0))
        self.insert_changed(insert)
        return insert

    def update_program(self, changes: dict) -> tuple[Any, Optional[int]]:
        """New ticker and/or lower third (``ProgramSpec.with_text``'s keywords) from the next frame made:
        (the program now, the global index from which at the latest; None before the stream started)."""
        if self.program is None:
            raise ChannelNotOnAir("the channel airs no program picture (its definition has no program block)")
        writer = self._appender.writer
        with self._program_lock:  # one PATCH at a time (rendering takes 0.18 s: not under the state's lock)
            spec = self.program.update(**changes)
            frame = None if writer is None else writer.frames_appended + 1  # the frame in the encoder may be the old
            with self.lock:  # kept in channel.json: a restart or a takeover airs it (program_text.py)
                self._program_text = program_text.patched(self._program_text, changes, spec, self.definition.program,
                                                          frame, iso(_now()))
                if self.state is not None:
                    self.state.program = self._program_text
                    self.save()
        return spec, frame

    def run(self) -> ChannelState:
        self.out.mkdir(parents=True, exist_ok=True)
        self.slots_dir.mkdir(exist_ok=True)
        index = self._prepare()
        if self.state.ended and not policy.more_to_air(index, self.options.max_slots):
            self.say(f"channel {self.definition.name}: {index} slots already aired and the playlist ended; nothing to do")
            return self.state
        appender = threading.Thread(target=self._appender.run, name="channel-appender", daemon=True)
        appender.start()
        try:
            self.generator.run(index)
        finally:
            self.handoff.put(END)
            # A parked appender never ends (fencing.py): waiting for its end kept this thread, and all
            # it held, until the process exited (CI then hung in a child Ray forked meanwhile, which
            # freed a frame's swscale thread pool: vortex.media.SWS_THREADS). The run ends as fenced.
            self._appender.settled.wait()
            if not self._appender.parked:
                appender.join()
        if self.handoff.error is not None:
            raise self.handoff.error
        return self.state

    # -- preparing: a fresh channel or a restart ------------------------------------------------

    def _prepare(self) -> int:
        d, o = self.definition, self.options
        shape = dict(width=o.width, height=o.height, fps=d.fps, sample_rate=o.sample_rate)
        state = ChannelState.load(self.out)
        playlist_path = self.out / PLAYLIST_NAME
        if state is not None and state.channel != d.name:
            raise ChannelError(d.source, "name", f"{self.out} holds channel '{state.channel}', not '{d.name}': "
                               "use another --out folder")
        if state is not None and playlist_path.is_file():
            old = {k: getattr(state, k) for k in shape}
            if old != shape:
                raise VortexError(f"{self.out} holds a stream of {old}; this run would make {shape}: use another --out")
            playlist = read_playlist(self.out)  # its segments, and the listed parts of one still open
            durations = [g.duration_sec for g in playlist.segments]
            durations += [p.duration_sec for p in (playlist.open.parts if playlist.open else ())]
            listed = policy.listed_frames(durations, d.fps)
            index = policy.resume_index((r.first_frame for r in state.slots), listed)
            state.slots = state.slots[:index]
            for row in state.inserts:  # made by the process that stopped: what it listed stays listed
                if row.get("state") in ("making", "on_air"):
                    row["state"], row["error"] = "failed", (f"interrupted while {row['state']}: the channel stopped "
                                                            "(a restart or a takeover resumes at the next slot)")
            self._resuming = True
        else:
            if playlist_path.exists():
                raise VortexError(f"{playlist_path} exists but {self.out}/channel.json does not: not a channel "
                                  "folder this command made; use another --out")
            state = ChannelState(d.name, d.source, **shape)
            index, self._resuming = 0, False
        with self._program_lock:  # a PATCH made while this prepared wins over the one a crashed run kept
            if self._program_text is None and self.program is not None:
                self._program_text = program_text.restore(state.program, d.program, self.program.update, self.say)
            with self.lock:
                state.program = self._program_text
                self.state = state
        last = state.record(index - 1)
        previous_end = None
        if last is not None and last.air_time is not None:
            previous_end = policy.air_after(parse_iso(last.air_time), last.duration_sec)
        self._next_air = policy.epoch_start(previous_end, d.start, d.margin_sec, o.pace, _now(), d.source)
        state.epochs.append(Epoch(index, iso(self._next_air), self._resuming, iso(_now())))
        good = state.last_good
        state.last_good = policy.kept_last_good(good, index, good is not None and self.media_of(good) is not None)
        if state.last_good is not None:
            self._refs[state.last_good] += 1
        stale = policy.stale_slot_files((p.name for p in self.slots_dir.glob("slot-*")), state.last_good)
        for name in stale:  # media of slots that never aired
            (self.slots_dir / name).unlink(missing_ok=True)
        for temp in self.slots_dir.glob(".slot-*.tmp"):  # spools a killed run was writing
            temp.unlink(missing_ok=True)
        if policy.more_to_air(index, o.max_slots):
            state.ended = False
        self.save()
        return index

    # -- the generator's needs (generator.py): decisions, in schedule order ---------------------

    def decide(self, record: SlotRecord, ok: bool, decision: Optional[str] = None) -> None:
        now = _now()
        with self.lock:
            record.decision, record.filler_of = policy.decision_for(ok, self.definition.filler, self.state.last_good)
            if decision is not None:  # "break": neither made nor a filler
                record.decision, record.filler_of = decision, None
            if ok:
                if self.state.last_good is not None:
                    self.release(self.state.last_good)
                self.state.last_good = record.index
                self._refs[record.index] += 1
            preroll = self._preroll_seconds(record.index) if self._next_air is None else 0.0
            times = policy.air_times(now, self._next_air, record.duration_sec, preroll)
            if times.epoch_started:  # "now": the epoch airs once the lookahead can be made
                self.state.epochs[-1].start = iso(times.air)
            record.air_time, record.ready_at, record.lead_time_sec = iso(times.air), iso(times.ready), times.lead_sec
            self._next_air = times.next_air
            self.save()
        last = record.attempts[-1] if record.attempts else None
        why = "" if ok or last is None else f" ({last.error_kind}: {(last.error or '')[:120]})"
        filler_of = f" of slot {record.filler_of}" if record.filler_of is not None else ""
        self.say(f"slot {record.index} [{record.recipe}] air {record.air_time} → {record.decision}{filler_of} · "
                 f"{len(record.attempts)} attempt(s) · lead {record.lead_time_sec:+.2f} s{why}")
        if self.on_record is not None:
            self.on_record(record, "decided")

    def _preroll_seconds(self, index: int) -> float:
        following = (self.definition.slot_at(index + k) for k in range(1, self.definition.lookahead))
        return policy.preroll_seconds(self.options.pace, self.generator.costs,
                                      (s.duration_sec for s in following if s is not None))

    def source_of(self, record: SlotRecord) -> tuple[str, Optional[int]]:
        kind, source = policy.source_of(record.decision, record.index, record.filler_of)
        if source is not None:
            with self.lock:
                self._refs[source] += 1
        return kind, source

    # -- the appender's needs (appender.py) --------------------------------------------------------

    def open_writer(self, air: datetime) -> HlsChannelWriter:
        o, fps = self.options, self.definition.fps
        shape = dict(width=o.width, height=o.height, fps=fps, sample_rate=o.sample_rate, segment_seconds=o.segment_seconds,
                     part_seconds=o.part_seconds)
        program = self.definition.program
        subs = self.subtitles = ChannelSubtitles(self.out, fps,  # master.m3u8 and the WebVTT rendition
                                                 enabled=program is None or program.captions is not False)
        if self.program is not None:
            shape.update(width=self.program.width, height=self.program.height, compose=self.program,
                         preset=PROGRAM_PRESET)
        from ..provenance.stream import stream_signer

        signer = stream_signer(self.engine, self.out)  # SEG.m4s.prov.json beside each segment
        on_segment = subs.on_segment if signer is None else _both(subs.on_segment, signer)
        if self._resuming:
            writer = HlsChannelWriter.resume(self.out, air_time=air, on_segment=on_segment, **shape)
        else:
            writer = HlsChannelWriter(self.out, program_start=air, on_segment=on_segment, **shape)
        subs.attach(writer)
        if signer is not None:  # what airs carries the pixel watermark too (node, slot index): appender.py
            writer.watermark_node = self.engine.signer.node
        return writer

    @property
    def next_air(self) -> Optional[datetime]:
        """The air time of the slot decided next (None: a "now" epoch before its first slot); lock held."""
        return self._next_air

    def shift_next_air(self, seconds: float) -> None:
        """A live insert pushed the schedule later (lock held): the next slot's air time follows."""
        if self._next_air is not None:
            self._next_air += timedelta(seconds=seconds)

    def insert_changed(self, insert: LiveInsert) -> None:
        """Record an insert's new state in channel.json and tell the service."""
        summary = insert.summary()
        with self.lock:
            rows = self.state.inserts
            at = next((k for k, row in enumerate(rows) if row["id"] == insert.id), None)
            if at is None:
                rows.append(summary)
            else:
                rows[at] = summary
            self.save()
        if self.on_insert is not None:
            self.on_insert(insert)

    @property
    def loudness(self) -> Any:
        """The target the channel's audio airs at: its program's, else the engine's config's (fillers too)."""
        return channel_target(self.definition.program) or getattr(getattr(self.engine, "config", None), "loudness", None)

    # -- files -----------------------------------------------------------------------------------

    def mp4(self, index: int) -> Path:
        return self.slots_dir / f"slot-{index:05d}.mp4"

    def spool(self, index: int) -> Path:
        return self.slots_dir / f"slot-{index:05d}.yuv"

    def media_of(self, index: int) -> Optional[Path]:
        """Slot `index`'s media on disk: its spool (.yuv, with its .pcm), else its MP4; None: neither."""
        if spool_frames(self.spool(index), self.options.width, self.options.height) is not None:
            return self.spool(index)
        return self.mp4(index) if self.mp4(index).is_file() else None

    def release(self, index: int) -> None:
        """Drop one reference to a slot's media (lock held); the last one deletes them and the sidecar."""
        self._refs[index] -= 1
        if self._refs[index] <= 0:
            del self._refs[index]
            base = self.mp4(index)
            for suffix in (".mp4", ".json", ".vtt", ".yuv", ".pcm"):
                base.with_suffix(suffix).unlink(missing_ok=True)

    def save(self) -> None:
        self.handoff.write_if_held(lambda: self.state.save(self.out))


def _both(first, second):
    """One on_segment hook from two: the captions' WebVTT segment, then the segment's signed manifest."""
    def on_segment(segment) -> None:
        first(segment)
        second(segment)
    return on_segment
