"""The provenance package's input error (kept apart so that verify and stream both raise it)."""

from __future__ import annotations

from ..errors import VortexError


class VerifyInputError(VortexError):
    """What was given to verify cannot be read as asked: names the argument and what is allowed (exit 2)."""
