"""The channel's decisions, as pure functions: no threads, no I/O, no clock read inside (``now`` is
passed in). ``ChannelRunner`` (scheduler.py) owns the threads and the files and asks these.

- Air times: slot k airs at its epoch's start + the durations of the slots before it; its deadline
  is its air time − ``margin_sec`` (realtime only: ``asap`` runs ahead of any clock).
- Attempts: each gets the time left to the deadline; one that recent slots say cannot finish in
  that time is skipped, a failed one is retried with seed + 1 while time and ``max_attempts``
  allow (never after an ``input`` error or a cancel).
- Fillers: a slot that was not made airs the last good slot again, or the stand-by card.
- A "now" start and restarts: the preroll, the resume index, the new epoch's start.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable, Literal, Optional, Sequence

from .definition import ChannelError

Pace = Literal["realtime", "asap"]
Verdict = Literal["go", "too_late", "skip"]
MIN_ATTEMPT_SEC = 1.0  # an attempt with less time than this left cannot make even a 1 s CPU slot
NO_RETRY = ("input", "cancelled")  # the same recipe fails the same way; a cancel means stop
SEED_SPACE = 2**63  # the recipe's seed range
COST_HISTORY = 5  # successful attempts whose seconds-per-slot-second estimate the next one's cost


# -- air times and deadlines ----------------------------------------------------------------------

def to_ms(when: datetime) -> datetime:
    """``when`` truncated to whole milliseconds: channel.json keeps milliseconds, so a time read
    back from it equals the one the runner computed with."""
    return when.replace(microsecond=when.microsecond // 1000 * 1000)


def deadline_for(air: Optional[datetime], margin_sec: float, pace: Pace) -> Optional[datetime]:
    """Realtime: air time − margin. None when the air time is not known yet (a "now" epoch's first
    slot) or with ``asap`` (no clock to be late for: each attempt gets the profile's timeout)."""
    if pace != "realtime" or air is None:
        return None
    return air - timedelta(seconds=margin_sec)


def seconds_left(deadline: Optional[datetime], now: datetime) -> Optional[float]:
    """Seconds from ``now`` to ``deadline`` (None: no deadline)."""
    return None if deadline is None else (deadline - now).total_seconds()


def air_after(air: datetime, duration_sec: float) -> datetime:
    """The next slot's air time: this one's + its duration (the schedule has no gap)."""
    return air + timedelta(seconds=duration_sec)


@dataclass(frozen=True)
class AirTimes:
    ready: datetime  # when the slot was decided, in milliseconds
    air: datetime  # its air time
    lead_sec: float  # air − ready: how far ahead of its air time it was ready
    next_air: datetime  # the next slot's air time
    epoch_started: bool  # a "now" epoch got its start from this slot


def air_times(now: datetime, scheduled: Optional[datetime], duration_sec: float, preroll_sec: float = 0.0) -> AirTimes:
    """A decided slot's air time, lead time and the next slot's air time, all in the milliseconds
    that channel.json keeps (the next air time follows the recorded one). ``scheduled`` None: a "now"
    epoch, which airs its first slot ``preroll_sec`` after it is ready (see ``preroll_seconds``)."""
    ready = to_ms(now)
    if scheduled is not None:
        air, started = to_ms(scheduled), False
    else:
        air, started = to_ms(ready + timedelta(seconds=preroll_sec)), True
    lead = round((air - ready).total_seconds(), 3) + 0.0  # + 0.0: never "-0.0" in channel.json
    return AirTimes(ready, air, lead, air_after(air, duration_sec), started)


def lookahead_wait(aired: Iterable[datetime], now: datetime, lookahead: int, making: int = 0) -> Optional[float]:
    """Realtime: at most ``lookahead`` slots are ahead of the air: the made ones waiting for their air
    time (``aired``: the air times of the slots decided "aired") and the ``making`` ones in flight.
    None: the next slot may start now; else the seconds until the earliest made one airs (inf: none
    waits, so until one in flight ends). A filler costs no engine time and is not counted."""
    ahead = sorted(t for t in aired if t > now)
    if len(ahead) + making < lookahead:
        return None
    return (ahead[0] - now).total_seconds() if ahead else math.inf


# -- attempts: seeds, cost, skip, retry -------------------------------------------------------------

def slot_seed(channel: str, index: int, recipe_seed: Optional[int]) -> int:
    """The recipe's seed, else a stable one per channel slot: a rerun makes the same slot."""
    if recipe_seed is not None:
        return recipe_seed
    digest = hashlib.sha256(f"{channel}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_SPACE


def retry_seed(seed: int) -> int:
    """A retry's seed: the failed attempt's + 1 (within the seed range)."""
    return (int(seed) + 1) % SEED_SPACE


def may_retry(error_kind: Optional[str]) -> bool:
    """A failed attempt is retried unless it failed on its input (the same recipe fails the same
    way) or was cancelled (a cancel means stop)."""
    return error_kind not in NO_RETRY


def remember_cost(costs: Sequence[float], seconds: float, duration_sec: float) -> list[float]:
    """The cost history after a successful attempt: seconds per slot second, the last ``COST_HISTORY``."""
    return (list(costs) + [seconds / duration_sec])[-COST_HISTORY:]


def expected_seconds(costs: Sequence[float], duration_sec: float) -> Optional[float]:
    """A new attempt's likely time: the median recent cost x the slot's duration (None: no history)."""
    if not costs:
        return None
    return sorted(costs)[len(costs) // 2] * duration_sec


def attempt_verdict(left: Optional[float], need: Optional[float]) -> Verdict:
    """Whether to start an attempt with ``left`` seconds to the deadline (None: no deadline) that
    recent slots say takes ``need`` seconds (None: no history).

    "too_late": under ``MIN_ATTEMPT_SEC`` left, nothing could finish. "skip": it would miss its
    deadline anyway, so the filler airs now and the engine's time goes to the next slot, whose
    deadline is a slot duration further away. "go": start it."""
    if left is None:
        return "go"
    if left < MIN_ATTEMPT_SEC:
        return "too_late"
    if need is not None and need > left:
        return "skip"
    return "go"


def skip_reason(need: float, left: float) -> str:
    """The skipped attempt's recorded error text."""
    return f"an attempt takes about {need:.1f} s (recent slots); {left:.1f} s were left"


# -- fillers ---------------------------------------------------------------------------------------

def decision_for(ok: bool, filler: str, last_good: Optional[int]) -> tuple[str, Optional[int]]:
    """(decision, filler_of). A made slot airs. Otherwise ``filler: last_good`` re-airs the last good
    slot while there is one; else (or ``filler: standby``) the stand-by card airs."""
    if ok:
        return "aired", None
    if filler == "last_good" and last_good is not None:
        return "filler:last_good", last_good
    return "filler:standby", None


def source_of(decision: str, index: int, filler_of: Optional[int]) -> tuple[str, Optional[int]]:
    """(kind, slot index whose media (spool or MP4) the appender reads): ("aired", itself),
    ("last_good", the re-aired one) or ("standby", None: the card needs no file)."""
    if decision == "aired":
        return "aired", index
    if decision == "filler:last_good":
        return "last_good", filler_of
    return "standby", None


# -- a "now" start ---------------------------------------------------------------------------------

def preroll_seconds(pace: Pace, costs: Sequence[float], following_sec: Iterable[float]) -> float:
    """Realtime, "now": how long the first slot waits for air, so that the next ``lookahead - 1``
    slots (``following_sec``: their durations) are made before it ends. Airing it at once leaves
    slot 2 its predecessor's duration minus the margin: measured on cpu-preview (2 cores), a 6 s
    slot then a 5 s one made in 5.7 s with 4.0 s left, so the second slot aired as a filler; the
    first slot's own cost (its warm-up included) estimates the rest."""
    if pace != "realtime" or not costs:
        return 0.0
    return costs[-1] * sum(following_sec)


# -- restarts --------------------------------------------------------------------------------------

def listed_frames(segment_durations: Iterable[float], fps: int) -> int:
    """The frames a playlist lists: each segment's duration in whole frames."""
    return sum(round(d * fps) for d in segment_durations)


def resume_index(first_frames: Iterable[Optional[int]], listed: int) -> int:
    """The slot a restart makes next: the first none of whose frames the playlist lists. A slot with
    any frame listed aired (part of it, at worst); the rest is made anew."""
    return sum(1 for f in first_frames if f is not None and f < listed)


def epoch_start(previous_end: Optional[datetime], start: Optional[datetime], margin_sec: float, pace: Pace,
                now: datetime, source: Optional[str] = None) -> Optional[datetime]:
    """A new epoch's first air time; None: "now" (the slot airs once it is ready, see ``air_times``).

    A restart (``previous_end``: the last kept slot's air time + duration) keeps the old timetable
    if that slot's successor can still meet its deadline, and always with ``asap``; otherwise the
    timetable is gone and it starts anew as "now". A fresh channel airs at ``start`` (None: "now");
    a realtime start whose deadline is already past is a ChannelError on ``start``."""
    if previous_end is not None:
        if pace == "asap" or previous_end - timedelta(seconds=margin_sec) > now:
            return previous_end
        return None
    if start is None:
        return None
    if pace == "realtime" and start - timedelta(seconds=margin_sec) <= now:
        raise ChannelError(source, "start", f"{start.isoformat()} minus margin_sec is already past: "
                           "use 'now' or a later time")
    return start


def kept_last_good(last_good: Optional[int], index: int, on_disk: bool) -> Optional[int]:
    """The last good slot a restart may re-air: not one at or after ``index`` (made but never
    appended: it is made again, into the same file name), nor one whose media (spool or MP4) are gone."""
    if last_good is None or last_good >= index or not on_disk:
        return None
    return last_good


def stale_slot_files(names: Iterable[str], last_good: Optional[int]) -> list[str]:
    """The slot files a restart deletes: every one but the last good slot's (spool, MP4, sidecar)."""
    keep = None if last_good is None else f"slot-{last_good:05d}."
    return [n for n in names if keep is None or not n.startswith(keep)]


def more_to_air(index: int, max_slots: Optional[int]) -> bool:
    """Whether slot ``index`` is within the channel's total (None: no end)."""
    return max_slots is None or index < max_slots
