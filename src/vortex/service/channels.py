"""Channels inside `vortex serve`: each one a `ChannelRunner` thread on the service's one engine.

Each channel lives in DATA/channels/NAME/: ``definition.json`` (what was POSTed: inline recipes,
portrait references unresolved, the pace and slot limit), the stream itself (``index.m3u8``,
``init-*.mp4``, ``part-*.m4s``, ``seg-*.m4s``, ``channel.json``, ``slots/``) and, once a client stopped it, a ``stopped`` marker.
When the service starts it resumes every channel without the marker: the runner continues the
playlist after an ``EXT-X-DISCONTINUITY`` (channel/scheduler.py), so a kill -9 of the service
costs the stream the slots it had not yet appended, never a listed segment.

The engine runs one slot at a time (its own lock), shared by the job worker and every channel:
a channel's slot can wait behind one job, inside its deadline (air time - margin_sec); when
that is not enough the slot is filled, and the metrics show it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Optional

from ..channel.definition import ChannelDefinition
from ..channel.records import ChannelState, SlotRecord, parse_iso
from ..channel.scheduler import ChannelRunner, RunOptions
from ..config import VortexConfig
from ..errors import VortexError
from .metrics import ServiceMetrics

log = logging.getLogger("vortex.service.channels")
DEFINITION_NAME = "definition.json"
STOPPED_NAME = "stopped"
RECENT = 12  # decided slots a status shows


class ChannelConflict(VortexError):
    """A channel of that name is already running."""


@dataclass
class HostedChannel:
    name: str
    folder: Path
    definition: ChannelDefinition
    pace: str
    max_slots: Optional[int]
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: Optional[threading.Thread] = None
    runner: Optional[ChannelRunner] = None
    status: str = "starting"  # starting | on_air | ended | stopped | failed
    error: Optional[str] = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class ChannelHost:
    def __init__(self, data: Path, cfg: VortexConfig, engine: Callable[[], Any], engine_loaded: threading.Event,
                 metrics: ServiceMetrics, parse: Callable[[dict[str, Any]], ChannelDefinition]):
        self.root = Path(data) / "channels"
        self.cfg, self._engine, self._loaded, self.metrics = cfg, engine, engine_loaded, metrics
        self._parse = parse  # a stored definition → ChannelDefinition (references resolved again)
        self._channels: dict[str, HostedChannel] = {}
        self._lock = threading.Lock()

    # ---- control ---------------------------------------------------------------------------
    def start(self, raw: dict[str, Any], definition: ChannelDefinition, pace: str = "realtime",
              max_slots: Optional[int] = None) -> HostedChannel:
        name = definition.name
        with self._lock:
            old = self._channels.get(name)
            if old is not None and old.running:
                raise ChannelConflict(f"channel '{name}' is already running: DELETE /v1/channels/{name} first")
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            _write_json(folder / DEFINITION_NAME, {"definition": raw, "pace": pace, "max_slots": max_slots})
            (folder / STOPPED_NAME).unlink(missing_ok=True)
            ch = HostedChannel(name, folder, definition, pace, max_slots)
            ch.thread = threading.Thread(target=self._main, args=(ch,), name=f"channel-{name}", daemon=True)
            self._channels[name] = ch
            ch.thread.start()
        return ch

    def resume_all(self) -> list[str]:
        """Every channel that was running when the service last stopped (or died) goes on air again."""
        resumed = []
        for path in sorted(self.root.glob(f"*/{DEFINITION_NAME}")):
            folder = path.parent
            if (folder / STOPPED_NAME).exists():
                continue
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
                definition = self._parse(stored["definition"])
                self.start(stored["definition"], definition, stored.get("pace", "realtime"), stored.get("max_slots"))
                resumed.append(definition.name)
            except Exception as exc:  # a portrait deleted, a profile changed: shown, not fatal
                log.error("channel %s not resumed: %s", folder.name, exc)
                with self._lock:
                    self._channels[folder.name] = HostedChannel(folder.name, folder, None, "realtime", None,  # type: ignore[arg-type]
                                                                status="failed", error=f"not resumed: {exc}")
        return resumed

    def stop(self, name: str, timeout: float = 60.0) -> Optional[HostedChannel]:
        """A client's stop: the slot being made is cancelled, and a restart leaves the channel off."""
        ch = self._channels.get(name)
        if ch is None:
            return None
        (ch.folder / STOPPED_NAME).touch()
        self._halt(ch, timeout)
        return ch

    def stop_all(self, timeout: float = 60.0) -> None:
        """The service's shutdown: no marker, so the next start resumes every channel."""
        for ch in list(self._channels.values()):
            self._halt(ch, timeout)

    def _halt(self, ch: HostedChannel, timeout: float) -> None:
        ch.stop_event.set()
        if ch.runner is not None:
            ch.runner.stop()
        if ch.thread is not None:
            ch.thread.join(timeout)

    def get(self, name: str) -> Optional[HostedChannel]:
        return self._channels.get(name)

    def all(self) -> list[HostedChannel]:
        return sorted(self._channels.values(), key=lambda c: c.name)

    # ---- the channel's thread ----------------------------------------------------------------
    def _main(self, ch: HostedChannel) -> None:
        while not self._loaded.wait(0.5):
            if ch.stop_event.is_set():
                ch.status = "stopped"
                return
        if ch.stop_event.is_set():
            ch.status = "stopped"
            return
        v = self.cfg.buffers.video
        options = RunOptions(out=ch.folder, width=v.width, height=v.height, sample_rate=self.cfg.buffers.audio.sample_rate,
                             pace=ch.pace, max_slots=ch.max_slots)
        ch.runner = ChannelRunner(ch.definition, self._engine(), options, self.cfg.pipeline.generation_timeout_sec,
                                  say=lambda line: log.info("channel %s: %s", ch.name, line),
                                  on_record=lambda record, what: self._observe(ch.name, record, what))
        if ch.stop_event.is_set():
            ch.runner.stop()
        ch.status = "on_air"
        try:
            state = ch.runner.run()
        except Exception as exc:
            log.exception("channel %s failed", ch.name)
            ch.status, ch.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        ch.status = "stopped" if ch.stop_event.is_set() and not state.ended else "ended"

    def _observe(self, name: str, record: SlotRecord, what: str) -> None:
        m = self.metrics
        if what == "decided":
            m.channel_slots.labels(channel=name, decision=record.decision).inc()
            if record.retries:
                m.channel_retries.labels(channel=name).inc(record.retries)
            if record.decision == "aired" and record.lead_time_sec is not None:
                m.channel_lead.labels(channel=name).set(record.lead_time_sec)
                m.channel_lead_seconds.labels(channel=name).observe(record.lead_time_sec)
        elif what == "appended" and record.late:
            m.channel_stalls.labels(channel=name).inc()

    # ---- what GET /v1/channels/{name} shows -----------------------------------------------------
    def describe(self, ch: HostedChannel) -> dict[str, Any]:
        state = ch.runner.snapshot() if ch.runner is not None else None
        if state is None:
            state = ChannelState.load(ch.folder) if (ch.folder / "channel.json").is_file() else None
        slots = state.slots if state is not None else []
        now = datetime.now(timezone.utc)
        on_air, upcoming, decided = None, [], []
        for r in slots:
            air = parse_iso(r.air_time)
            if r.decision is None or air is None or air > now:
                upcoming.append(_slot_json(r, "making" if r.decision is None else "ready"))
            elif now < air + timedelta(seconds=r.duration_sec):
                on_air = _slot_json(r, "on_air")
            if r.decision is not None:
                decided.append(r)
        d = ch.definition
        if d is not None and ch.status in ("starting", "on_air"):
            for index in range(len(slots), len(slots) + max(0, d.lookahead + 1 - len(upcoming))):
                slot = d.slot_at(index)
                if slot is None or (ch.max_slots is not None and index >= ch.max_slots):
                    break
                upcoming.append({"index": index, "recipe": slot.source, "duration_sec": slot.duration_sec,
                                 "state": "scheduled"})
        aired = [r.lead_time_sec for r in decided if r.decision == "aired" and r.lead_time_sec is not None]
        leads = sorted(aired)
        base = f"/v1/channels/{ch.name}"
        return {
            "name": ch.name, "status": ch.status, "error": ch.error, "pace": ch.pace, "max_slots": ch.max_slots,
            "playlist": f"{base}/index.m3u8", "page": f"/channels/{ch.name}",
            "definition": None if d is None else {"loop": d.loop, "lookahead": d.lookahead, "margin_sec": d.margin_sec,
                                                  "max_attempts": d.max_attempts, "filler": d.filler,
                                                  "recipes": [s.source for s in d.slots]},
            "on_air": on_air, "next": upcoming, "recent": [_slot_json(r, None) for r in decided[-RECENT:]],
            "counts": {
                "slots": len(decided),
                "aired": len(aired),
                "fillers": {k: sum(r.decision == f"filler:{k}" for r in decided) for k in ("last_good", "standby")},
                "retries": sum(r.retries for r in decided),
                "skipped": sum(r.skipped for r in decided),
                "stalls": sum(r.late for r in decided),
            },
            "lead_time_sec": {"last": aired[-1] if aired else None, "min": leads[0] if leads else None,
                              "p50": leads[len(leads) // 2] if leads else None},
            "ended": bool(state and state.ended),
        }


def _slot_json(r: SlotRecord, state: Optional[str]) -> dict[str, Any]:
    return {"index": r.index, "recipe": r.recipe, "duration_sec": r.duration_sec, "air_time": r.air_time,
            "deadline": r.deadline, "state": state or r.decision, "decision": r.decision,
            "filler_of": r.filler_of, "lead_time_sec": r.lead_time_sec,
            "attempts": [{"seed": str(a.seed), "outcome": a.outcome, "error_kind": a.error_kind,
                          "error": a.error, "seconds": a.seconds, "replica": a.replica} for a in r.attempts]}


def _write_json(path: Path, value: Any) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        temp.write_text(json.dumps(value, indent=1), encoding="utf-8")
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
