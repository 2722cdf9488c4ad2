"""N live channels on R engine replicas: `vortex serve --engine ray --replicas R`, then N copies of
examples/channel.yaml POSTed with --pace realtime, watched for M minutes.

    python benchmarks/bench_ray_channels.py [--channels 2] [--replicas 2] [--minutes 5] [--profile P]
    python benchmarks/bench_ray_channels.py --wire 20   # the replica's wire path in this process, no Ray

Prints per channel: slots decided, aired and filled, retries, stalls (slots appended after their
air time), lead time of the aired slots (min, P50) and which replicas made them; then the
service's RSS and every replica's over time (every --sample seconds), as a least-squares slope in
MB/h after the first --settle minutes, split as /proc/PID/status splits it: RssAnon (the
process's own heap), RssShmem (pages of shared memory it touched: Ray's object store, which every
slot's MP4 and events pass through) and RssFile (mapped files: libraries, weights). A channel
keeps up when its slots' real-time factor on one replica, times N / R, stays under 1 (minus the
margin): the figures say how far off it is.
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
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests

from support.harness import Server, free_port  # noqa: E402

REPLICA_TITLE = "ray::ServeReplica:vortex:VortexReplica"


def inline_channel(path: Path, name: str) -> dict:
    d = yaml.safe_load(path.read_text())
    d["name"] = name
    d["slots"] = [{"recipe": json.loads((path.parent / s["recipe"]).read_text())} for s in d["slots"]]
    return d


def replica_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split(None, 1)[0]) for line in out.splitlines() if REPLICA_TITLE in line]


def rss_parts(pid: int) -> dict[str, float]:
    """VmRSS and its parts (RssAnon, RssShmem, RssFile) in MiB; {} once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    keys = ("VmRSS", "RssAnon", "RssShmem", "RssFile")
    return {k: int(line.split()[1]) / 1024 for line in lines for k in keys if line.startswith(k + ":")}


def slope_mb_h(points: list[tuple[float, float]], settle_s: float) -> float:
    kept = [(t, v) for t, v in points if t >= settle_s]
    if len(kept) < 3:
        return float("nan")
    t, v = np.array(kept).T
    return float(np.polyfit(t / 3600, v, 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--channel", type=Path, default=ROOT / "examples" / "channel.yaml")
    ap.add_argument("--profile")
    ap.add_argument("--sample", type=float, default=15.0, help="seconds between RSS samples")
    ap.add_argument("--settle", type=float, default=1.0, help="minutes left out of the RSS slope")
    ap.add_argument("--wire", type=int, default=0,
                    help="instead: run a replica's wire path (decode_request, engine.run, encode_result) N times "
                         "in this process under tracemalloc, printing RSS and the Python heap's growth")
    args = ap.parse_args()
    if args.wire:
        return wire(args.wire, args.profile)
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
        began, series = time.monotonic(), {}  # label -> part -> [(t, MiB)]
        pids = {"service": server.proc.pid, **{f"replica {p}": p for p in replica_pids()}}
        while (now := time.monotonic() - began) < args.minutes * 60:
            for label, pid in pids.items():
                for part, mib in rss_parts(pid).items():
                    series.setdefault(label, {}).setdefault(part, []).append((now, mib))
            time.sleep(args.sample)
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
    print(f"\nRSS every {args.sample:g} s; slope after the first {args.settle:g} min (MB/h):")
    print("| process | VmRSS first → last MiB | VmRSS slope | RssAnon first → last | RssAnon slope | "
          "RssShmem first → last | RssShmem slope | RssFile last |")
    print("|---|---|---|---|---|---|---|---|")
    for label, parts in series.items():
        cell = lambda k: f"{parts[k][0][1]:.0f} → {parts[k][-1][1]:.0f}"  # noqa: E731
        slope = lambda k: f"{slope_mb_h(parts[k], args.settle * 60):+.0f}"  # noqa: E731
        print(f"| {label} | {cell('VmRSS')} | {slope('VmRSS')} | {cell('RssAnon')} | {slope('RssAnon')} | "
              f"{cell('RssShmem')} | {slope('RssShmem')} | {parts['RssFile'][-1][1]:.0f} |")
    return 0


def wire(n: int, profile: str | None) -> int:
    """What a replica does per slot, minus Ray: the request decoded from its wire form, run by the
    engine, the answer encoded (the MP4's bytes read). The Python heap (tracemalloc) and RssAnon
    after each slot say whether the replica's own path keeps anything; what remains of a replica's
    growth is then Ray's (the object store's shared pages, RssShmem)."""
    import os
    import tracemalloc

    from support.recipes import short_recipe
    from vortex.config import VortexConfig
    from vortex.engine.factory import build_engine
    from vortex.contracts.requests import SlotRequest
    from vortex.recipe import Recipe
    from vortex.serving.wire import decode_request, encode_request, encode_result

    engine = build_engine(VortexConfig.load(profile))
    work = Path(tempfile.mkdtemp(prefix="vortex-wire-"))
    rows, snap0 = [], None
    try:
        for k in range(n + 2):  # two warm-ups: the first slots fill caches that stay
            recipe = Recipe.from_dict(short_recipe(slot_id=k, seed=k, duration=2.0, script="Markets closed higher."))
            payload = encode_request(SlotRequest(recipe=recipe, output=work / "caller.mp4"), slot_id=k, seed=k,
                                     deadline_s=120)
            slot_dir = Path(tempfile.mkdtemp(prefix="slot-", dir=work))
            request = decode_request(payload, slot_dir)
            result = engine.run(request)
            answer = encode_result(result, request.output, {"id": "wire"})
            assert answer["mp4"], result.error_msg
            del answer, result, request, payload
            subprocess.run(["rm", "-rf", str(slot_dir)], check=True)
            if k == 1:
                tracemalloc.start(25)
                snap0 = tracemalloc.take_snapshot()
            parts = rss_parts(os.getpid())
            heap = tracemalloc.get_traced_memory()[0] / 2**20 if tracemalloc.is_tracing() else float("nan")
            rows.append((k, parts["VmRSS"], parts["RssAnon"], heap))
            print(f"  slot {k}: VmRSS {parts['VmRSS']:.0f} MiB, RssAnon {parts['RssAnon']:.0f} MiB, "
                  f"Python heap traced since slot 1: {heap:.1f} MiB", flush=True)
        top = tracemalloc.take_snapshot().compare_to(snap0, "lineno")[:8]
        print("largest growth of the Python heap since slot 1:")
        for stat in top:
            print(f"  {stat.size_diff / 1024:+8.0f} KiB  {stat.count_diff:+6d} blocks  {stat.traceback[0]}")
        ks, anon = np.array([r[0] for r in rows[2:]]), np.array([r[2] for r in rows[2:]])
        if ks.size >= 3:
            print(f"RssAnon slope after the warm-ups: {np.polyfit(ks, anon, 1)[0]:+.1f} MiB per slot over {ks.size} slots")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
