"""CPU seconds per stage: what each stage of a slot cost, counted on the threads that did the work.

A slot's stages run on several threads at once (the slot's own thread, the voice, the render
queue, the face checks, the speech check's windows), so the process's CPU cannot be split by wall
clock. Each stage's work is wrapped in `ledger.stage(name)`, which adds `time.thread_time()` (the
calling thread's user + system CPU) over the block to that stage.

Libraries that compute on threads of their own are not seen by thread_time: CTranslate2's worker
and its intra-op threads (the speech check), onnxruntime's intra-op pool (the voice, where it has
more than one thread), x264's threads, OpenMP's. `LibraryThreads` notes which native threads each
component spawned while it loaded (a diff of /proc/self/task), and reads their CPU from
/proc/self/task/<tid>/stat (clock ticks, 10 ms), so the bench can add it to the component's stage.
What neither sees (threads spawned later and gone, the interpreter's own) is the process total
minus the stages: the bench prints it as the unattributed remainder.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import Callable, Iterator

# The stages, in the order the bench prints them; a stage name outside this list is printed after.
STAGES = ("plan", "voice", "speech check", "actor", "motion", "render", "paste-back", "encode", "proof",
          "checks", "verify", "sinks")
# Which stage a loaded component's own threads work for.
COMPONENT_STAGE = {"kokoro": "voice", "whisper": "speech check", "faces": "checks", "clip": "verify",
                   "flux": "actor", "preview": "render", "liveportrait": "render"}
OTHER_THREADS = "other native threads"  # a library's threads that no component's load spawned
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class CpuLedger:
    """CPU seconds per stage of one slot (thread-safe: every thread of the slot adds to it)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.thread_time()
        try:
            yield
        finally:
            self.add(name, time.thread_time() - start)

    def total(self) -> float:
        with self._lock:
            return sum(self.seconds.values())


def native_threads() -> set[int]:
    """The ids of this process's threads (empty where /proc is not mounted)."""
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def thread_cpu_s(tids: set[int]) -> float:
    """CPU seconds (user + system) the threads `tids` have used so far; a thread gone counts 0."""
    total = 0
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


class LibraryThreads:
    """The native threads each component spawned while it loaded, and their CPU since."""

    def __init__(self) -> None:
        self.by_component: dict[str, set[int]] = {}

    def wrap(self, name: str, loader: Callable) -> Callable:
        """`loader`, noting the threads that appear while it runs (loaders run one at a time)."""

        def load(loaded):
            before = native_threads()
            try:
                return loader(loaded)
            finally:
                new = native_threads() - before
                if new:
                    self.by_component[name] = new

        return load

    def cpu_by_stage(self) -> dict[str, float]:
        """CPU seconds so far of each stage's library threads, and under OTHER_THREADS of the native
        threads that are neither Python's nor a component's (spawned later: OpenMP's, CTranslate2's
        intra-op pool, which start on first use)."""
        out: dict[str, float] = {}
        mapped: set[int] = set()
        for name, tids in self.by_component.items():
            stage = COMPONENT_STAGE.get(name, name)
            out[stage] = out.get(stage, 0.0) + thread_cpu_s(tids)
            mapped |= tids
        python = {t.native_id for t in threading.enumerate() if t.native_id is not None}
        for tid in native_threads() - mapped - python:
            out[f"{OTHER_THREADS}:{tid}"] = thread_cpu_s({tid})
        return out

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        """Per stage, the CPU between two `cpu_by_stage` readings; a thread gone between them is
        left out (what it spent is the process total's, hence unattributed)."""
        out: dict[str, float] = {}
        for key, value in after.items():
            stage = OTHER_THREADS if key.startswith(OTHER_THREADS) else key
            out[stage] = out.get(stage, 0.0) + max(0.0, value - before.get(key, 0.0))
        return out


def ordered(seconds: dict[str, float]) -> list[tuple[str, float]]:
    """`seconds` in the order of STAGES, the unknown names after."""
    known = [(s, seconds[s]) for s in STAGES if s in seconds]
    return known + sorted((k, v) for k, v in seconds.items() if k not in STAGES)
