"""A channel runner's fence: when a service runs channels on several nodes, the runner asks it before
each write to the channel's folder, and once it refuses (the node lost the channel's lease:
service/store/lease.py, kept by service/channels/lease.py) the runner writes nothing more.

The runner asks before each append, before saving channel.json and before closing the playlist
(scheduler.py, appender.py). A realtime append lasts the slot's whole air time (the pacer hands
each frame over one part before it airs), so the appender's pacer also asks before each frame it
hands the writer. When the fence refuses there, the appender thread parks for good (`park`):
returning, even by raising, would let the writer fit the slot's audio to the frames it has and
publish its last part, after another node may have taken the channel over and written its own.
A parked thread holds its slot's frames and encoder until the process exits; it happens only to
a node that was frozen or cut off from the store for longer than its lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ..errors import VortexError

log = logging.getLogger("vortex.channel")


class ChannelFenced(VortexError):
    """The runner's fence refused (the service's channel lease is lost): it writes nothing more."""


def park(on_park: Callable[[], None]) -> None:
    """Stop the runner (`on_park`), then block this appender thread until the process exits."""
    log.warning("the channel's fence refused mid-slot: this append writes nothing more and its thread "
                "parks until the process exits", extra={"event": "channel_fenced_mid_slot"})
    on_park()
    threading.Event().wait()  # never set: see the module note
