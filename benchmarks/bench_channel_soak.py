"""Soak: a live channel (`vortex channel run --pace realtime`) for M minutes on the default profile.

    python benchmarks/bench_channel_soak.py [--minutes 20] [--channel examples/channel.yaml] [--out DIR]
                                            [--pace realtime|asap] [--max-slots N]

Runs the command as a child process, watches its playlist every 0.5 s, stops it with SIGTERM at
the end, and prints from DIR/channel.json and the watch:
- lead time (air time − ready time) of the aired slots: min and P50 (negative: made late, filled);
- retries (attempts beyond the first), attempts skipped as too slow for the time left, fillers;
- late appends: slots appended after their air time;
- stalls: times the published edge (the end of the last listed part or segment) fell behind the
  wall clock minus PART-HOLD-BACK (PART_HOLD_BACK_PARTS part targets; 3 target durations without parts), where hls.js
  plays a live stream: a player would wait there;
- the child's RSS (VmRSS) once the first slot is decided, and at the end: flat means no leak;
- the child's CPU seconds (user + sys, /proc) per content second, from the first decided slot on (the
  model load left out) over the content decided since: in all, and split by thread name into the
  appender's (the stream's encode and publish: appender.APPENDER_THREAD, x264's threads inherit it)
  and the rest (the engine, its sinks and the spool's colour conversion). With ``--pace asap`` this is
  the channel's cost of making content, the figure the issue's target is for. Per engine stage: a
  result's ``cpu_s`` (stage -> CPU seconds), where the engine gives one, is recorded in each attempt
  (records.Attempt.cpu_s) and summed here.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from vortex.channel.hls.playlist import PART_HOLD_BACK_PARTS, read_playlist
from vortex.channel.appender import APPENDER_THREAD
from vortex.channel.records import ChannelState, parse_iso

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_of(pid: int) -> tuple[float, dict[str, float]] | None:
    """(the process's CPU seconds, {tid: CPU seconds} of its live threads named APPENDER_THREAD), or
    None once it is gone. A thread's CPU leaves /proc with it: the caller keeps the last reading per tid."""
    tick = os.sysconf("SC_CLK_TCK")

    def seconds(stat: str) -> tuple[str, float]:
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        return comm, (int(rest[11]) + int(rest[12])) / tick  # utime, stime: fields 14 and 15

    try:
        total = seconds(Path(f"/proc/{pid}/stat").read_text())[1]
        appender = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                comm, cpu = seconds((task / "stat").read_text())
            except OSError:
                continue  # the thread just ended
            if comm == APPENDER_THREAD:
                appender[task.name] = cpu
        return total, appender
    except OSError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--channel", type=Path, default=ROOT / "examples" / "channel.yaml")
    ap.add_argument("--out", type=Path, help="the stream folder (default: a new temporary one)")
    ap.add_argument("--profile", help="default: the default profile")
    ap.add_argument("--pace", choices=("realtime", "asap"), default="realtime",
                    help="asap: as fast as slots are made (the CPU per content second of making it)")
    ap.add_argument("--max-slots", type=int, help="end the run after this many slots (asap: the usual way to end it)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vortex-soak-")) / "channel"
    cmd = [sys.executable, "-m", "vortex.channel.cli", "run", str(args.channel), "--out", str(out), "--pace", args.pace]
    if args.profile:
        cmd += ["--profile", args.profile]
    if args.max_slots:
        cmd += ["--max-slots", str(args.max_slots)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"soak: {' '.join(cmd[2:])} for {args.minutes:g} min", flush=True)
    child = subprocess.Popen(cmd, env=env)
    began = time.monotonic()
    rss_start = rss_end = None
    stalls, behind, worst_behind = 0, False, 0.0
    rss_samples: list = []
    last_sample = began
    cpu_mark = cpu_last = None  # the process's CPU seconds at the first decided slot, and lately
    appender_mark: dict[str, float] = {}
    appender_seen: dict[str, float] = {}  # the last reading of each appender thread (ended ones included)
    mark_at = None
    try:
        while time.monotonic() - began < args.minutes * 60 and child.poll() is None:
            time.sleep(0.5)
            if rss_start is None and (out / "channel.json").is_file():
                if any(s.get("decision") for s in json.loads((out / "channel.json").read_text())["slots"]):
                    rss_start = rss_mb(child.pid)
                    reading = cpu_of(child.pid)
                    if reading is not None:
                        cpu_mark, appender_mark, mark_at = reading[0], dict(reading[1]), datetime.now(timezone.utc)
            reading = cpu_of(child.pid)  # the last reading before an asap run exits counts
            if reading is not None and cpu_mark is not None:
                cpu_last = reading[0]
                appender_seen.update(reading[1])
            if rss_start is not None and time.monotonic() - last_sample >= 30:
                rss_samples.append(rss_mb(child.pid))
                last_sample = time.monotonic()
            if not (out / "index.m3u8").is_file():
                continue
            playlist = read_playlist(out)
            last = playlist.open or (playlist.segments[-1] if playlist.segments else None)
            if last is None:
                continue
            edge = last.program_date_time + timedelta(seconds=last.duration_sec)
            hold = PART_HOLD_BACK_PARTS * playlist.part_target if playlist.part_target else 3 * playlist.target_duration
            lag = (datetime.now(timezone.utc) - timedelta(seconds=hold) - edge).total_seconds()
            worst_behind = max(worst_behind, lag)
            if lag > 0 and not behind:
                stalls += 1
            behind = lag > 0
        rss_end = rss_mb(child.pid)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        code = child.wait(timeout=120)
    state = ChannelState.load(out)
    slots = [s for s in state.slots if s.decision]
    aired = [s for s in slots if s.decision == "aired"]
    leads = np.array([s.lead_time_sec for s in aired], float)
    retries, skipped, late = (sum(s.retries for s in slots), sum(s.skipped for s in slots),
                              sum(s.late for s in slots))
    fillers = {k: sum(1 for s in slots if s.decision == k) for k in ("filler:last_good", "filler:standby")}
    gen = np.array([a.seconds for s in slots for a in s.attempts if a.outcome != "skipped"], float)
    since = [s for s in slots if mark_at is not None and s.ready_at and parse_iso(s.ready_at) > mark_at]
    content = sum(s.duration_sec for s in since)
    print(f"\nchannel {state.channel} · {time.monotonic() - began:.0f} s · exit {code} · {out}")
    print(f"  slots decided {len(slots)}: aired {len(aired)}, fillers {fillers}, retries {retries}, "
          f"attempts skipped (would miss the deadline) {skipped}")
    if leads.size:
        print(f"  lead time of aired slots: min {leads.min():+.2f} s, P50 {np.median(leads):+.2f} s")
    if gen.size:
        print(f"  attempt time: P50 {np.median(gen):.2f} s, max {gen.max():.2f} s "
              f"(slot durations {sorted({s.duration_sec for s in slots})} s)")
    print(f"  late appends {late}; stalls {stalls} (published edge behind the live play point; worst "
          f"{max(0.0, worst_behind):.2f} s)")
    if cpu_mark is not None and cpu_last is not None and content > 0:
        total = cpu_last - cpu_mark
        appender = sum(appender_seen.values()) - sum(appender_mark.values())
        print(f"  CPU per content second (after the first slot, {content:g} s of content): {total / content:.3f} "
              f"core-s in all; appender (stream encode + publish) {appender / content:.3f}, the rest (engine, "
              f"sinks, spool) {(total - appender) / content:.3f}")
        stages: dict[str, float] = {}
        for s in since:
            for a in s.attempts:
                for stage, cpu in (a.cpu_s or {}).items():
                    stages[stage] = stages.get(stage, 0.0) + cpu
        if stages:
            print("  engine CPU per content second by stage: " + ", ".join(
                f"{k} {v / content:.3f}" for k, v in sorted(stages.items(), key=lambda kv: -kv[1])))
    fmt = lambda v: "n/a" if v is None else f"{v:.0f} MB"  # noqa: E731
    print(f"  RSS start {fmt(rss_start)}, end {fmt(rss_end)}; every 30 s: {', '.join(fmt(v) for v in rss_samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
