"""A channel definition (YAML or JSON): its slots in airing order and how the schedule runs them.

```yaml
name: channel-7
loop: true            # replay the list when it ends
lookahead: 2          # slots made ahead of the one on air (>= 1)
slots_in_flight: 2    # slots the engine makes at once (1-8): the next one's voice beside this one's render
start: now            # or an ISO 8601 time with its zone: 2026-12-01T21:00:00+00:00
margin_sec: 5         # a slot's generation deadline is its air time minus this
max_attempts: 3       # per slot; each retry uses seed = previous + 1
filler: {policy: last_good}   # or standby
live_delay_sec: 2.0   # a live insert airs this long after it is asked for (its first chunk checked)
slots:
  - recipe: channel/weather.json   # relative to this file
  - recipe: {slot_params: {...}, audio_track: {...}, visual_track: {...}}   # inline
  - break: 30                      # an ad break: a slate for 30 s, marked with SCTE-35 (breaks.py)
slate: slate.png      # the breaks' slate (default: the stand-by card); a break may name its own
```

Read through `vortex.inputs` (the same gate as recipes and configs); each problem is a
`ChannelError` naming the file and the field (``slots[1].recipe.audio_track.voice_id``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Optional

from .. import inputs
from ..errors import RecipeError, VortexError
from ..program.graphics import check_lower_third, check_program, slot_lower_third
from ..program.spec import ProgramError, ProgramSpec, parse_program
from ..recipe import Recipe
from .breaks import BREAK_KEYS, break_frames, break_seconds, slate_path

FillerPolicy = Literal["last_good", "standby"]
FILLER_POLICIES = ("last_good", "standby")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")  # it names a folder and a URL path part
_KEYS = ("name", "loop", "lookahead", "slots_in_flight", "slots", "start", "margin_sec", "max_attempts", "filler",
         "live_delay_sec", "program", "slate")
# Two slots at once by default: with the voice taking two calls at once (pipeline.voice_calls, the CPU
# profiles) a 2-core CPU channel makes 0.56-0.60 s a content second against 0.85-0.96 s one at a time
# (docs/performance.md §12.3); on a GPU node the GPU renders one while the host checks the other.
SLOTS_IN_FLIGHT = 2
LIVE_DELAY_SEC = 2.0  # the default delay line (ChannelDefinition.live_delay_sec says why)
MAX_SLOTS = 1000  # a day of 90 s slots; a list longer than this is a mistake, not a schedule


class ChannelError(VortexError):
    """A channel definition field is missing, of the wrong type or out of range."""

    def __init__(self, source: Optional[str], field: str, problem: str):
        self.source, self.field, self.problem = source, field, problem
        where = f"channel file '{source}'" if source else "channel definition"
        super().__init__(f"{where}: field '{field}': {problem}")


@dataclass(frozen=True)
class ChannelSlot:
    """One entry of the slot list."""

    position: int  # index in the list
    source: str  # the recipe's path as written, "inline", or "break"
    recipe: Optional[Recipe]  # None: a break (breaks.py)
    break_frames: int = 0  # a break's length in frames at the channel's fps
    break_sec: float = 0.0  # exactly break_frames / fps
    slate: Optional[Path] = None  # a break's slate image; None: the stand-by card

    @property
    def is_break(self) -> bool:
        return self.recipe is None

    @property
    def duration_sec(self) -> float:
        return self.break_sec if self.recipe is None else self.recipe.slot_params.duration_sec

    @property
    def n_frames(self) -> int:
        return self.break_frames if self.recipe is None else self.recipe.slot_params.n_frames


@dataclass(frozen=True)
class ChannelDefinition:
    name: str
    slots: tuple[ChannelSlot, ...]
    loop: bool = False
    lookahead: int = 1
    slots_in_flight: int = SLOTS_IN_FLIGHT  # slots being made at once (generator.py)
    start: Optional[datetime] = None  # None: "now" (see scheduler: when the first slot is ready)
    margin_sec: float = 5.0
    max_attempts: int = 2
    filler: FillerPolicy = "last_good"
    source: Optional[str] = None
    # A live insert airs this long after it is asked for: its first chunk must be made and checked
    # (the speech heard, a frame's identity) within it (live.py; measured in docs/performance.md §10).
    # 2.0: its first part is listed 0.1-0.2 s after its air time (benchmarks/bench_live.py), so a
    # 2.5 s line could never publish within 2.5 s; one not ready in time cuts in once it is.
    live_delay_sec: float = LIVE_DELAY_SEC
    # What airs around the engine's picture and sound (vortex.program.spec); None: the engine's
    # square as it is (no block in the file).
    program: Optional[ProgramSpec] = None

    @property
    def fps(self) -> int:
        return next(s for s in self.slots if s.recipe is not None).recipe.slot_params.fps

    def slot_at(self, index: int) -> Optional[ChannelSlot]:
        """The list entry that airs as channel slot ``index`` (the list replays when ``loop``)."""
        if index < len(self.slots):
            return self.slots[index]
        return self.slots[index % len(self.slots)] if self.loop else None

    def check(self, cfg) -> None:
        """Each recipe against the profile (durations, voices, sizes, presets), before any model loads."""
        from ..engine.admission import admit

        for slot in self.slots:
            if slot.recipe is None:
                continue  # a break: the slate needs no engine
            try:
                admit(cfg, slot.recipe)
            except RecipeError as exc:
                raise ChannelError(self.source, f"slots[{slot.position}].recipe.{exc.field}", exc.problem) from None

    @classmethod
    def from_file(cls, path: str | Path) -> ChannelDefinition:
        path = Path(path)
        return cls.from_dict(inputs.load_file(path, "config"), base_dir=path.parent, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, base_dir: Optional[Path] = None, source: Optional[str] = None) -> ChannelDefinition:
        def fail(field: str, problem: str):
            raise ChannelError(source, field, problem)

        if not isinstance(data, dict):
            fail("(top level)", f"must be a mapping with {', '.join(_KEYS)}; got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            fail(unknown[0] or "(top level)", f"key {unknown[0]!r} is not a channel field; allowed: {', '.join(_KEYS)}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            fail("name", f"must be 1-64 letters, digits, '.', '_' or '-' (it names a folder and a URL), got {name!r}")
        loop = data.get("loop", False)
        if not isinstance(loop, bool):
            fail("loop", f"must be true or false, got {loop!r}")
        lookahead = _int(data.get("lookahead", 1), "lookahead", 1, 16, fail)
        in_flight = _int(data.get("slots_in_flight", SLOTS_IN_FLIGHT), "slots_in_flight", 1, 8, fail)
        max_attempts = _int(data.get("max_attempts", 2), "max_attempts", 1, 10, fail)
        margin = data.get("margin_sec", 5.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 3600:
            fail("margin_sec", f"must be a number of seconds from 0 to 3600, got {margin!r}")
        delay = data.get("live_delay_sec", LIVE_DELAY_SEC)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0.5 <= delay <= 60:
            fail("live_delay_sec", f"must be a number of seconds from 0.5 to 60, got {delay!r}")
        start = _start(data.get("start", "now"), fail)
        filler = data.get("filler", {"policy": "last_good"})
        if not isinstance(filler, dict) or set(filler) - {"policy"}:
            fail("filler", f"must be a mapping {{policy: {' | '.join(FILLER_POLICIES)}}}, got {filler!r}")
        policy = filler.get("policy", "last_good")
        if policy not in FILLER_POLICIES:
            fail("filler.policy", f"must be one of {', '.join(FILLER_POLICIES)}, got {policy!r}")
        program = None
        if "program" in data:
            try:
                program = parse_program(data["program"], base_dir)
                check_program(program)  # the files decode, the font exists, the text fits: refused up front
            except ProgramError as exc:
                fail(f"program.{exc.field}" if exc.field != "(block)" else "program", exc.problem)
        slate = slate_path(data.get("slate"), base_dir or Path("."), "slate", fail)
        slots = _slots(data.get("slots"), base_dir or Path("."), source, fail, slate)
        if program is not None:
            for slot in slots:  # a recipe's lower third replaces the program's: it must fit as well
                where = f"slots[{slot.position}].recipe.visual_track.lower_third"
                try:
                    check_lower_third(program, slot_lower_third(slot.recipe), where)
                except ProgramError as exc:
                    fail(exc.field, exc.problem)
        return cls(name=name, slots=slots, loop=loop, lookahead=lookahead, slots_in_flight=in_flight, start=start,
                   margin_sec=float(margin), max_attempts=max_attempts, filler=policy, source=source,
                   live_delay_sec=float(delay), program=program)


def _int(value: Any, field: str, low: int, high: int, fail) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        fail(field, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _start(value: Any, fail) -> Optional[datetime]:
    if value == "now":
        return None
    if isinstance(value, datetime):  # YAML parses an unquoted timestamp itself
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            fail("start", f"must be 'now' or an ISO 8601 time with its zone (2026-12-01T21:00:00+00:00), got {value!r}")
    else:
        fail("start", f"must be 'now' or an ISO 8601 time with its zone, got {value!r}")
    if when.tzinfo is None:
        fail("start", f"{value!s} has no time zone: add one (e.g. +00:00 or Z)")
    return when


def _slots(value: Any, base_dir: Path, source: Optional[str], fail, slate: Optional[Path] = None
           ) -> tuple[ChannelSlot, ...]:
    if not isinstance(value, list) or not value:
        fail("slots", "must be a non-empty list of {recipe: <path relative to the channel file> | <inline recipe>}")
    if len(value) > MAX_SLOTS:
        fail("slots", f"holds {len(value)} entries; at most {MAX_SLOTS}")
    out: list[ChannelSlot] = []
    breaks: list[tuple[int, float, Optional[Path]]] = []  # made once the channel's fps is known
    for i, entry in enumerate(value):
        field = f"slots[{i}]"
        if isinstance(entry, dict) and "break" in entry:
            if set(entry) - set(BREAK_KEYS):
                fail(field, f"a break takes the keys {', '.join(BREAK_KEYS)}, got {entry!r}"[:300])
            seconds = break_seconds(entry["break"], f"{field}.break", fail)
            own = slate_path(entry.get("slate"), base_dir, f"{field}.slate", fail)
            breaks.append((i, seconds, own or slate))
            continue
        if not isinstance(entry, dict) or set(entry) != {"recipe"}:
            fail(field, f"must be a mapping with exactly one key, recipe (or break: SECONDS), got {entry!r}"[:300])
        ref = entry["recipe"]
        try:
            if isinstance(ref, str):
                path = Path(ref) if Path(ref).is_absolute() else base_dir / ref
                recipe, label = Recipe.from_file(path), ref
            elif isinstance(ref, dict):
                ref = dict(ref)
                params = ref.get("slot_params")
                if isinstance(params, dict) and "slot_id" not in params and "recipe" not in ref:
                    ref["slot_params"] = {**params, "slot_id": i + 1}  # the scheduler sets the real one
                recipe, label = Recipe.from_dict(ref, base_dir=base_dir, source=f"{source or 'channel'} {field}"), "inline"
            else:
                fail(f"{field}.recipe", f"must be a path (string) or an inline recipe (mapping), got {type(ref).__name__}")
        except RecipeError as exc:
            inner = getattr(exc, "field", "recipe")
            sub = "" if inner == "recipe" else f".{inner}"
            where = f" (in recipe file '{ref}')" if isinstance(ref, str) and sub else ""
            fail(f"{field}.recipe{sub}", (getattr(exc, "problem", str(exc)) + where) if sub else str(exc))
        out.append(ChannelSlot(i, label, recipe))
    if not out:
        fail("slots", "holds only breaks: at least one entry must be a recipe (it sets the stream's frame rate)")
    fps = out[0].recipe.slot_params.fps
    for slot in out[1:]:
        if slot.recipe.slot_params.fps != fps:
            fail(f"slots[{slot.position}].recipe.slot_params.fps",
                 f"is {slot.recipe.slot_params.fps} but slots[{out[0].position}] has {fps}: one stream has one frame rate")
    for i, seconds, image in breaks:
        n = break_frames(seconds, fps)
        out.append(ChannelSlot(i, "break", None, n, n / fps, image))
    return tuple(sorted(out, key=lambda s: s.position))
