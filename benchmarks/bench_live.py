"""Live inserts in `vortex serve`: breaking news into a running realtime channel, timed from outside.

    python benchmarks/bench_live.py [--minutes 10] [--every 60] [--delay S] [--browser] [--insert F]
    python benchmarks/bench_live.py --alone 3     # the insert on a warm engine, nothing else running

One service on loopback (the default profile) runs examples/channel.yaml as a realtime channel
with `live_delay_sec` = --delay; every --every seconds an insert (examples/live_insert.json, at
"now") is POSTed. Per insert it prints:
- POST → publication: from the POST until the playlist lists media covering its air time (the one
  it took: later than planned when it was not ready) + 0.5 s (read from the folder every 20 ms);
- POST → ready (the engine's first frame made and first sentence judged: the shortest delay line
  that would have worked) and each sentence's check time (speech made → verdicts), as recorded;
- with --browser, glass to glass: from the POST until hls.js's `playingDate` (the channel page in
  headless Chromium) reaches the insert's air time; and the viewer's live-edge latency (wall clock
  − playingDate) sampled every second.
`--alone N` instead runs the insert N times as a live request on a warm engine in this process,
into a delay line, and prints when its first audio, first frame and first verdicts came and when
it was ready to air: what the delay line must cover on this machine.

At the end: stalls (the published edge behind the wall clock − PART-HOLD-BACK, as the soak
counts them, and the page's `waiting` events), every scheduled slot aired or filled, the lead
times, and the stream decoded whole: exact frame count, no timestamp gap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the harness lives with the tests

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from vortex.channel.definition import LIVE_DELAY_SEC  # noqa: E402
from vortex.channel.hls.playlist import PART_HOLD_BACK_PARTS, read_playlist  # noqa: E402
from support.harness import Server, free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "live-bench"


def channel_body(delay: float) -> dict:
    d = yaml.safe_load((ROOT / "examples" / "channel.yaml").read_text())
    d["name"], d["live_delay_sec"] = NAME, delay
    d["slots"] = [{"recipe": json.loads((ROOT / "examples" / s["recipe"]).read_text())} for s in d["slots"]]
    return d


def listed_until(folder: Path) -> datetime | None:
    """The wall-clock end of the media the playlist lists (its last part or segment)."""
    try:
        p = read_playlist(folder)
    except (OSError, ValueError):
        return None
    last = p.open if p.open and p.open.parts else (p.segments[-1] if p.segments else None)
    return None if last is None else last.program_date_time + timedelta(seconds=last.duration_sec)


class Edge:
    """Stalls as the soak counts them: the published edge behind the wall clock − PART-HOLD-BACK."""

    def __init__(self, folder: Path):
        self.folder, self.stalls, self.worst, self._behind = folder, 0, 0.0, False

    def poll(self) -> None:
        end = listed_until(self.folder)
        if end is None:
            return
        hold = PART_HOLD_BACK_PARTS * 0.5
        lag = (datetime.now(timezone.utc) - timedelta(seconds=hold) - end).total_seconds()
        self.worst = max(self.worst, lag)
        if lag > 0 and not self._behind:
            self.stalls += 1
        self._behind = lag > 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=60.0, help="seconds between inserts (default 60)")
    ap.add_argument("--delay", type=float, default=LIVE_DELAY_SEC,
                    help=f"the channel's live_delay_sec (default {LIVE_DELAY_SEC:g}, the definition's)")
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds on air before the first insert")
    ap.add_argument("--insert", type=Path, default=ROOT / "examples" / "live_insert.json")
    ap.add_argument("--browser", action="store_true", help="play the channel page in headless Chromium")
    ap.add_argument("--alone", type=int, default=0, help="run the insert N times on a warm engine instead")
    args = ap.parse_args()
    if args.alone:
        return alone(args.insert, args.alone)
    root = Path(tempfile.mkdtemp(prefix="vortex-live-"))
    server = Server(data=root / "data", port=free_port())
    server.data.mkdir()
    server.start()
    folder = server.data / "channels" / NAME
    insert_body = json.dumps({"recipe": json.loads(args.insert.read_text()), "at": "now"})
    driver, lags, rows = None, [], []
    try:
        r = httpx.post(server.url + "/v1/channels", content=json.dumps(channel_body(args.delay)), timeout=60)
        r.raise_for_status()
        while listed_until(folder) is None:
            time.sleep(0.2)
        if args.browser:
            from streams import chromium

            driver = chromium(root / "chromium")
            driver.get(f"{server.url}/channels/{NAME}")
        edge = Edge(folder)
        print(f"live: examples/channel.yaml realtime, live_delay_sec {args.delay:g}, an insert every {args.every:g} s "
              f"for {args.minutes:g} min after {args.warmup:g} s; {'Chromium on the page' if driver else 'no browser'}",
              flush=True)
        began = time.monotonic()
        next_insert, last_lag = began + args.warmup, 0.0
        while time.monotonic() - began < args.minutes * 60:
            edge.poll()
            if driver is not None and time.monotonic() - last_lag >= 1.0:
                last_lag = time.monotonic()
                lag = driver.execute_script("return window.vxHls && vxHls.playingDate ? "
                                            "(Date.now() - vxHls.playingDate.getTime()) / 1000 : null")
                if lag is not None:
                    lags.append(lag)
            if time.monotonic() >= next_insert:
                rows.append(one_insert(server, folder, insert_body, driver, edge))
                print("  " + json.dumps(rows[-1]), flush=True)
                next_insert += args.every
            time.sleep(0.1)
        waits = driver.execute_script("return vxPlayer.waiting") if driver is not None else None
        httpx.delete(f"{server.url}/v1/channels/{NAME}", timeout=120)
        shown = httpx.get(f"{server.url}/v1/channels/{NAME}", timeout=30).json()
    finally:
        if driver is not None:
            driver.quit()
        server.stop()
    report(rows, shown, edge, lags, waits, folder)
    return 0


def alone(path: Path, times: int) -> int:
    from vortex.channel.delay import DelayLine
    from vortex.config import VortexConfig
    from vortex.contracts.requests import Priority, SlotRequest
    from vortex.engine.factory import build_engine
    from vortex.recipe import Recipe

    engine = build_engine(VortexConfig.load())
    recipe = Recipe.from_file(path)
    try:
        for k in range(times + 1):  # the first warms up
            line = DelayLine(np.zeros((8, 8, 3), np.uint8))
            began, seen = time.monotonic(), {}

            def on_event(event, line=line, began=began, seen=seen) -> None:
                line.on_event(event)
                now = round(time.monotonic() - began, 3)
                seen.setdefault(event.kind, now)
                if "ready" not in seen and line.decided_frames() >= 1:
                    seen["ready"] = now

            result = engine.run(SlotRequest(recipe=recipe.with_overrides(seed=k + 1), priority=Priority.LIVE,
                                            sinks=(line,)), on_event=on_event)
            keys = ("first_audio", "first_frame", "frame_checked", "chunk_checked", "ready")
            print(f"  {'warm-up' if k == 0 else 'run ' + str(k)}: ok={result.success} "
                  + ", ".join(f"{key} {seen.get(key, float('nan')):.2f} s" for key in keys)
                  + f", whole {time.monotonic() - began:.2f} s", flush=True)
    finally:
        engine.close()
    return 0


def one_insert(server: Server, folder: Path, body: str, driver, edge: Edge) -> dict:
    posted = time.monotonic()
    posted_ms = time.time() * 1000
    r = httpx.post(f"{server.url}/v1/channels/{NAME}/live", content=body, timeout=60,
                   headers={"Content-Type": "application/json"})
    if r.status_code != 202:
        return {"refused": r.status_code, "error": r.text[:200]}
    ins = r.json()
    out = {"id": ins["id"], "post_s": round(time.monotonic() - posted, 3),
           "delay_line_s": round(datetime.fromisoformat(ins["air_time"]).timestamp() - posted_ms / 1000, 3)}
    row = wait_insert(server, ins["id"], ("on_air", "aired", "failed"), edge)  # the air time it really took
    air = datetime.fromisoformat(row["air_time"])
    out["aired_after_s"] = round(air.timestamp() - posted_ms / 1000, 3)
    published = glass = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (published is None or (driver is not None and glass is None)):
        edge.poll()
        end = listed_until(folder)
        if published is None and end is not None and end >= air + timedelta(seconds=0.5):
            published = time.monotonic() - posted
        if driver is not None and glass is None:
            seen = driver.execute_script("return vxHls.playingDate && vxHls.playingDate.getTime() >= arguments[0] ? "
                                         "Date.now() : null", air.timestamp() * 1000)
            if seen is not None:
                glass = (seen - posted_ms) / 1000
        time.sleep(0.02)
    out["post_to_publication_s"] = None if published is None else round(published, 3)
    out["glass_to_glass_s"] = None if glass is None else round(glass, 3)
    row = wait_insert(server, ins["id"], ("aired", "failed"), edge)
    out.update(state=row["state"], error=row["error"], ready_after_s=row["ready_after_s"],
               published_after_s=row["published_after_s"],
               chunks=[(c["state"], c["judged_after_s"]) for c in row["chunks"]],
               made_after_s=[c.get("made_after_s") for c in row["chunks"]], synth_s=[c.get("synth_s") for c in row["chunks"]])
    return out


def wait_insert(server: Server, insert_id: str, states: tuple, edge: Edge) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        row = next((i for i in httpx.get(f"{server.url}/v1/channels/{NAME}", timeout=30).json()["inserts"]
                    if i["id"] == insert_id), None)
        if row is not None and row["state"] in states:
            return row
        edge.poll()
        time.sleep(0.05)
    raise RuntimeError(f"insert {insert_id} not {states} after 90 s")


def report(rows: list, shown: dict, edge: Edge, lags: list, waits, folder: Path) -> None:
    from streams import decode

    def spread(key: str) -> str:
        v = np.array([r[key] for r in rows if r.get(key) is not None], float)
        return "n/a" if not v.size else f"min {v.min():.2f}, P50 {np.median(v):.2f}, max {v.max():.2f} s (n={v.size})"

    judged = [j for r in rows for _, j in r.get("chunks", []) if j is not None]
    c = shown["counts"]
    print(f"\ninserts {len(rows)}: {c['inserts']}")
    print(f"  POST → publication (air time + 0.5 s listed): {spread('post_to_publication_s')}")
    print(f"  POST → glass (playingDate at the air time):     {spread('glass_to_glass_s')}")
    print(f"  POST → planned air time (the delay line):       {spread('delay_line_s')}")
    print(f"  POST → air time taken (later when not ready):   {spread('aired_after_s')}")
    print(f"  POST → ready (first frame made, first sentence judged): {spread('ready_after_s')}")
    if judged:
        print(f"  a sentence's checks (speech made → verdicts): P50 {np.median(judged):.2f} s, max {max(judged):.2f} s")
    for k in (0, 1):  # the first sentence's chunks: what "ready" waits for
        made = [r["made_after_s"][k] for r in rows if len(r.get("made_after_s") or ()) > k]
        synth = [r["synth_s"][k] for r in rows if len(r.get("synth_s") or ()) > k and r["synth_s"][k] is not None]
        if made:
            print(f"  POST → chunk {k}'s speech made: min {min(made):.2f}, P50 {np.median(made):.2f}, max {max(made):.2f} s"
                  + (f"; its voice call P50 {np.median(synth):.2f} s" if synth else ""))
    if lags:
        print(f"  viewer behind the wall clock: min {min(lags):.2f}, P50 {np.median(lags):.2f}, max {max(lags):.2f} s")
    print(f"  stalls: published edge {edge.stalls} (worst {max(0.0, edge.worst):.2f} s behind); page waits {waits}")
    lead = shown["lead_time_sec"]
    print(f"  slots decided {c['slots']}: aired {c['aired']}, fillers {c['fillers']}; lead min {lead['min']}, "
          f"P50 {lead['p50']} s")
    playlist = read_playlist(folder)
    vpts, apts, pcm, priming, _ = decode(folder)
    listed = sum(round(s.duration_sec * 24) for s in playlist.segments)
    gaps = sorted(set(np.diff(vpts).tolist()) - {90_000 // 24})
    print(f"  stream: {len(vpts)} frames decoded, {listed} listed; timestamp steps other than one frame: {gaps}")


if __name__ == "__main__":
    sys.exit(main())
