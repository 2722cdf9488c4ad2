"""N live channels on R engine replicas: `vortex serve --engine ray --replicas R`, then N copies of
examples/channel.yaml POSTed with --pace realtime, watched for M minutes.

    python benchmarks/bench_ray_channels.py [--channels 2] [--replicas 2] [--minutes 5] [--profile P]

Prints per channel: slots decided, aired and filled, retries, stalls (slots appended after their
air time), lead time of the aired slots (min, P50) and which replicas made them; then the
service's RSS and every replica's. A channel keeps up when its slots' real-time factor on one
replica, times N / R, stays under 1 (minus the margin): the figures say how far off it is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests

from support.harness import Server, free_port, rss_bytes  # noqa: E402

REPLICA_TITLE = "ray::ServeReplica:vortex:VortexReplica"


def inline_channel(path: Path, name: str) -> dict:
    d = yaml.safe_load(path.read_text())
    d["name"] = name
    d["slots"] = [{"recipe": json.loads((path.parent / s["recipe"]).read_text())} for s in d["slots"]]
    return d


def replica_rss() -> list[float]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    pids = [int(line.split(None, 1)[0]) for line in out.splitlines() if REPLICA_TITLE in line]
    return [rss_bytes(p) / 2**20 for p in pids]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--channel", type=Path, default=ROOT / "examples" / "channel.yaml")
    ap.add_argument("--profile")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="vortex-ray-channels-")) / "data"
    data.mkdir()
    extra = ["--engine", "ray", "--replicas", str(args.replicas)] + (["--profile", args.profile] if args.profile else [])
    server = Server(data=data, port=free_port(), args=extra)
    t0 = time.monotonic()
    server.start()
    print(f"{args.replicas} replica(s) ready in {time.monotonic() - t0:.1f} s; {args.channels} channel(s) "
          f"of {args.channel} for {args.minutes:g} min", flush=True)
    names = [f"bench-{i}" for i in range(args.channels)]
    try:
        for name in names:
            r = httpx.post(server.url + "/v1/channels", json=inline_channel(args.channel, name), timeout=60)
            r.raise_for_status()
        time.sleep(args.minutes * 60)
        rss = (rss_bytes(server.proc.pid) / 2**20, replica_rss())
        rows = [httpx.get(f"{server.url}/v1/channels/{n}", timeout=30).json() for n in names]
        states = [json.loads((data / "channels" / n / "channel.json").read_text()) for n in names]
    finally:
        server.terminate(timeout=180)
    print(f"\n| channel | slots | aired | fillers | retries | stalls | lead min s | lead P50 s | replicas |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row, state in zip(rows, states):
        c, lead = row["counts"], row["lead_time_sec"]
        used = {a.get("replica") for s in state["slots"] for a in s["attempts"] if a.get("replica")}
        fmt = lambda v: "—" if v is None else f"{v:+.2f}"  # noqa: E731
        print(f"| {row['name']} | {c['slots']} | {c['aired']} | {c['fillers']['last_good'] + c['fillers']['standby']} | "
              f"{c['retries']} | {c['stalls']} | {fmt(lead['min'])} | {fmt(lead['p50'])} | {len(used)} |")
    print(f"\nRSS: service {rss[0]:.0f} MiB; replicas {', '.join(f'{v:.0f}' for v in rss[1])} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
