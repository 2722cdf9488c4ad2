"""Priorities in `vortex serve`: N queued 45 s jobs, then a realtime channel on the same engine.

    python benchmarks/bench_queue.py [--jobs 2] [--job-recipe examples/news_45s.json]
        [--channel examples/channel.yaml] [--minutes 3] [--max-in-flight 4]

First one job alone (its time is the baseline), then the N jobs and the channel together, for
--minutes or until the jobs are done, whichever is later. Prints the channel's slots decided and
aired (and its lead time min / P50, stalls in the channel's own records), and each job's time
against the baseline (its slowdown) with the time it spent paused behind the channel.
`--max-in-flight 1` runs one slot at a time: the engine before priorities, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the tests

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from support.harness import Server, free_port  # noqa: E402


def inline_channel(path: Path) -> dict:
    d = yaml.safe_load(path.read_text())
    d["slots"] = [{"recipe": json.loads((path.parent / s["recipe"]).read_text())} for s in d["slots"]]
    return d


def job_seconds(job: dict) -> float:
    return job["finished"] - job["started"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--job-recipe", type=Path, default=ROOT / "examples" / "news_45s.json")
    ap.add_argument("--channel", type=Path, default=ROOT / "examples" / "channel.yaml")
    ap.add_argument("--minutes", type=float, default=3.0, help="the channel runs at least this long")
    ap.add_argument("--max-in-flight", type=int, default=None, help="pipeline.max_in_flight (default: the profile's)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vortex-queue-"))
    extra: list[str] = []
    if args.max_in_flight is not None:
        cfg = work / "config.yaml"
        cfg.write_text(f"extends: cpu-preview\npipeline: {{max_in_flight: {args.max_in_flight}}}\n")
        extra = ["--config", str(cfg)]
    server = Server(work / "data", free_port(), args=extra).start()
    recipe = json.loads(args.job_recipe.read_text())
    try:
        print(f"bench_queue · {args.jobs} x {args.job_recipe.name} + {args.channel.name} · "
              f"max_in_flight {args.max_in_flight or 'profile'} · {work}", flush=True)
        alone = server.submit({**recipe, "slot_params": {**recipe["slot_params"], "seed": 1}}).json()["id"]
        baseline = job_seconds(server.wait_state(alone, {"succeeded", "failed"}, timeout=900))
        print(f"  one job alone: {baseline:.1f} s", flush=True)

        ids = [server.submit({**recipe, "slot_params": {**recipe["slot_params"], "seed": 10 + i}}).json()["id"]
               for i in range(args.jobs)]
        began = time.monotonic()
        definition = inline_channel(args.channel)
        r = httpx.post(server.url + "/v1/channels?pace=realtime", json=definition, timeout=30)
        assert r.status_code in (200, 201, 202), r.text
        name = definition["name"]
        while True:
            time.sleep(2)
            jobs = [server.job(i) for i in ids]
            done = all(j["state"] in ("succeeded", "failed", "cancelled") for j in jobs)
            if done and time.monotonic() - began >= args.minutes * 60:
                break
        status = httpx.get(f"{server.url}/v1/channels/{name}", timeout=30).json()
        httpx.delete(f"{server.url}/v1/channels/{name}", timeout=120)
        state = json.loads((work / "data" / "channels" / name / "channel.json").read_text())
    finally:
        server.stop()

    slots = [s for s in state["slots"] if s.get("decision")]
    aired = [s for s in slots if s["decision"] == "aired"]
    leads = np.array([s["lead_time_sec"] for s in aired], float)
    print(f"  channel {name}: {len(slots)} slots decided in {time.monotonic() - began:.0f} s, {len(aired)} aired "
          f"({100 * len(aired) / max(len(slots), 1):.0f} %), fillers {len(slots) - len(aired)}; "
          + (f"lead min {leads.min():+.2f} s, P50 {np.median(leads):+.2f} s" if leads.size else "no lead")
          + f"; status {status.get('status')}")
    for j in jobs:
        paused = (j.get("timings") or {}).get("paused", 0.0) / 1000
        took = job_seconds(j) if j.get("finished") else float("nan")
        print(f"  job {j['id']}: {j['state']}, {took:.1f} s = {took / baseline:.2f} x alone, paused {paused:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
