"""Soak: a live channel (`vortex channel run --pace realtime`) for M minutes on the default profile.

    python benchmarks/bench_channel_soak.py [--minutes 20] [--channel examples/channel.yaml] [--out DIR]

Runs the command as a child process, watches its playlist every 0.5 s, stops it with SIGTERM at
the end, and prints from DIR/channel.json and the watch:
- lead time (air time − ready time) of the aired slots: min and P50 (negative: made late, filled);
- retries (attempts beyond the first), attempts skipped as too slow for the time left, fillers;
- late appends: slots appended after their air time;
- stalls: times the published edge (the end of the last listed part or segment) fell behind the
  wall clock minus PART-HOLD-BACK (PART_HOLD_BACK_PARTS part targets; 3 target durations without parts), where hls.js
  plays a live stream: a player would wait there;
- the child's RSS (VmRSS) once the first slot is decided, and at the end: flat means no leak.
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

from vortex.channel.playlist import PART_HOLD_BACK_PARTS, read_playlist
from vortex.channel.records import ChannelState

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--channel", type=Path, default=ROOT / "examples" / "channel.yaml")
    ap.add_argument("--out", type=Path, help="the stream folder (default: a new temporary one)")
    ap.add_argument("--profile", help="default: the default profile")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="vortex-soak-")) / "channel"
    cmd = [sys.executable, "-m", "vortex.channel.cli", "run", str(args.channel), "--out", str(out), "--pace", "realtime"]
    if args.profile:
        cmd += ["--profile", args.profile]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print(f"soak: {' '.join(cmd[2:])} for {args.minutes:g} min", flush=True)
    child = subprocess.Popen(cmd, env=env)
    began = time.monotonic()
    rss_start = rss_end = None
    stalls, behind, worst_behind = 0, False, 0.0
    rss_samples: list = []
    last_sample = began
    try:
        while time.monotonic() - began < args.minutes * 60 and child.poll() is None:
            time.sleep(0.5)
            if rss_start is None and (out / "channel.json").is_file():
                if any(s.get("decision") for s in json.loads((out / "channel.json").read_text())["slots"]):
                    rss_start = rss_mb(child.pid)
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
    fmt = lambda v: "n/a" if v is None else f"{v:.0f} MB"  # noqa: E731
    print(f"  RSS start {fmt(rss_start)}, end {fmt(rss_end)}; every 30 s: {', '.join(fmt(v) for v in rss_samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
