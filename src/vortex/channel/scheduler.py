"""The channel scheduler: air times, lookahead, retries, fillers, and the order of appends.

Two threads. The generator (the caller's thread) owns the engine and makes slots one at a time,
in order: slot k airs at its epoch's start + the durations of the slots before it; its deadline
is its air time − ``margin_sec``; each attempt gets the time left to the deadline, a failed one is
retried with seed + 1 while time and ``max_attempts`` allow (an ``input`` error never: the same
recipe fails the same way), and otherwise the slot's air time is given to the filler. An attempt
that recent slots say cannot finish in the time left (median seconds per slot second x duration)
is not started ("skipped" in the record): its engine time goes to the next slot instead. Since a
slot starts only after the one before it is decided, and deadlines grow with air times, every
slot is decided before its air time: never a gap. With ``--pace realtime`` at most ``lookahead``
made slots wait for their air time (fillers cost nothing and do not count).

The appender thread owns the ``HlsChannelWriter`` and appends decided slots in order. With
``realtime`` it holds each until one segment before its air time, so the published stream follows
the wall clock (the writer publishes a slot's media up to about a segment before its end at
once, the rest with the next append); with ``asap`` it appends at once (tests, batch runs).

Schedules and restarts (``DIR/channel.json``, see records.py): ``start: now`` airs the first slot
once it is ready (asap) or once the ``lookahead - 1`` slots after it can be made too, judged by
its own cost (realtime: the preroll). A restart resumes at the first slot none of whose frames the playlist
lists (a slot half listed when the process died counts as aired) with a new epoch: it keeps the
old timetable if the next slot's deadline is still ahead, else starts anew as "now"; with
``asap`` the timetable always continues. ``HlsChannelWriter.resume`` marks the DISCONTINUITY.

``--pace asap`` runs ahead of any clock, so air-time deadlines do not apply there: each attempt
gets the profile's ``generation_timeout_sec``; air times are still computed (the program
date-times) and lead times recorded.
"""

from __future__ import annotations

import copy
import hashlib
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Literal, Optional

from ..errors import VortexError
from . import filler
from .definition import ChannelDefinition, ChannelError
from .hls import HlsChannelWriter
from .playlist import PLAYLIST_NAME, read_playlist
from .records import Attempt, ChannelState, Epoch, SlotRecord, iso, parse_iso

Pace = Literal["realtime", "asap"]
MIN_ATTEMPT_SEC = 1.0  # an attempt with less time than this left cannot make even a 1 s CPU slot
NO_RETRY = ("input", "cancelled")  # the same recipe fails the same way; a cancel means stop
SEED_SPACE = 2**63  # the recipe's seed range
COST_HISTORY = 5  # successful attempts whose seconds-per-slot-second estimate the next one's cost


@dataclass(frozen=True)
class RunOptions:
    out: Path
    width: int
    height: int
    sample_rate: int
    pace: Pace = "asap"
    max_slots: Optional[int] = None  # the channel's total slot count (across restarts); None: run until stopped
    segment_seconds: float = 2.0


@dataclass
class _Ready:
    record: SlotRecord
    kind: str  # "aired" | "last_good" | "standby"
    source: Optional[int]  # the slot index whose MP4 is read (aired: itself; last_good: the re-aired one)


_END = object()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ChannelRunner:
    """Runs ``definition`` through ``engine`` (a ``vortex.engine.Engine``), its slots at channel priority."""

    def __init__(self, definition: ChannelDefinition, engine: Any, options: RunOptions,
                 generation_timeout_sec: float, say: Callable[[str], None] = print,
                 on_record: Optional[Callable[[SlotRecord, str], None]] = None):
        self.definition, self.engine, self.options = definition, engine, options
        self.on_record = on_record  # (record, "decided" | "appended"): the service's metrics and pages
        self.timeout = generation_timeout_sec
        self.say = say
        self.out = Path(options.out)
        self.slots_dir = self.out / "slots"
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the state (channel.json) and the file references
        # asap: the queue bounds how far ahead the generator runs; realtime: the lookahead gate does.
        self._queue: queue.Queue = queue.Queue(maxsize=definition.lookahead if options.pace == "asap" else 0)
        self._refs: Counter[int] = Counter()  # slot MP4s still needed (queued, or the last good one)
        self._current_request: Optional[str] = None
        self._error: Optional[BaseException] = None
        self.appended = 0  # slots appended in this run
        self._costs: list[float] = []  # attempt seconds / slot seconds of recent successes

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """End the run (SIGTERM, Ctrl-C): the slot being made is cancelled; the playlist keeps no ENDLIST."""
        self._stop.set()
        request = self._current_request
        if request is not None:
            self.engine.cancel(request)

    def snapshot(self) -> Optional[ChannelState]:
        """A consistent copy of the state for the service's pages (None before the run prepared it)."""
        with self._lock:
            state = getattr(self, "state", None)
            return None if state is None else copy.deepcopy(state)

    def run(self) -> ChannelState:
        self.out.mkdir(parents=True, exist_ok=True)
        self.slots_dir.mkdir(exist_ok=True)
        index = self._prepare()
        if self.state.ended and self.options.max_slots is not None and index >= self.options.max_slots:
            self.say(f"channel {self.definition.name}: {index} slots already aired and the playlist ended; nothing to do")
            return self.state
        appender = threading.Thread(target=self._append_loop, name="channel-appender", daemon=True)
        appender.start()
        try:
            self._generate_loop(index)
        finally:
            self._put(_END)
            appender.join()
        if self._error is not None:
            raise self._error
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
            listed = sum(round(s.duration_sec * d.fps) for s in read_playlist(self.out).segments)
            # A slot with any frame listed aired (part of it, at worst); the rest is made anew.
            index = sum(1 for r in state.slots if r.first_frame is not None and r.first_frame < listed)
            state.slots = state.slots[:index]
            self._resuming = True
        else:
            if playlist_path.exists():
                raise VortexError(f"{playlist_path} exists but {self.out}/channel.json does not: not a channel "
                                  "folder this command made; use another --out")
            state = ChannelState(d.name, d.source, **shape)
            index, self._resuming = 0, False
        self.state = state
        self._next_air = self._epoch_start(index)
        state.epochs.append(Epoch(index, iso(self._next_air), self._resuming, iso(_now())))
        if state.last_good is not None and (state.last_good >= index or not self._mp4(state.last_good).is_file()):
            # Made but never appended (it is made again, into the same file name), or gone.
            state.last_good = None
        if state.last_good is not None:
            self._refs[state.last_good] += 1
        for stale in self.slots_dir.glob("slot-*"):  # MP4s of slots that never aired
            if state.last_good is None or not stale.name.startswith(f"slot-{state.last_good:05d}."):
                stale.unlink(missing_ok=True)
        if self.options.max_slots is None or index < self.options.max_slots:
            state.ended = False
        self._save()
        return index

    def _epoch_start(self, index: int) -> Optional[datetime]:
        d, now = self.definition, _now()
        last = self.state.record(index - 1)
        if last is not None and last.air_time is not None:
            follow = parse_iso(last.air_time) + timedelta(seconds=last.duration_sec)
            if self.options.pace == "asap" or follow - timedelta(seconds=d.margin_sec) > now:
                return follow
            return None  # the old timetable is gone: air again as soon as a slot is ready
        if d.start is None:
            return None  # "now": the first slot airs the moment it is ready
        if self.options.pace == "realtime" and d.start - timedelta(seconds=d.margin_sec) <= now:
            raise ChannelError(d.source, "start", f"{d.start.isoformat()} minus margin_sec is already past: "
                               "use 'now' or a later time")
        return d.start

    # -- the generator ---------------------------------------------------------------------------

    def _generate_loop(self, index: int) -> None:
        d, max_slots = self.definition, self.options.max_slots
        while not self._stop.is_set() and (max_slots is None or index < max_slots):
            slot = d.slot_at(index)
            if slot is None:
                break  # the list is done and does not loop
            if not self._wait_for_lookahead(index):
                break
            record = SlotRecord(index, slot.position, slot.source, slot.duration_sec, slot.n_frames,
                                air_time=iso(self._next_air))
            deadline = None
            if self.options.pace == "realtime" and self._next_air is not None:
                deadline = self._next_air - timedelta(seconds=d.margin_sec)
                record.deadline = iso(deadline)
            with self._lock:
                self.state.slots.append(record)
            ok = self._make(slot.recipe, record, deadline)
            if self._stop.is_set():
                break
            self._decide(record, ok)
            self._put(_Ready(record, *self._source_of(record)))
            index += 1
        self._ended = not self._stop.is_set()

    def _wait_for_lookahead(self, index: int) -> bool:
        """Realtime: at most ``lookahead`` made slots wait for their air time. A filler costs no engine
        time and does not count, so after a slot that was filled the next one starts at once."""
        if self.options.pace != "realtime":
            return True
        while True:
            now = _now()
            with self._lock:
                ahead = sorted(t for t in (parse_iso(r.air_time) for r in self.state.slots if r.decision == "aired")
                               if t > now)
            if len(ahead) < self.definition.lookahead:
                return True
            if self._stop.wait((ahead[0] - now).total_seconds()):
                return False

    def _make(self, recipe, record: SlotRecord, deadline: Optional[datetime]) -> bool:
        from ..engine.requests import Priority, SlotRequest

        seed = recipe.slot_params.seed
        if seed is None:  # a stable seed per channel slot: a rerun makes the same slot
            digest = hashlib.sha256(f"{self.definition.name}/{record.index}".encode()).digest()
            seed = int.from_bytes(digest[:8], "big") % SEED_SPACE
        for _ in range(self.definition.max_attempts):
            left = None if deadline is None else (deadline - _now()).total_seconds()
            if left is not None and left < MIN_ATTEMPT_SEC:
                break
            need = self._expected_seconds(record.duration_sec)
            if left is not None and need is not None and need > left:
                # It would miss its deadline anyway: the filler airs now, and the engine's time goes
                # to the next slot, whose deadline is a slot duration further away.
                with self._lock:
                    record.attempts.append(Attempt(seed, "skipped", "deadline", f"an attempt takes about {need:.1f} s "
                                                   f"(recent slots); {left:.1f} s were left", 0.0))
                    self._save()
                break
            request = SlotRequest(recipe=recipe, slot_id=record.index, seed=seed, priority=Priority.CHANNEL,
                                  deadline_s=self.timeout if left is None else left, output=self._mp4(record.index))
            self._current_request = request.id
            if self._stop.is_set():
                break
            began = time.monotonic()
            try:
                result = self.engine.run(request, on_event=None)
            finally:
                self._current_request = None
            replica = result.replica  # a RayEngine's result says which replica ran it
            attempt = Attempt(int(result.seed), "ok" if result.success else "failed", result.error_kind,
                              result.error_msg, round(time.monotonic() - began, 3),
                              replica.get("id") if isinstance(replica, dict) else None)
            with self._lock:
                record.attempts.append(attempt)
                self._save()
            if result.success:
                self._costs = (self._costs + [attempt.seconds / record.duration_sec])[-COST_HISTORY:]
                return True
            if result.error_kind in NO_RETRY or self._stop.is_set():
                break
            seed = (int(result.seed) + 1) % SEED_SPACE
        return False

    def _preroll_seconds(self, index: int) -> float:
        """Realtime, "now": how long the first slot waits for air, so that the next ``lookahead - 1``
        slots are made before it ends. Airing it at once leaves slot 2 its predecessor's duration
        minus the margin: measured on cpu-preview (2 cores), a 6 s slot then a 5 s one made in 5.7 s
        with 4.0 s left, so the second slot aired as a filler; the first slot's own cost (its warm-up
        included) estimates the rest."""
        if self.options.pace != "realtime" or not self._costs:
            return 0.0
        following = (self.definition.slot_at(index + k) for k in range(1, self.definition.lookahead))
        return self._costs[-1] * sum(s.duration_sec for s in following if s is not None)

    def _expected_seconds(self, duration: float) -> Optional[float]:
        """A new attempt's likely time: the median recent cost x the slot's duration (None: no history)."""
        if not self._costs:
            return None
        return sorted(self._costs)[len(self._costs) // 2] * duration

    def _decide(self, record: SlotRecord, ok: bool) -> None:
        now = _now()
        ready = now.replace(microsecond=now.microsecond // 1000 * 1000)  # channel.json keeps milliseconds
        with self._lock:
            if ok:
                record.decision = "aired"
                if self.state.last_good is not None:
                    self._release(self.state.last_good)
                self.state.last_good = record.index
                self._refs[record.index] += 1
            elif self.definition.filler == "last_good" and self.state.last_good is not None:
                record.decision, record.filler_of = "filler:last_good", self.state.last_good
            else:
                record.decision = "filler:standby"
            if self._next_air is None:  # "now": the epoch airs once the lookahead can be made
                start = ready + timedelta(seconds=self._preroll_seconds(record.index))
                self._next_air = start.replace(microsecond=start.microsecond // 1000 * 1000)
                record.air_time = iso(self._next_air)
                self.state.epochs[-1].start = record.air_time
            air = parse_iso(record.air_time)
            record.ready_at, record.lead_time_sec = iso(ready), round((air - ready).total_seconds(), 3) + 0.0
            self._next_air = air + timedelta(seconds=record.duration_sec)
            self._save()
        last = record.attempts[-1] if record.attempts else None
        why = "" if ok or last is None else f" ({last.error_kind}: {(last.error or '')[:120]})"
        filler_of = f" of slot {record.filler_of}" if record.filler_of is not None else ""
        self.say(f"slot {record.index} [{record.recipe}] air {record.air_time} → {record.decision}{filler_of} · "
                 f"{len(record.attempts)} attempt(s) · lead {record.lead_time_sec:+.2f} s{why}")
        if self.on_record is not None:
            self.on_record(record, "decided")

    def _source_of(self, record: SlotRecord) -> tuple[str, Optional[int]]:
        if record.decision == "aired":
            source, kind = record.index, "aired"
        elif record.decision == "filler:last_good":
            source, kind = record.filler_of, "last_good"
        else:
            return "standby", None
        with self._lock:
            self._refs[source] += 1
        return kind, source

    def _put(self, item) -> None:
        while True:
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self._stop.is_set() and item is not _END:
                    return
                if self._stop.is_set():  # make room: the appender drops what it has not started
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass

    # -- the appender ----------------------------------------------------------------------------

    def _append_loop(self) -> None:
        writer: Optional[HlsChannelWriter] = None
        ended = False
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    ended = getattr(self, "_ended", False)
                    break
                if self._stop.is_set():
                    continue  # drain to the end marker
                if self.options.pace == "realtime":
                    hold = parse_iso(item.record.air_time) - timedelta(seconds=self.options.segment_seconds)
                    if self._stop.wait(max(0.0, (hold - _now()).total_seconds())):
                        continue
                if writer is None:
                    writer = self._open_writer(parse_iso(item.record.air_time))
                self._append(writer, item)
        except BaseException as exc:  # the generator re-raises it
            self._error = exc
            self.stop()
            while self._queue.get() is not _END:
                pass
        finally:
            if writer is not None:
                writer.close(end=ended and self._error is None)
            with self._lock:
                self.state.ended = ended and writer is not None and self._error is None
                self._save()

    def _open_writer(self, air: datetime) -> HlsChannelWriter:
        o, fps = self.options, self.definition.fps
        shape = dict(width=o.width, height=o.height, fps=fps, sample_rate=o.sample_rate, segment_seconds=o.segment_seconds)
        if self._resuming:
            return HlsChannelWriter.resume(self.out, air_time=air, **shape)
        return HlsChannelWriter(self.out, program_start=air, **shape)

    def _append(self, writer: HlsChannelWriter, item: _Ready) -> None:
        record, o, fps = item.record, self.options, self.definition.fps
        with self._lock:  # recorded before the append: a restart then knows where the slot began
            record.first_frame, record.appended_at = writer.frames_appended, iso(_now())
            self._save()
        if item.kind == "aired":
            writer.append_mp4(self._mp4(item.source))
        elif item.kind == "last_good":
            writer.append_slot(*filler.last_good(self._mp4(item.source), record.n_frames, fps, o.sample_rate))
        else:
            writer.append_slot(*filler.standby(self.definition.name, record.n_frames, o.width, o.height, fps,
                                               o.sample_rate))
        self.appended += 1
        if item.source is not None:
            with self._lock:
                self._release(item.source)
        if self.on_record is not None:
            self.on_record(record, "appended")

    # -- files -----------------------------------------------------------------------------------

    def _mp4(self, index: int) -> Path:
        return self.slots_dir / f"slot-{index:05d}.mp4"

    def _release(self, index: int) -> None:
        """Drop one reference to a slot MP4 (lock held); the last one deletes it and its sidecar."""
        self._refs[index] -= 1
        if self._refs[index] <= 0:
            del self._refs[index]
            for path in (self._mp4(index), self._mp4(index).with_suffix(".json")):
                path.unlink(missing_ok=True)

    def _save(self) -> None:
        self.state.save(self.out)
