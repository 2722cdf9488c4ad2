"""What the other core does while the channel's voice runs: `vortex channel run` in this process, its
threads sampled every 0.1 s (their Python stacks, and their CPU from /proc/self/task/TID/stat).

    python benchmarks/bench_channel_overlap.py examples/channel.yaml --max-slots 4

Prints, over the run's slot-making phase (from the first channel slot's request on; the model load
left out): its wall and CPU per content second, the seconds
during which the voice (Kokoro's `infer`) ran, the cores its thread used then, the cores all other
threads used then (the next slot's render and checks, with several slots in flight), and the
process's cores over the whole phase. Linux only (/proc); CPU ticks are 10 ms, so each figure is an
average over many samples. `--pace asap` always.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
SLOT_THREAD = "channel-slot"


def thread_cpu(tid: int) -> float:
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def process_cpu() -> float:
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def in_voice(frame) -> bool:
    while frame is not None:
        code = frame.f_code
        if code.co_name == "infer" and "kokoro" in code.co_filename:
            return True
        frame = frame.f_back
    return False


class Sampler(threading.Thread):
    def __init__(self, period: float = 0.1):
        super().__init__(name="overlap-sampler", daemon=True)
        self.period, self.done = period, threading.Event()
        self.voice_s = self.voice_cpu = self.other_cpu = 0.0
        self.phase_s = self.phase_cpu = 0.0

    def run(self) -> None:
        me = threading.get_native_id()
        last: dict[int, float] = {}
        last_t, last_p = time.monotonic(), process_cpu()
        while not self.done.wait(self.period):
            frames = sys._current_frames()
            threads = [t for t in threading.enumerate() if t.native_id not in (None, me)]
            making = any(t.name.startswith(SLOT_THREAD) for t in threads)
            now, proc = time.monotonic(), process_cpu()
            dt = now - last_t
            cpu = {t.native_id: thread_cpu(t.native_id) for t in threads}
            delta = {tid: c - last.get(tid, c) for tid, c in cpu.items()}
            voice = {t.native_id for t in threads if t.ident in frames and in_voice(frames[t.ident])}
            if making:
                self.phase_s += dt
                self.phase_cpu += proc - last_p
                if voice:
                    self.voice_s += dt
                    self.voice_cpu += sum(delta[tid] for tid in voice)
                    # everything else the process spent meanwhile (native pools, x264 and the appender included)
                    self.other_cpu += (proc - last_p) - sum(delta[tid] for tid in voice)
            last, last_t, last_p = cpu, now, proc


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("channel", type=Path)
    p.add_argument("--max-slots", type=int, default=4)
    args, rest = p.parse_known_args()
    from vortex.channel.cli import main as channel
    from vortex.channel.definition import ChannelDefinition

    d = ChannelDefinition.from_file(args.channel)
    content = sum(d.slot_at(i).duration_sec for i in range(args.max_slots) if d.slot_at(i) is not None)

    sampler = Sampler()
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        code = channel(["run", str(args.channel), "--out", out, "--pace", "asap", "--max-slots", str(args.max_slots),
                        *rest])
    sampler.done.set()
    sampler.join()
    s = sampler
    print(f"slots_in_flight {d.slots_in_flight}, {content:g} s of content: the slot-making phase {s.phase_s:.1f} s "
          f"({s.phase_s / content:.2f} s and {s.phase_cpu / content:.2f} core-s per content second), "
          f"the process {s.phase_cpu / max(s.phase_s, 1e-9):.2f} cores; "
          f"the voice ran {s.voice_s:.1f} s: its thread {s.voice_cpu / max(s.voice_s, 1e-9):.2f} cores, "
          f"the other threads {s.other_cpu / max(s.voice_s, 1e-9):.2f} cores meanwhile")
    return code


if __name__ == "__main__":
    sys.exit(main())
