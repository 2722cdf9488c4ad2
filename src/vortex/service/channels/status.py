"""What GET /v1/channels/{name} shows, on any node: the store's row (what the channel should do, who
holds it, every takeover), the channel's records (the owner's live copy, else `channel.json` in
the shared folder) and its schedule.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from ...channel.definition import ChannelDefinition
from ...channel.records import ChannelState, SlotRecord, parse_iso
from ..store.channels import ChannelRow, Term

if TYPE_CHECKING:
    from .hosted import HostedChannel

RECENT = 12  # decided slots a status shows
INSERTS = 20  # the live inserts a status lists, the latest last (all are counted)
TAKEOVERS = 50  # the takeovers listed, of the last terms read (all are counted)


def _iso(ts: Optional[float]) -> Optional[str]:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def status_of(row: ChannelRow, local: Optional[HostedChannel]) -> str:
    """starting | on_air | stopped | ended | failed; "starting" too while no node holds a channel that
    should be on air (its node died: the next node to find it takes it over)."""
    if local is not None:
        return local.status
    if row.state == "on":
        return "on_air" if row.leased else "starting"
    return row.state


def owner_json(row: ChannelRow, this_node: str) -> Optional[dict[str, Any]]:
    if row.owner is None:
        return None
    return {"node": row.owner, "url": row.owner_url, "this_node": row.owner == this_node, "term": row.term,
            "acquired": _iso(row.acquired), "lease_sec": row.lease_s, "lease_expires": _iso(row.lease_expires),
            "lease_left_sec": None if row.lease_expires is None else round(row.lease_expires - row.now, 2),
            "held": row.leased}


def takeover_json(t: Term) -> dict[str, Any]:
    return {"at": _iso(t.acquired), "term": t.term, "from": t.previous_owner, "to": t.owner, "to_url": t.owner_url,
            "lease_ran_out": _iso(t.previous_expired),
            "after_sec": None if t.previous_expired is None else round(t.acquired - t.previous_expired, 2)}


def describe(row: ChannelRow, folder: Path, d: Optional[ChannelDefinition], state: Optional[ChannelState],
             local: Optional[HostedChannel], terms: list[Term], takeover_count: int, this_node: str) -> dict[str, Any]:
    if state is None and (folder / "channel.json").is_file():
        try:
            state = ChannelState.load(folder)
        except (OSError, ValueError):  # replaced under us by the owner: shown at the next poll
            state = None
    status = status_of(row, local)
    slots = state.slots if state is not None else []
    now = datetime.now(timezone.utc)
    on_air, upcoming, decided = None, [], []
    live = status in ("starting", "on_air")  # an ended channel has no next slot, though an asap run's
    for r in slots:                          # last air times may still lie ahead of the wall clock
        air = parse_iso(r.air_time)
        if live and (r.decision is None or air is None or air > now):
            upcoming.append(_slot_json(r, "making" if r.decision is None else "ready"))
        elif live and now < air + timedelta(seconds=r.duration_sec):
            on_air = _slot_json(r, "on_air")
        if r.decision is not None:
            decided.append(r)
    if d is not None and live:
        for index in range(len(slots), len(slots) + max(0, d.lookahead + 1 - len(upcoming))):
            slot = d.slot_at(index)
            if slot is None or (row.max_slots is not None and index >= row.max_slots):
                break
            upcoming.append({"index": index, "recipe": slot.source, "duration_sec": slot.duration_sec,
                             "state": "scheduled"})
    aired = [r.lead_time_sec for r in decided if r.decision == "aired" and r.lead_time_sec is not None]
    leads = sorted(aired)
    takeovers = [t for t in terms if t.how == "takeover"]
    inserts = list(state.inserts) if state is not None else []
    base = f"/v1/channels/{row.name}"
    error = local.error if local is not None and local.error else row.error
    return {
        "name": row.name, "status": status, "error": error, "pace": row.pace, "max_slots": row.max_slots,
        "playlist": f"{base}/index.m3u8", "master": f"{base}/master.m3u8", "page": f"/channels/{row.name}",
        "owner": owner_json(row, this_node),
        "takeovers": [takeover_json(t) for t in takeovers[-TAKEOVERS:]],
        "definition": None if d is None else {"loop": d.loop, "lookahead": d.lookahead, "margin_sec": d.margin_sec,
                                              "slots_in_flight": d.slots_in_flight,
                                              "max_attempts": d.max_attempts, "filler": d.filler,
                                              "recipes": [s.source for s in d.slots],
                                              "live_delay_sec": d.live_delay_sec, "fps": d.fps},
        "inserts": inserts[-INSERTS:],
        "program": state.program if state is not None else None,  # a PATCH in force (channel/program_text.py)
        "on_air": on_air, "next": upcoming, "recent": [_slot_json(r, None) for r in decided[-RECENT:]],
        "counts": {
            "slots": len(decided),
            "aired": len(aired),
            "fillers": {k: sum(r.decision == f"filler:{k}" for r in decided) for k in ("last_good", "standby")},
            "retries": sum(r.retries for r in decided),
            "skipped": sum(r.skipped for r in decided),
            "stalls": sum(r.late for r in decided),
            "takeovers": takeover_count,
            "epochs": len(state.epochs) if state is not None else 0,
            "inserts": {k: sum(i.get("state") == k for i in inserts) for k in ("making", "on_air", "aired", "failed")},
        },
        "lead_time_sec": {"last": aired[-1] if aired else None, "min": leads[0] if leads else None,
                          "p50": leads[len(leads) // 2] if leads else None},
        "ended": bool(state and state.ended),
    }


def _slot_json(r: SlotRecord, state: Optional[str]) -> dict[str, Any]:
    return {"index": r.index, "recipe": r.recipe, "duration_sec": r.duration_sec, "air_time": r.air_time,
            "deadline": r.deadline, "state": state or r.decision, "decision": r.decision,
            "filler_of": r.filler_of, "lead_time_sec": r.lead_time_sec,
            "appended_at": r.appended_at,
            "attempts": [{"seed": str(a.seed), "outcome": a.outcome, "error_kind": a.error_kind,
                          "error": a.error, "seconds": a.seconds, "replica": a.replica} for a in r.attempts]}
