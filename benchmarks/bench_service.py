"""`vortex serve` under load: N short slots submitted at once to a real server on loopback.

    python benchmarks/bench_service.py [--slots 50] [--duration 1.0] [--profile NAME] [--json OUT]

Prints the queue wait (submission → the worker starts it) P50/P99, the API's latency P99 while the
queue is full (GET /v1/slots/{id}, and POST of a recipe whose Idempotency-Key was seen: the full
parse and validation, no new job), and the server's RSS after the warm-up slots and after the load
(flat means the event histories and the store do not grow the process). Percentiles: nearest rank.
`vortex serve` caps glibc's malloc arenas at 2 (service/cli.py): without it the process grows
~35 MiB a slot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the harness lives with the tests

import httpx  # noqa: E402

from vortex.bench.stats import PERCENTILE_METHOD, Percentiles  # noqa: E402
from support.harness import Server, free_port, rss_bytes  # noqa: E402
from support.recipes import short_recipe  # noqa: E402

PROBE_INTERVAL_S = 0.05  # one GET every 50 ms and one POST every 250 ms while the queue drains
MIB = 2**20


def _probe(server: Server, ids: list[str], key: str, recipe: dict, stop: threading.Event,
           gets: list[float], posts: list[float]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get(f"/v1/slots/{ids[i % len(ids)]}").raise_for_status()
            gets.append((time.perf_counter() - t0) * 1000)
            if i % 5 == 0:
                t0 = time.perf_counter()
                r = client.post("/v1/slots", content=json.dumps(recipe),
                                headers={"Idempotency-Key": key, "Content-Type": "application/json"})
                assert r.status_code == 200, r.text
                posts.append((time.perf_counter() - t0) * 1000)
            i += 1
            stop.wait(PROBE_INTERVAL_S)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--slots", type=int, default=50)
    p.add_argument("--duration", type=float, default=1.0, help="seconds per slot (default 1.0)")
    p.add_argument("--warmup", type=int, default=3, help="slots run before the RSS baseline (default 3)")
    p.add_argument("--profile", help="a shipped profile (default: the embedded default)")
    p.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="vortex-bench-service-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        server = Server(data=data, port=free_port(), args=["--profile", args.profile] if args.profile else [])
        t0 = time.monotonic()
        server.start()
        ready_s = time.monotonic() - t0
        rss_ready = rss_bytes(server.proc.pid)
        try:
            for w in range(args.warmup):  # the allocator's working set settles over the first slots
                warm_recipe = short_recipe(slot_id=900 + w, seed=w, duration=args.duration, script="Good evening.")
                warm = server.submit(warm_recipe, **{"Idempotency-Key": f"warm-up-{w}"}).json()
                server.wait_state(warm["id"], {"succeeded", "failed"}, timeout=300)
            rss_before = rss_bytes(server.proc.pid)

            t_submit = time.monotonic()
            ids, submit_ms = [], []
            for i in range(args.slots):
                t = time.perf_counter()
                r = server.submit(short_recipe(slot_id=i + 1, seed=1000 + i, duration=args.duration,
                                               script="Good evening."))
                submit_ms.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            stop, gets, posts = threading.Event(), [], []
            probe = threading.Thread(target=_probe, daemon=True,
                                     args=(server, ids, f"warm-up-{args.warmup - 1}", warm_recipe, stop, gets, posts))
            probe.start()
            jobs, rss_series = [], []
            for n, j in enumerate(ids, 1):
                jobs.append(server.wait_state(j, {"succeeded", "failed", "cancelled"}, timeout=3600))
                if n % 10 == 0:
                    rss_series.append(round(rss_bytes(server.proc.pid) / MIB))
            stop.set()
            probe.join(60)
            wall_s = time.monotonic() - t_submit
            rss_after = rss_bytes(server.proc.pid)
            metrics = httpx.get(server.url + "/metrics", timeout=30).text
        finally:
            server.stop()

    waits = [j["started"] - j["created"] for j in jobs]
    runs = [j["finished"] - j["started"] for j in jobs]
    states = {s: sum(j["state"] == s for j in jobs) for s in {j["state"] for j in jobs}}
    order_ok = all(a["started"] <= b["started"] for a, b in zip(jobs, jobs[1:]))
    w, run, g, ps, sub = (Percentiles.of(x) for x in (waits, runs, gets, posts, submit_ms))
    figures = {
        "slots": args.slots, "duration_sec": args.duration, "states": states, "submission_order_kept": order_ok,
        "engine_ready_s": round(ready_s, 2), "wall_s": round(wall_s, 2),
        "queue_wait_s": {"p50": round(w.p50, 2), "p99": round(w.p99, 2), "max": round(w.max, 2)},
        "slot_run_s": {"p50": round(run.p50, 2), "p99": round(run.p99, 2)},
        "submit_ms": {"p50": round(sub.p50, 1), "p99": round(sub.p99, 1)},
        "get_ms": {"n": g.n, "p50": round(g.p50, 1), "p99": round(g.p99, 1)},
        "post_idempotent_ms": {"n": ps.n, "p50": round(ps.p50, 1), "p99": round(ps.p99, 1)},
        "rss_mib": {"ready": round(rss_ready / MIB, 1), "after_warmup": round(rss_before / MIB, 1),
                    "after_load": round(rss_after / MIB, 1), "every_10_slots": rss_series},
        "percentiles": PERCENTILE_METHOD,
        "metrics_sample": [line for line in metrics.splitlines() if line.startswith(("vortex_jobs", "vortex_queue_depth",
                                                                                     "vortex_slot_seconds_count"))],
    }
    print(f"vortex serve under load · {args.slots} slots of {args.duration:g} s submitted at once · {states} · "
          f"order kept: {order_ok}")
    print(f"  engine ready in {ready_s:.1f} s; queue drained in {wall_s:.1f} s "
          f"({wall_s / args.slots:.2f} s a slot; run P50 {run.p50:.2f} s)")
    print(f"  queue wait      P50 {w.p50:7.2f} s   P99 {w.p99:7.2f} s")
    print(f"  submit (POST)   P50 {sub.p50:7.1f} ms  P99 {sub.p99:7.1f} ms   ({sub.n}, queue filling)")
    print(f"  GET /v1/slots/id P50 {g.p50:6.1f} ms  P99 {g.p99:7.1f} ms   ({g.n}, queue full)")
    print(f"  POST (same key) P50 {ps.p50:7.1f} ms  P99 {ps.p99:7.1f} ms   ({ps.n}, queue full)")
    print(f"  RSS  ready {rss_ready / MIB:.0f} MiB · after warm-up {rss_before / MIB:.0f} MiB · "
          f"after load {rss_after / MIB:.0f} MiB ({(rss_after - rss_before) / MIB:+.0f} MiB); "
          f"every 10 slots: {rss_series} MiB")
    print(f"  percentiles: {PERCENTILE_METHOD}")
    for j in [j for j in jobs if j["state"] != "succeeded"][:3]:
        print(f"  ! job {j['id']} {j['state']}: {j['error']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if states.get("succeeded") == args.slots and order_ok else 1


if __name__ == "__main__":
    sys.exit(main())
