"""One channel this node runs: its definition, its lease, its runner thread and what it is doing."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ...channel.definition import ChannelDefinition
from ...channel.scheduler import ChannelRunner
from ..store.lease import ChannelLease


@dataclass
class HostedChannel:
    """A channel this node runs (holds the lease of)."""

    name: str
    folder: Path
    definition: ChannelDefinition
    pace: str
    max_slots: Optional[int]
    lease: ChannelLease
    how: str = "start"  # how this node got it: start | resume | takeover
    stop_event: threading.Event = field(default_factory=threading.Event)
    stop_reason: Optional[str] = None  # client | shutdown | lost
    thread: Optional[threading.Thread] = None
    runner: Optional[ChannelRunner] = None
    status: str = "starting"  # starting | on_air | ended | stopped | failed | lost
    error: Optional[str] = None

    @property
    def running(self) -> bool:
        """Its runner may still write. A runner whose lease is lost writes nothing more, even while
        its thread lives on (parked mid-slot for good: channel/fencing.py)."""
        return self.thread is not None and self.thread.is_alive() and not self.lease.lost.is_set()
