"""Failover: two `vortex serve` nodes sharing PostgreSQL (--db) and a media folder (--media), a
realtime channel on one, the owner killed (kill -9) and the other taking it over.

    python benchmarks/bench_failover.py [--db URL] [--kills 1] [--lease 4 --renew 1] [--slot-sec 2]
    python benchmarks/bench_failover.py --minutes 10 --every 120     # kill the owner every 2 min

--db: a PostgreSQL database (default $VORTEX_TEST_PG_URL); a fresh schema is made and dropped.
The channel is examples/channel.yaml with its recipes inline (slots of 6, 5 and 4 s), or, with
--slot-sec S, two short recipes of S seconds. After each kill the dead node is started again, so
the next kill (of the new owner) alternates nodes.

The playlist is timed from outside every 0.05 s (through the shared folder). A viewer plays
PART-HOLD-BACK (2 s) behind the last listed part (hls.js in lowLatencyMode; 3 target durations
for plain HLS), so it runs out of media that long after the end of the last part the dead owner
listed. Per kill it prints: the takeover (kill → the store's new term), the first new media
(kill → the first part after the DISCONTINUITY) and the viewer's stall (first new media − the
moment the viewer ran out; 0 when the new owner was in time). Over the run: files named (segments,
parts, init), segments lost and files rewritten (each is hashed when first named and again at
the end: expected 0), takeovers, DISCONTINUITYs. Measured on the 2-core CPU box: README, "Several nodes".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the harness lives with the tests

import httpx  # noqa: E402
import yaml  # noqa: E402

from vortex.channel.hls.playlist import PART_HOLD_BACK_PARTS, read_playlist  # noqa: E402
from vortex.service.store.channels import DEFAULT_CHANNEL_LEASE_S, DEFAULT_CHANNEL_RENEW_S  # noqa: E402
from support.harness import Server, free_port, start_all  # noqa: E402
from support.recipes import short_recipe  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NAME = "failover-bench"
VIEWER_BEHIND = 3  # target durations behind the live edge, where hls.js plays


def channel_body(slot_sec: float | None) -> dict:
    if slot_sec:
        return {"name": NAME, "loop": True, "lookahead": 2, "margin_sec": 0.5,
                "slots": [{"recipe": short_recipe(slot_id=1, seed=3, duration=slot_sec, script="Still on air.")},
                          {"recipe": short_recipe(slot_id=2, seed=4, duration=slot_sec, script="Back to the desk.")}]}
    d = yaml.safe_load((ROOT / "examples" / "channel.yaml").read_text())
    d["name"] = NAME
    d["slots"] = [{"recipe": json.loads((ROOT / "examples" / s["recipe"]).read_text())} for s in d["slots"]]
    return d


class Watch:
    """The playlist seen from outside: every file it names (segments, parts, init), hashed when first
    named, and when the stream after each DISCONTINUITY first showed up."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.hashes: dict[str, str] = {}
        self.playlist = None
        self.cuts_seen: dict[int, float] = {}  # number of DISCONTINUITYs listed -> when first seen

    def poll(self) -> None:
        if not (self.folder / "index.m3u8").is_file():
            return
        try:
            pl = read_playlist(self.folder)
        except (OSError, ValueError):
            return  # replaced under us: next poll
        now = time.time()
        self.playlist = pl
        self.cuts_seen.setdefault(self.cuts(), now)
        for uri in self.named():
            if uri not in self.hashes:
                self.hashes[uri] = hashlib.sha256((self.folder / uri).read_bytes()).hexdigest()

    @property
    def segments(self) -> list:
        return list(self.playlist.segments) if self.playlist else []

    def cuts(self) -> int:
        pl = self.playlist
        return sum(s.discontinuity for s in pl.segments) + bool(pl.open and pl.open.discontinuity)

    def named(self) -> list[str]:
        pl = self.playlist
        uris = [s.uri for s in pl.segments] + [q.uri for s in pl.segments for q in s.parts]
        uris += [q.uri for q in pl.open.parts] if pl.open else []
        return uris + sorted({s.map_uri for s in pl.segments if s.map_uri})

    def edge(self) -> float:
        """Wall time at which a viewer at the live edge runs out of the listed media: the end of the
        last listed part (or segment) + the hold-back it plays behind (PART-HOLD-BACK with LL-HLS)."""
        pl = self.playlist
        last = pl.segments[-1]
        end = last.program_date_time + timedelta(seconds=last.duration_sec)
        if pl.open is not None and pl.open.parts:
            end = pl.open.program_date_time + timedelta(seconds=pl.open.duration_sec)
        behind = PART_HOLD_BACK_PARTS * pl.part_target if pl.part_target else 3 * pl.target_duration
        return (end + timedelta(seconds=behind)).timestamp()

    def lost(self) -> list[str]:
        """Segments named once and now unlisted or gone; any named file rewritten. (A part's file goes
        once its tags left the playlist: channel/publish.py. That is no loss: its segment stays.)"""
        listed = {s.uri for s in read_playlist(self.folder).segments}
        out = []
        for u, h in self.hashes.items():
            path = self.folder / u
            if not u.startswith("part-") and (not path.is_file() or (u.startswith("seg-") and u not in listed)):
                out.append(u)
            elif path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() != h:
                out.append(u)
        return out


def owner_of(nodes: list[Server]) -> Server | None:
    for n in nodes:
        if n.proc is None or n.proc.poll() is not None:
            continue
        try:
            st = httpx.get(f"{n.url}/v1/channels/{NAME}", timeout=10).json()
        except httpx.HTTPError:
            continue
        if st.get("owner") and st["owner"]["held"]:
            return next((m for m in nodes if m.proc and st["owner"]["node"].endswith(f":{m.proc.pid}")), None)
    return None


def kill_and_time(nodes: list[Server], watch: Watch, deadline_s: float = 180.0) -> dict:
    asked = time.monotonic()
    while (victim := owner_of(nodes)) is None:  # a GET timed out on the loaded box, or a takeover is under way
        if time.monotonic() - asked > 60:
            states = [httpx.get(f"{n.url}/v1/channels/{NAME}", timeout=30).json() for n in nodes]
            raise RuntimeError(f"no node has held the channel for 60 s: {[(s['status'], s['owner']) for s in states]}")
        time.sleep(0.5)
    survivor = next(n for n in nodes if n is not victim)
    cuts_before = watch.cuts()
    edge = watch.edge()
    victim.kill9()
    killed = time.time()
    took = first = None
    while time.time() - killed < deadline_s and first is None:
        watch.poll()
        if took is None:
            st = httpx.get(f"{survivor.url}/v1/channels/{NAME}", timeout=10).json()
            if st["owner"] and st["owner"]["this_node"] and st["takeovers"]:
                took = st["takeovers"][-1]
        if watch.cuts() > cuts_before:  # a DISCONTINUITY is listed with the first new part
            first = watch.cuts_seen[watch.cuts()]
        time.sleep(0.05)
    victim.start(wait=False)  # back, to take the channel at the next kill
    from datetime import datetime

    taken_at = datetime.fromisoformat(took["at"]).timestamp() if took else None
    return {"killed": victim.port, "takeover_s": None if taken_at is None else round(taken_at - killed, 2),
            "lease_ran_out_after_kill_s": None if not took else round(
                datetime.fromisoformat(took["lease_ran_out"]).timestamp() - killed, 2),
            "first_new_media_s": None if first is None else round(first - killed, 2),
            "viewer_runs_out_s": round(edge - killed, 2),
            "stall_s": None if first is None else round(max(0.0, first - edge), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default=os.environ.get("VORTEX_TEST_PG_URL"), help="a PostgreSQL URL (a schema is made)")
    ap.add_argument("--lease", type=float, default=DEFAULT_CHANNEL_LEASE_S,
                    help=f"--channel-lease-sec (default {DEFAULT_CHANNEL_LEASE_S:g}, the service's)")
    ap.add_argument("--renew", type=float, default=DEFAULT_CHANNEL_RENEW_S,
                    help=f"--channel-renew-sec (default {DEFAULT_CHANNEL_RENEW_S:g})")
    ap.add_argument("--slot-sec", type=float, help="two short recipes of this length (default: examples/channel.yaml)")
    ap.add_argument("--kills", type=int, default=1, help="kills, --every seconds apart (default 1)")
    ap.add_argument("--minutes", type=float, help="run this long, killing the owner every --every seconds")
    ap.add_argument("--every", type=float, default=120.0, help="seconds between kills (default 120)")
    ap.add_argument("--warmup", type=float, default=40.0, help="seconds on air before the first kill (default 40)")
    args = ap.parse_args()
    if not args.db:
        ap.error("--db: give a PostgreSQL URL (or set VORTEX_TEST_PG_URL): the nodes share it")
    from postgres_server import fresh_schema

    kills = int(args.minutes * 60 // args.every) if args.minutes else args.kills
    root = Path(tempfile.mkdtemp(prefix="vortex-failover-"))
    with fresh_schema(args.db) as url:
        common = ["--db", url, "--media", str(root / "media"), "--channel-lease-sec", str(args.lease),
                  "--channel-renew-sec", str(args.renew)]
        nodes = [Server(data=root / f"node-{n}", port=free_port(), args=[*common, "--log-file", str(root / f"node-{n}.jsonl")])
                 for n in "ab"]
        watch = Watch(root / "media" / "channels" / NAME)
        results = []
        try:
            start_all(nodes)
            r = httpx.post(nodes[0].url + "/v1/channels", params={"pace": "realtime"},
                           content=json.dumps(channel_body(args.slot_sec)), timeout=60)
            r.raise_for_status()
            print(f"failover: lease {args.lease:g} s, renewed every {args.renew:g} s; "
                  f"{'slots of ' + format(args.slot_sec, 'g') + ' s' if args.slot_sec else 'examples/channel.yaml'}; "
                  f"{kills} kill(s), {args.every:g} s apart after {args.warmup:g} s", flush=True)
            began = time.time()
            next_kill = began + args.warmup
            while len(results) < kills:
                watch.poll()
                if time.time() >= next_kill and watch.segments:
                    for n in nodes:
                        if n.proc.poll() is None:
                            n.wait_ready()  # the one killed last time is back before the next kill
                    res = kill_and_time(nodes, watch)
                    results.append(res)
                    print(f"  kill {len(results)} (node :{res['killed']}): {json.dumps(res)}", flush=True)
                    next_kill = time.time() + args.every
                time.sleep(0.1)
            settle = time.time() + 10
            while time.time() < settle:
                watch.poll()
                time.sleep(0.1)
            lost = watch.lost()
            for n in nodes:
                n.wait_ready()  # the one killed last is back: ask it too
            terms = httpx.get(f"{nodes[0].url}/v1/channels/{NAME}", timeout=10).json()
        finally:
            for n in nodes:
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.send_signal(signal.SIGTERM)
            for n in nodes:
                if n.proc is not None:
                    try:
                        n.proc.wait(90)
                    except Exception:
                        n.stop()
    stalls = [r["stall_s"] for r in results if r["stall_s"] is not None]
    print(f"\n{len(watch.hashes)} files named (segments, parts, init) over {time.time() - began:.0f} s; lost or rewritten: {len(lost)}"
          f" {lost[:5]}; takeovers {terms['counts']['takeovers']}; "
          f"DISCONTINUITYs {sum(s.discontinuity for s in watch.segments)}")
    if stalls:
        print(f"viewer stall per kill (s): {stalls}; takeover (s): {[r['takeover_s'] for r in results]}; "
              f"first new media (s): {[r['first_new_media_s'] for r in results]}")
    print(f"nodes' logs and media: {root}")
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(main())
