"""A running channel's PATCHed program text (ticker, lower third), kept in ``channel.json`` so that a
restart, or another node taking the channel over, airs what the operator last set, not the
definition's text again.

The record (``ChannelState.program``) holds only the keys ever PATCHed, cumulatively, with the
frame they applied from and, per key, the definition's value they replaced (``over``):

    {"ticker": [...], "lower_third": {"name", "title"} | null, "from_frame": 1234,
     "at": "2026-12-07T01:40:00.000+00:00", "over": {"ticker": [...], "lower_third": ...}}

A restart applies each kept key from its first frame. A key whose definition value is no longer
the one it replaced (the channel was posted again with new text, or its file edited) is dropped:
an edited rundown wins over an override of the old one, as a playout system's would.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..program.spec import LowerThird, ProgramError, ProgramSpec

KEYS = ("ticker", "lower_third")


def _lower_third_json(lt: Optional[LowerThird]) -> Optional[dict[str, str]]:
    return None if lt is None else {"name": lt.name, "title": lt.title}


def text_of(spec: ProgramSpec, key: str) -> Any:
    """A program's ticker or lower third as PATCH and channel.json write it."""
    return list(spec.ticker) if key == "ticker" else _lower_third_json(spec.lower_third)


def patched(stored: Optional[dict], changes: dict, now: ProgramSpec, definition: ProgramSpec,
            from_frame: Optional[int], at: str) -> dict:
    """The record after a PATCH of ``changes`` (``now``: the program with them)."""
    keep = {k: v for k, v in (stored or {}).items() if k in KEYS}
    over = dict((stored or {}).get("over") or {})
    for key in KEYS:
        if key in changes:
            keep[key] = text_of(now, key)
            over.setdefault(key, text_of(definition, key))
    return {**keep, "from_frame": from_frame, "at": at, "over": over}


def restore(stored: Optional[dict], definition: ProgramSpec,
            update: Callable[..., ProgramSpec], say: Callable[[str], None]) -> Optional[dict]:
    """Apply a restarted channel's stored text through ``update`` (ProgramCompositor.update); returns
    the record still in force (None: the definition's text airs)."""
    if not stored:
        return None
    over = stored.get("over") or {}
    changes = {k: stored[k] for k in KEYS if k in stored and over.get(k, stored[k]) == text_of(definition, k)}
    dropped = [k for k in KEYS if k in stored and k not in changes]
    if dropped:
        say(f"program: the definition's {' and '.join(dropped)} changed since the PATCH of {stored.get('at')}: "
            "the definition's text airs")
    if not changes:
        return None
    try:
        update(**changes)
    except ProgramError as exc:  # e.g. a new size the old lower third no longer fits
        say(f"program: the PATCHed text of {stored.get('at')} no longer fits ({exc}): the definition's text airs")
        return None
    return {**{k: stored[k] for k in changes}, "from_frame": stored.get("from_frame"), "at": stored.get("at"),
            "over": {k: over[k] for k in changes if k in over}}
