"""Soak with every kind of work: `vortex serve` for M minutes carrying a realtime channel, a job every
30 s, a live insert every 2 minutes, a portrait upload every minute (the next job animates it), and
a kill -9 and restart of the service at the middle; the channel page plays in headless Chromium.

    python benchmarks/bench_soak_all.py [--minutes 30] [--kill-at MIN] [--settle 5] [--no-browser]

Reports, at the end:
- jobs: submitted, succeeded, failed, lost (not in the store: want 0), still unfinished 5 min
  after the end (the channel goes first: on a small machine jobs wait); each job's attempts (a job running at the kill runs again: attempts 2);
- the channel: slots decided, aired, fillers, late appends (the store's `stalls`), inserts posted
  and aired; the published edge behind the live play point (as bench_live/bench_channel_soak
  count it); hls.js's `waiting` events on the page (vxPlayer.waiting), per page life (the page is
  reloaded once the restarted service answers, as a viewer would);
- RSS of the service and of each child process over time, every 10 s, as a least-squares slope in
  MB/h over the samples after the first --settle minutes of each life (want <= 50 MB/h), with the
  open file descriptors and threads at the start and end of each life.
Run on a shared machine, wall-clock figures are those of a loaded machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the harness lives with the tests

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from bench_live import NAME, Edge, channel_body, listed_until  # noqa: E402
from support.harness import Server, free_port  # noqa: E402
from support.recipes import short_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_S = 10.0


@dataclass
class Life:
    """One run of the service process, between its start and its end (the kill, or the soak's end)."""

    pid: int
    began: float
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # process label -> (t, MB)
    anon: dict[str, list[float]] = field(default_factory=dict)  # RssAnon (MB): the heap, not mapped files
    fds: dict[str, list[int]] = field(default_factory=dict)
    threads: dict[str, list[int]] = field(default_factory=dict)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        now = time.monotonic()
        for p in procs:
            try:
                with p.oneshot():
                    label = "service" if p.pid == self.pid else f"{p.name()}[{p.pid}]"
                    self.rss.setdefault(label, []).append((now, p.memory_info().rss / 2**20))
                    self.anon.setdefault(label, []).append(rss_anon(p.pid))
                    self.fds.setdefault(label, []).append(p.num_fds())
                    self.threads.setdefault(label, []).append(p.num_threads())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue

    def report(self, name: str, settle_s: float) -> list[str]:
        lines = [f"  {name} (pid {self.pid}):"]
        for label, pts in self.rss.items():
            t = np.array([p[0] for p in pts]) - self.began
            mb = np.array([p[1] for p in pts])
            keep = t >= settle_s
            slope = (np.polyfit(t[keep] / 3600, mb[keep], 1)[0] if keep.sum() >= 3 else float("nan"))
            anon = np.array(self.anon[label])
            aslope = (np.polyfit(t[keep] / 3600, anon[keep], 1)[0] if keep.sum() >= 3 else float("nan"))
            lines.append(f"    {label}: RSS {mb[0]:.0f} → {mb[-1]:.0f} MB (max {mb.max():.0f}), slope after "
                         f"{settle_s / 60:g} min {slope:+.1f} MB/h over {int(keep.sum())} samples (RssAnon {anon[0]:.0f} → "
                         f"{anon[-1]:.0f} MB, {aslope:+.1f} MB/h); fds "
                         f"{self.fds[label][0]} → {self.fds[label][-1]}; threads {self.threads[label][0]} → "
                         f"{self.threads[label][-1]}")
        return lines


def rss_anon(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def portrait_png(k: int) -> bytes:
    """The stand-in's own portrait (a face), brightened by k so each upload is a new file."""
    from PIL import Image
    from skimage import data

    im = np.clip(data.astronaut().astype(np.int16) + (k % 40), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(im).resize((384, 384)).save(buf, format="PNG")
    return buf.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--kill-at", type=float, help="minute of the kill -9 and restart (default: the middle)")
    ap.add_argument("--settle", type=float, default=5.0, help="minutes of each life left out of the RSS slope")
    ap.add_argument("--job-every", type=float, default=30.0)
    ap.add_argument("--insert-every", type=float, default=120.0)
    ap.add_argument("--portrait-every", type=float, default=60.0)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--finish-wait", type=float, default=300.0, help="seconds to wait at the end for unfinished jobs")
    args = ap.parse_args()
    kill_at = (args.minutes / 2 if args.kill_at is None else args.kill_at) * 60
    root = Path(tempfile.mkdtemp(prefix="vortex-soak-all-"))
    server = Server(data=root / "data", port=free_port())
    server.data.mkdir()
    server.start()
    folder = server.data / "channels" / NAME
    insert_body = json.dumps({"recipe": json.loads((ROOT / "examples" / "live_insert.json").read_text()), "at": "now"})
    lives = [Life(server.proc.pid, time.monotonic())]
    jobs: list[str] = []
    inserts_posted, refused, portraits, waits = 0, [], [], []
    driver = None
    print(f"soak-all: {args.minutes:g} min, kill -9 at {kill_at / 60:g} min; a job every {args.job_every:g} s, an "
          f"insert every {args.insert_every:g} s, a portrait every {args.portrait_every:g} s; data {root}", flush=True)
    try:
        r = httpx.post(server.url + "/v1/channels", content=json.dumps(channel_body(4.0)), timeout=60)
        r.raise_for_status()
        while listed_until(folder) is None:
            time.sleep(0.2)
        if not args.no_browser:
            from streams import chromium

            driver = chromium(root / "chromium")
            driver.get(f"{server.url}/channels/{NAME}")
        edge = Edge(folder)
        began = time.monotonic()
        due = {"job": began + 5, "insert": began + 60, "portrait": began + 20, "sample": began}
        killed = False
        while (now := time.monotonic()) - began < args.minutes * 60:
            edge.poll()
            if now >= due["sample"]:
                lives[-1].sample()
                due["sample"] += SAMPLE_S
                svc = lives[-1].rss.get("service", [])
                if svc and len(svc) % 6 == 0:  # a progress line a minute, with the stalls so far: when they came
                    waiting = driver.execute_script("return vxPlayer.waiting") if driver is not None else "n/a"
                    print(f"  {(now - began) / 60:5.1f} min: service RSS {svc[-1][1]:.0f} MB, RssAnon "
                          f"{lives[-1].anon['service'][-1]:.0f} MB; jobs {len(jobs)}; edge behind {edge.stalls} "
                          f"times; hls.js waiting {waiting} (this page life)", flush=True)
            if not killed and now - began >= kill_at:
                killed = True
                if driver is not None:
                    waits.append(driver.execute_script("return vxPlayer.waiting"))
                lives[-1].sample()
                server.kill9()
                t = time.monotonic()
                server.start()
                print(f"  {(time.monotonic() - began) / 60:5.1f} min: kill -9, restarted and ready in "
                      f"{time.monotonic() - t:.1f} s", flush=True)
                lives.append(Life(server.proc.pid, time.monotonic()))
                if driver is not None:
                    driver.get(f"{server.url}/channels/{NAME}")
                continue
            try:
                if now >= due["portrait"]:
                    due["portrait"] += args.portrait_every
                    up = httpx.post(server.url + "/v1/portraits", timeout=60,
                                    files={"file": ("p.png", portrait_png(len(portraits)), "image/png")})
                    if up.status_code == 201:
                        portraits.append(up.json()["ref"])
                    else:
                        refused.append(("portrait", up.status_code, up.text[:120]))
                if now >= due["job"]:
                    due["job"] += args.job_every
                    visual = {"actor_image": portraits[-1]} if portraits and len(jobs) % 2 else {}
                    sub = server.submit(short_recipe(slot_id=1000 + len(jobs), seed=len(jobs), duration=2.0,
                                                     script="The markets closed higher today.", **visual),
                                        **{"Idempotency-Key": f"soak-{len(jobs)}"})
                    if sub.status_code in (200, 202):
                        jobs.append(sub.json()["id"])
                    else:
                        refused.append(("job", sub.status_code, sub.text[:120]))
                if now >= due["insert"]:
                    due["insert"] += args.insert_every
                    ins = httpx.post(f"{server.url}/v1/channels/{NAME}/live", content=insert_body, timeout=60,
                                     headers={"Content-Type": "application/json"})
                    inserts_posted += ins.status_code == 202
                    if ins.status_code != 202:
                        refused.append(("insert", ins.status_code, ins.text[:120]))
            except httpx.TransportError as exc:  # the service is restarting
                refused.append(("transport", None, str(exc)[:120]))
            time.sleep(0.2)
        if driver is not None:
            waits.append(driver.execute_script("return vxPlayer.waiting"))
        lives[-1].sample()
        outcome = finish(server, jobs, args.finish_wait)
        shown = httpx.get(f"{server.url}/v1/channels/{NAME}", timeout=30).json()
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    c = shown["counts"]
    print(f"\njobs {len(jobs)}: {outcome['states']}; lost (not in the store) {outcome['lost']}; still queued or "
          f"running 5 min after the end {outcome['unfinished']} (on-air work goes first); attempts {outcome['attempts']}")
    print(f"channel: slots decided {c['slots']}, aired {c['aired']}, fillers {c['fillers']}, late appends "
          f"{c['stalls']}, epochs {c['epochs']}; inserts posted {inserts_posted}, {c['inserts']}")
    print(f"stalls: published edge behind the play point {edge.stalls} times (worst {max(0.0, edge.worst):.2f} s); "
          f"hls.js waiting events per page life {waits if driver is not None else 'n/a (no browser)'}")
    print(f"portraits uploaded {len(portraits)}; refused or unreachable requests {len(refused)}: {refused[:6]}")
    print("processes:")
    for i, life in enumerate(lives):
        print("\n".join(life.report("before the kill" if i == 0 and len(lives) > 1 else "after the restart"
                                    if i else "the service", args.settle * 60)))
    return 0


def finish(server: Server, jobs: list[str], timeout: float = 300.0) -> dict:
    """Every submitted job's end (waiting up to `timeout` for those still queued or running)."""
    deadline = time.monotonic() + timeout
    rows: dict[str, dict | None] = {}
    while True:
        for j in jobs:
            r = httpx.get(f"{server.url}/v1/slots/{j}", timeout=30)
            rows[j] = r.json() if r.status_code == 200 else None
        pending = [j for j, row in rows.items() if row is not None and row["state"] in ("queued", "running")]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(2)
    states: dict[str, int] = {}
    for row in rows.values():
        key = "missing" if row is None else row["state"]
        states[key] = states.get(key, 0) + 1
    lost = sum(1 for row in rows.values() if row is None)  # gone from the store: the kill lost it
    unfinished = sum(1 for row in rows.values() if row is not None and row["state"] in ("queued", "running"))
    attempts = sorted({row["attempts"] for row in rows.values() if row is not None})
    return {"states": states, "lost": lost, "unfinished": unfinished, "attempts": attempts}


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
