"""Channels inside `vortex serve`: each one a `ChannelRunner` thread on the node that holds its lease.

What every channel should do lives in the store (store/channels.py: on, stopped, ended, failed;
the POSTed definition; the lease), so any node lists, shows and stops any channel. Its stream
lives in MEDIA/channels/NAME/ (``index.m3u8``, ``init-*.mp4``, ``part-*.m4s``, ``seg-*.m4s``,
``channel.json``, ``slots/``, and ``definition.json`` for a reader of the folder), which every node
can read when MEDIA is shared.

A node runs the channels it holds. The keeper (lease.py) renews their leases and, once
the engine is loaded, takes every channel that should be on air and that no node holds: one whose
node died (a takeover, once its lease ran out), one released by a node's shutdown, or, on start
with SQLite, every channel (the previous process is dead). Taking a channel resumes its playlist
exactly as a restart does (channel/scheduler.py): the next slot, after an EXT-X-DISCONTINUITY, no
listed segment lost or rewritten.

The engine is shared by the job worker and every channel here: a channel's slot can wait behind
one job, inside its deadline (air time - margin_sec); when that is not enough the slot is filled.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from ...channel.appender import ChannelNotOnAir
from ...channel.definition import ChannelDefinition
from ...channel.fencing import ChannelFenced
from ...channel.live import At, LiveInsert
from ...channel.records import SlotRecord
from ...channel.scheduler import ChannelRunner, RunOptions
from ...config import VortexConfig
from ...errors import EngineClosed, EngineDead, VortexError
from ..media import LocalMedia
from ..metrics import ServiceMetrics
from ..store.channels import ChannelBusy, ChannelLeases, ChannelRow
from ..store.lease import ChannelLease
from .hosted import HostedChannel
from .lease import ChannelKeeper
from .status import describe

log = logging.getLogger("vortex.service.channels")
# A runner that failed (a disk error, a bug) hands the channel back still on: another node may try at
# once, this one only after 60 s, so a failure that repeats costs a retry a minute, not a busy loop.
RETRY_AFTER_FAILURE_S = 60.0
DEFINITION_NAME = "definition.json"
STOPPED_NAME = "stopped"  # a stop before the store kept channels: read once, when the folder is adopted


class ChannelConflict(VortexError):
    """A channel of that name is already running."""


class ChannelHost:
    def __init__(self, media: LocalMedia, cfg: VortexConfig, engine: Callable[[], Any], engine_loaded: threading.Event,
                 metrics: ServiceMetrics, parse: Callable[[dict[str, Any]], ChannelDefinition], leases: ChannelLeases,
                 renew_s: float, ready: Callable[[], bool] = lambda: True):
        self.media, self.root = media, media.channels
        self.cfg, self._engine, self._loaded, self.metrics = cfg, engine, engine_loaded, metrics
        self._parse = parse  # a stored definition → ChannelDefinition (references resolved again)
        self.leases = leases
        self._channels: dict[str, HostedChannel] = {}
        self._lock = threading.Lock()
        self._draining = False
        self._ready = ready  # the worker can run slots (not dead, not draining)
        self._parsed: dict[tuple[str, int, float], Optional[ChannelDefinition]] = {}
        self._retry_at: dict[str, float] = {}  # channels whose runner failed here: not taken again before
        self.keeper = ChannelKeeper(leases, renew_s, on_lost=self._on_lost, on_stop=self._on_stop_requested,
                                    take=self._take, may_take=self._may_take, busy=self._busy)

    # ---- control ---------------------------------------------------------------------------
    def start(self, raw: dict[str, Any], definition: ChannelDefinition, pace: str = "realtime",
              max_slots: Optional[int] = None) -> ChannelRow:
        """A client's POST: the channel is on, and this node runs it (a new term of its lease)."""
        name = definition.name
        with self._lock:
            old = self._channels.get(name)
            if old is not None and old.running:
                raise ChannelConflict(f"channel '{name}' is already running on this node: "
                                      f"DELETE /v1/channels/{name} first")
            sent = time.monotonic()
            try:
                row = self.leases.start(name, raw, pace, max_slots)
            except ChannelBusy as exc:
                raise ChannelConflict(str(exc)) from None
            self._launch(row, definition, sent, "start")
        return row

    def resume_all(self) -> list[str]:
        """On start: folders from before the store kept channels are recorded in it; on SQLite every
        lease belonged to the previous (dead) process. The keeper then takes every channel that
        should be on air once the engine is loaded. Returns the channels waiting for a node."""
        for path in sorted(self.root.glob(f"*/{DEFINITION_NAME}")):
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
                state = "stopped" if (path.parent / STOPPED_NAME).exists() else "on"
                self.leases.adopt(path.parent.name, stored["definition"], stored.get("pace", "realtime"),
                                  stored.get("max_slots"), state)
            except (OSError, ValueError, KeyError) as exc:
                log.error("channel folder %s not adopted: %s", path.parent, exc)
        if not self.leases.shared:
            self.leases.free_all()
        self.keeper.start()
        threading.Thread(target=self._wake_when_loaded, name="channel-wake", daemon=True).start()
        return [r.name for r in self.leases.list() if r.state == "on" and not r.leased]

    def _wake_when_loaded(self) -> None:
        """Take the waiting channels as soon as the engine is loaded, not at the keeper's next round."""
        self._loaded.wait()
        self.keeper.wake()

    def stop(self, name: str, timeout: float = 60.0) -> Optional[ChannelRow]:
        """A client's stop, on any node. Here: the slot being made is cancelled and the lease released
        as "stopped". Elsewhere: the store marks it, the owner stops it at its next renewal, and
        this waits (up to `timeout`) until it has."""
        ch = self._channels.get(name)
        if ch is not None and ch.running:
            ch.stop_reason = "client"
            self._halt(ch, timeout)
            return self.leases.get(name)
        row = self.leases.request_stop(name)
        deadline = time.monotonic() + timeout
        while row is not None and row.state == "on" and time.monotonic() < deadline:
            time.sleep(0.2)
            row = self.leases.request_stop(name)  # its owner died meanwhile: stopped once the lease ran out
        return row

    def stop_all(self, timeout: float = 60.0) -> None:
        """The service's shutdown: each runner stops, then its lease is released with the channel
        still on, so another node (or this one, restarted) resumes it at its next round."""
        self._draining = True
        for ch in list(self._channels.values()):
            if ch.stop_reason is None:
                ch.stop_reason = "shutdown"
            ch.stop_event.set()
            if ch.runner is not None:
                ch.runner.stop()
        for ch in list(self._channels.values()):
            if ch.thread is not None and not ch.lease.lost.is_set():  # a fenced runner may be parked for good
                ch.thread.join(timeout)
        self.keeper.stop()

    def _halt(self, ch: HostedChannel, timeout: float) -> None:
        ch.stop_event.set()
        if ch.runner is not None:
            ch.runner.stop()
        if ch.thread is not None:
            ch.thread.join(timeout)

    # ---- the keeper's callbacks --------------------------------------------------------------
    def _may_take(self) -> bool:
        return self._loaded.is_set() and not self._draining and self._ready()

    def _busy(self) -> set[str]:
        now = time.monotonic()
        waiting = {name for name, at in list(self._retry_at.items()) if at > now}
        return waiting | {name for name, ch in list(self._channels.items()) if ch.running}

    def _take(self, row: ChannelRow, how: str, sent: float) -> None:
        """A channel no node held is this node's now: resume it from its folder."""
        try:
            definition = self._parse(row.definition)
        except Exception as exc:  # a portrait deleted, a profile changed: shown, not retried by every node
            log.error("channel %s not resumed: %s", row.name, exc)
            self.leases.release(row.name, row.term, state="failed", error=f"not resumed: {exc}")
            return
        with self._lock:
            self._launch(row, definition, sent, how)
        if how == "takeover":
            self.metrics.channel_takeovers.labels(channel=row.name).inc()
        log.warning("channel %s: %s by %s (term %d)", row.name, how, self.leases.owner, row.term,
                    extra={"event": f"channel_{how}", "channel": row.name})

    def _on_lost(self, name: str, lease: ChannelLease) -> None:
        """Another node may own the channel now: stop at once, writing nothing (the fence says no)."""
        ch = self._channels.get(name)
        log.warning("channel %s: lease lost (%s)", name, lease.why, extra={"event": "channel_lease_lost", "channel": name})
        self.metrics.channel_leases_lost.labels(channel=name).inc()
        if ch is not None and ch.lease is lease:
            ch.stop_reason = "lost"
            ch.stop_event.set()
            if ch.runner is not None:
                ch.runner.stop()

    def _on_stop_requested(self, name: str) -> None:
        """A DELETE on another node: stop here, off the keeper's thread (a halt waits for the slot)."""
        ch = self._channels.get(name)
        if ch is not None and ch.running and ch.stop_reason is None:
            ch.stop_reason = "client"
            threading.Thread(target=self._halt, args=(ch, 60.0), name=f"stop-{name}", daemon=True).start()

    # ---- the channel's thread ----------------------------------------------------------------
    def _launch(self, row: ChannelRow, definition: ChannelDefinition, sent: float, how: str) -> HostedChannel:
        """Start the runner of a channel this node holds (self._lock held)."""
        folder = self.root / row.name
        folder.mkdir(parents=True, exist_ok=True)
        lease = self.keeper.hold(row, sent)
        if how == "start":  # only the node holding the lease writes in the folder
            _write_json(folder / DEFINITION_NAME, {"definition": row.definition, "pace": row.pace,
                                                   "max_slots": row.max_slots})
        ch = HostedChannel(row.name, folder, definition, row.pace, row.max_slots, lease, how)
        ch.thread = threading.Thread(target=self._main, args=(ch,), name=f"channel-{row.name}", daemon=True)
        self._channels[row.name] = ch
        ch.thread.start()
        return ch

    def _main(self, ch: HostedChannel) -> None:
        release: Optional[str] = None  # the state the lease is released with (None: still on)
        try:
            release = self._run(ch)
        finally:
            self.keeper.drop(ch.name, ch.lease)
            if ch.stop_reason == "client" and ch.status in ("stopped", "starting"):
                release = "stopped"
            if ch.lease.lost.is_set():
                release = None  # the channel is another node's business now
            # The runner has ended: releasing its term is safe, and a no-op if another node holds a newer one.
            self.leases.release(ch.name, ch.lease.term, state=release, error=ch.error if ch.status == "failed" else None)

    def _run(self, ch: HostedChannel) -> Optional[str]:
        while not self._loaded.wait(0.5):
            if ch.stop_event.is_set():
                ch.status = "stopped"
                return None
        if ch.stop_event.is_set():
            ch.status = "stopped"
            return None
        v = self.cfg.buffers.video
        options = RunOptions(out=ch.folder, width=v.width, height=v.height, sample_rate=self.cfg.buffers.audio.sample_rate,
                             pace=ch.pace, max_slots=ch.max_slots)
        ch.runner = ChannelRunner(ch.definition, self._engine(), options, self.cfg.pipeline.generation_timeout_sec,
                                  say=lambda line: log.info("channel %s: %s", ch.name, line),
                                  on_record=lambda record, what: self._observe(ch.name, record, what),
                                  fence=ch.lease.fence, on_insert=lambda ins: self._observe_insert(ch.name, ins))
        if ch.stop_event.is_set():
            ch.runner.stop()
        ch.status = "on_air"
        try:
            state = ch.runner.run()
        except ChannelFenced as exc:
            ch.status, ch.error = "lost", str(exc)
            return None
        except (EngineClosed, EngineDead) as exc:  # this node is going down: another node resumes the channel
            ch.status, ch.error = "stopped", f"{type(exc).__name__}: {exc}"
            return None
        except Exception as exc:  # released still on: another node (or this one, later) resumes it
            log.exception("channel %s failed", ch.name)
            ch.status, ch.error = "failed", f"{type(exc).__name__}: {exc}"
            self._retry_at[ch.name] = time.monotonic() + RETRY_AFTER_FAILURE_S
            return None
        if ch.lease.lost.is_set():
            ch.status = "lost"
            return None
        if ch.stop_event.is_set() and not state.ended:
            ch.status = "stopped"
            return "stopped" if ch.stop_reason == "client" else None
        ch.status = "ended"
        return "ended"

    def _observe(self, name: str, record: SlotRecord, what: str) -> None:
        m = self.metrics
        if what == "decided":
            m.channel_slots.labels(channel=name, decision=record.decision).inc()
            if record.retries:
                m.channel_retries.labels(channel=name).inc(record.retries)
            if record.decision == "aired" and record.lead_time_sec is not None:
                m.channel_lead.labels(channel=name).set(record.lead_time_sec)
                m.channel_lead_seconds.labels(channel=name).observe(record.lead_time_sec)
            if record.decision == "aired" and record.attempts:
                m.observe_loudness(f"channel:{name}", record.attempts[-1].loudness)
        elif what == "appended" and record.late:
            m.channel_stalls.labels(channel=name).inc()

    def _observe_insert(self, name: str, insert: LiveInsert) -> None:
        """The runner reports each state an insert reaches once (making, on_air, then aired or failed)."""
        r = insert.record
        self.metrics.channel_inserts.labels(channel=name, state=r.state).inc()
        if r.state in ("aired", "failed") and r.published_after_s is not None:
            self.metrics.channel_insert_publish_seconds.labels(channel=name).observe(r.published_after_s)

    def insert(self, name: str, recipe: Any, at: At) -> LiveInsert:
        """A live insert into a channel this node runs (the route forwards to its owner otherwise)."""
        ch = self._channels.get(name)
        if ch is None or not ch.running or ch.runner is None or ch.stop_event.is_set():
            raise ChannelNotOnAir("the channel is not on air on this node (starting, stopping or taken over)")
        return ch.runner.insert(recipe, at)

    def update_program(self, name: str, changes: dict) -> tuple[Any, Optional[int]]:
        """A running channel's new ticker/lower third (PATCH .../program), from its next frame:
        (the program now, that frame's index or None before the stream started)."""
        ch = self._channels.get(name)
        if ch is None or not ch.running or ch.runner is None or ch.stop_event.is_set():
            raise ChannelNotOnAir("the channel is not on air on this node (starting, stopping or taken over)")
        return ch.runner.update_program(changes)

    # ---- what the routes read -----------------------------------------------------------------
    def definition_of(self, row: ChannelRow) -> Optional[ChannelDefinition]:
        ch = self._channels.get(row.name)
        return ch.definition if ch is not None and ch.lease.term == row.term else self._definition(row)

    def get(self, name: str) -> Optional[ChannelRow]:
        return self.leases.get(name)

    def all(self) -> list[ChannelRow]:
        return self.leases.list()

    def folder(self, name: str) -> Path:
        return self.root / name

    def describe(self, row: ChannelRow) -> dict[str, Any]:
        """GET /v1/channels/{name}, the same on every node."""
        ch = self._channels.get(row.name)
        local = ch if ch is not None and ch.lease.term == row.term and row.owner == self.leases.owner else None
        definition = local.definition if local is not None else self._definition(row)
        snapshot = local.runner.snapshot() if local is not None and local.runner is not None else None
        return describe(row, self.folder(row.name), definition, snapshot, local, self.leases.terms(row.name),
                        self.leases.takeovers(row.name), self.leases.owner)

    def _definition(self, row: ChannelRow) -> Optional[ChannelDefinition]:
        key = (row.name, row.term, row.updated)
        if key not in self._parsed:
            if len(self._parsed) > 256:  # a cache of what GET shows, not a record
                self._parsed.clear()
            try:
                self._parsed[key] = self._parse(row.definition)
            except Exception:  # shown without its schedule; the owner reports the error
                self._parsed[key] = None
        return self._parsed[key]


def _write_json(path: Path, value: Any) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            json.dump(value, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
