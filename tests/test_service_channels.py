"""Channels in `vortex serve` (a real process on loopback, the real cpu-preview engine): a definition
POSTed with inline and `job:` recipes becomes a live HLS stream served by the API, decoded here
exactly and gaplessly; bad definitions are 422 naming the field; one name runs once; DELETE stops
it; kill -9 of the service and a restart resume the channel after a DISCONTINUITY, no listed
segment lost or rewritten; LL-HLS blocking playlist reload, parts and the init segment are served.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from vortex.channel.hls import parse_playlist
from support.harness import Server, free_port
from support.recipes import short_recipe

from streams import FPS, SR, TS, decode, fetch_stream, post, wait_for


def channel(name: str, recipes: list, **fields) -> dict:
    return {"name": name, "loop": True, "lookahead": 2, "margin_sec": 0.5, **fields,
            "slots": [{"recipe": r} for r in recipes]}


def listed_digests(folder, playlist) -> dict[str, str]:
    """sha256 of every file the playlist names: segments, parts (an open segment's too), init."""
    named = [g.uri for g in playlist.segments] + [p.uri for g in playlist.segments for p in g.parts]
    named += [p.uri for p in playlist.open.parts] if playlist.open else []
    named += sorted({g.map_uri for g in playlist.segments})
    return {uri: hashlib.sha256((folder / uri).read_bytes()).hexdigest() for uri in named}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(data=tmp_path_factory.mktemp("serve-ch") / "data", port=free_port(), token=secrets.token_urlsafe(24))
    s.data.mkdir()
    s.start()
    yield s
    s.stop()


def test_bad_definitions_are_422_naming_the_field(server):
    cases = [
        ("[1, 2]", "(top level)"),
        (channel("x", ["news.json"]), "slots[0].recipe"),  # a server path: never over HTTP
        (channel("x", ["job:nope"]), "slots[0].recipe"),
        (channel("bad name!", [short_recipe()]), "name"),
        (channel("x", [{**short_recipe(), "audio_track": {"script": "Hi.", "voice_id": "nobody"}}]),
         "slots[0].recipe.audio_track.voice_id"),
        (channel("x", [short_recipe(actor_image="/etc/passwd")]), "slots[0].recipe.visual_track.actor_image"),
        ({**channel("x", [short_recipe()]), "slots": [{"recipe": short_recipe()}, {"break": 0}]}, "slots[1].break"),
        ({**channel("x", [short_recipe()]), "slots": [{"recipe": short_recipe()}, {"break": 601}]}, "slots[1].break"),
        ({**channel("x", [short_recipe()]), "slots": [{"recipe": short_recipe()}, {"break": 5, "slate": "/etc/x.png"}]},
         "slots[1].slate"),  # a server path: never over HTTP
    ]
    for body, field in cases:
        r = post(server, body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, r.json()
    assert httpx.post(server.url + "/v1/channels", content=json.dumps(channel("x", [short_recipe()])),
                      timeout=30).status_code == 401  # no token
    assert httpx.get(server.url + "/v1/channels/nope", timeout=30).status_code == 404
    assert httpx.get(server.url + "/v1/channels", timeout=30).json() == {"channels": []}  # nothing started


def test_a_posted_channel_streams_exactly_and_gaplessly(server, tmp_path):
    job = server.submit(short_recipe(slot_id=9, seed=11, duration=1.5, script="Back to you.")).json()
    server.wait_state(job["id"], {"succeeded"})
    recipes = [short_recipe(slot_id=1, seed=5, duration=1.5, script="Good evening."),
               f"job:{job['id']}",
               short_recipe(slot_id=3, seed=9, duration=1.7, script="Sunny today.")]
    r = post(server, channel("svc-3", recipes), pace="asap", max_slots=4)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/v1/channels/svc-3" and r.json()["page"] == "/channels/svc-3"
    done = wait_for(server, "svc-3", lambda s: s["status"] == "ended")
    assert done["ended"] and done["counts"]["aired"] == 4 and done["counts"]["slots"] == 4
    assert [s["recipe"] for s in done["recent"]] == ["inline", "inline", "inline", "inline"]
    assert done["lead_time_sec"]["min"] is not None and done["next"] == []

    text, _ = fetch_stream(server, "svc-3", tmp_path / "stream")
    assert text.rstrip().endswith("#EXT-X-ENDLIST")
    vpts, apts, pcm, priming, _ = decode(tmp_path / "stream")
    total = 36 + 36 + 41 + 36  # 1.5 s, 1.5 s (the job's recipe), 1.7 s, then the list again
    assert len(vpts) == total
    assert set(np.diff(vpts)) == {TS // FPS} and set(np.diff(apts)) == {1024 * TS // SR}
    assert priming == 1024 and total * SR // FPS <= pcm.size - priming < total * SR // FPS + 1024

    for bad in ("channel.json", "..%2Fchannel.json", "definition.json", "seg-1.ts"):
        assert httpx.get(f"{server.url}/v1/channels/svc-3/{bad}", timeout=30).status_code == 404
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert 'vortex_channel_slots_total{channel="svc-3",decision="aired"} 4.0' in metrics
    assert 'vortex_channel_lead_time_seconds_count{channel="svc-3"} 4.0' in metrics
    page = httpx.get(server.url + "/channels/svc-3", timeout=30)
    assert page.status_code == 200 and "channel.js" in page.text and "blob:" in page.headers["content-security-policy"]


def test_one_name_runs_once_and_delete_stops_it(server):
    body = channel("live-1", [short_recipe(slot_id=1, seed=3, duration=1.5)])
    assert post(server, body).status_code == 201
    assert post(server, body).status_code == 409
    playlist = server.url + "/v1/channels/live-1/index.m3u8"
    wait_for(server, "live-1", lambda s: httpx.get(playlist, timeout=30).status_code == 200)  # on air
    r = httpx.delete(server.url + "/v1/channels/live-1", headers=server.headers(), timeout=90)
    assert r.status_code == 200 and r.json()["status"] == "stopped", r.json()
    listed = parse_playlist(httpx.get(playlist, timeout=30).text)
    assert not listed.ended  # stopped, not ended: a new POST continues it
    assert {c["name"]: c["status"] for c in httpx.get(server.url + "/v1/channels", timeout=30).json()["channels"]} \
        == {"svc-3": "ended", "live-1": "stopped"}


def test_kill9_of_the_service_resumes_the_channel_after_a_discontinuity(tmp_path):
    s = Server(data=tmp_path / "data", port=free_port())
    s.data.mkdir()
    s.start()
    try:
        body = channel("crash-1", [short_recipe(slot_id=1, seed=3, duration=1.5, script="Still here."),
                                   short_recipe(slot_id=2, seed=4, duration=1.5, script="And again.")])
        assert post(s, body, pace="asap").status_code == 201
        wait_for(s, "crash-1", lambda st: st["counts"]["slots"] >= 3)
        s.kill9()
        folder = s.data / "channels" / "crash-1"
        old = parse_playlist((folder / "index.m3u8").read_text())
        listed_before = old.segments
        before = listed_digests(folder, old)
        s.start()
        wait_for(s, "crash-1", lambda st: len(parse_playlist(httpx.get(
            f"{s.url}/v1/channels/crash-1/index.m3u8", timeout=30).text).segments) > len(listed_before) + 1)
        text, segments = fetch_stream(s, "crash-1", tmp_path / "after")
        after = parse_playlist(text)
        assert [g.uri for g in after.segments[:len(listed_before)]] == [g.uri for g in listed_before]
        for uri, digest in before.items():  # no listed segment, part or init lost or rewritten
            r = httpx.get(f"{s.url}/v1/channels/crash-1/{uri}", timeout=30)
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == digest, uri
        assert "#EXT-X-DISCONTINUITY" in text
        vpts, apts, pcm, priming, _ = decode(tmp_path / "after")  # the fetched stream decodes without a gap
        assert len(vpts) == sum(round(g.duration_sec * FPS) for g in after.segments)
        assert set(np.diff(vpts)) == {TS // FPS}
    finally:
        s.stop()


def test_ll_hls_blocking_reload_returns_the_part_asked_for_and_parts_are_served(server, tmp_path):
    """A realtime channel over `vortex serve`: `index.m3u8?_HLS_msn=M&_HLS_part=N` for the part after
    the last listed one is held until that part is published and answered with a playlist that
    lists it; the part, the hinted part (asked for before it exists) and the init segment are
    served, immutable; directives the spec rejects are 400; a wait that outlasts 3 target
    durations (the channel stopped) is 503."""
    body = channel("ll-1", [short_recipe(slot_id=1, seed=3, duration=2.0, script="Live, and low latency.")])
    assert post(server, body).status_code == 201  # pace realtime: parts follow the wall clock
    base = f"{server.url}/v1/channels/ll-1"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        r = httpx.get(base + "/index.m3u8", timeout=30)
        if r.status_code == 200 and len(parse_playlist(r.text).segments) >= 1 and parse_playlist(r.text).open:
            break
        time.sleep(0.3)
    now = parse_playlist(r.text)
    assert now.part_target == 0.5 and now.open is not None, r.text
    msn, index = now.next_msn, len(now.open.parts)
    assert not now.has_part(msn, index)

    r = httpx.get(base + "/index.m3u8", params={"_HLS_msn": msn, "_HLS_part": index}, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apple.mpegurl"
    got = parse_playlist(r.text)
    assert got.has_part(msn, index), r.text  # held until the part asked for was published
    parts = got.open.parts if got.next_msn == msn else got.segments[msn - got.media_sequence].parts
    asked = parts[index] if index < len(parts) else got.open.parts[0]  # past a segment's last: the next one's 0
    for uri in (asked.uri, got.open.map_uri if got.open else got.segments[-1].map_uri):
        m = httpx.get(f"{base}/{uri}", timeout=30)
        assert m.status_code == 200 and m.headers["content-type"] == "video/mp4", uri
        assert m.headers["cache-control"] == "public, max-age=86400, immutable"

    # The hinted part, asked for straight away (usually before it exists: the request is held until it does).
    folder = server.data / "channels" / "ll-1"
    hint = parse_playlist((folder / "index.m3u8").read_text()).preload_hint
    m = httpx.get(f"{base}/{hint}", timeout=30)
    assert m.status_code == 200 and m.content == (folder / hint).read_bytes(), hint

    r = httpx.get(base + "/index.m3u8", params={"_HLS_msn": got.next_msn}, timeout=30)  # a whole segment
    assert r.status_code == 200 and parse_playlist(r.text).next_msn > got.next_msn

    # Every part listed now, with the init segment, decodes to exactly the frames it claims.
    listed = parse_playlist(r.text)
    uris = [p.uri for s in listed.segments for p in s.parts] + [p.uri for p in (listed.open.parts if listed.open else ())]
    init = httpx.get(f"{base}/{listed.segments[-1].map_uri}", timeout=30).content
    data = init + b"".join(httpx.get(f"{base}/{u}", timeout=30).content for u in uris)
    (tmp_path / "all.mp4").write_bytes(data)
    with av.open(str(tmp_path / "all.mp4")) as c:
        vpts = [f.pts for f in c.decode(video=0)]
    claimed = sum(round(p.duration_sec * FPS) for s in listed.segments for p in s.parts)
    claimed += sum(round(p.duration_sec * FPS) for p in (listed.open.parts if listed.open else ()))
    assert len(vpts) == claimed and set(np.diff(vpts)) == {TS // FPS}

    for params, status in (({"_HLS_part": 0}, 400), ({"_HLS_msn": "x"}, 400),
                           ({"_HLS_msn": listed.next_msn + 5}, 400),
                           ({"_HLS_msn": listed.next_msn + 1, "_HLS_part": 40}, 400)):
        assert httpx.get(base + "/index.m3u8", params=params, timeout=30).status_code == status, params
    for bad in ("init.mp4", "part-1.0.m4s", "part-00001.0.mp4", "..%2Findex.m3u8", "part-99999.0.m4s"):
        assert httpx.get(f"{base}/{bad}", timeout=30).status_code == 404, bad

    assert httpx.delete(base, headers=server.headers(), timeout=90).status_code == 200
    stopped = parse_playlist(httpx.get(base + "/index.m3u8", timeout=30).text)
    assert stopped.open is None and stopped.preload_hint is None and not stopped.ended
    r = httpx.get(base + "/index.m3u8", params={"_HLS_msn": stopped.next_msn, "_HLS_part": 0}, timeout=30)
    assert r.status_code == 503, r.text  # nothing more comes: 3 target durations, then Service Unavailable


def live(server: Server, name: str, body, token: bool = True) -> httpx.Response:
    text = body if isinstance(body, str) else json.dumps(body)
    headers = server.headers(**{"Content-Type": "application/json"}) if token else {"Content-Type": "application/json"}
    return httpx.post(f"{server.url}/v1/channels/{name}/live", content=text, headers=headers, timeout=60)


def test_a_live_insert_over_http_and_the_command_line_client(server, tmp_path):
    """POST /v1/channels/{name}/live (and `vortex channel live`): 202 with its air time, listed with its
    state and chunk checks, aired within the channel's delay line, counted in the metrics; bad input
    names the field; a channel that is not on air is 409."""
    insert = short_recipe(slot_id=40, seed=40, duration=2.5, script="Breaking news from the harbour tonight.")
    assert live(server, "nope", {"recipe": insert}).status_code == 404
    body = channel("news-live", [short_recipe(slot_id=1, seed=3, duration=2.0, script="Good evening."),
                                 short_recipe(slot_id=2, seed=4, duration=2.0, script="More news soon.")],
                   live_delay_sec=8.0)  # generous: this machine runs the tests beside other work
    assert post(server, body, max_slots=8).status_code == 201
    playlist = server.url + "/v1/channels/news-live/index.m3u8"
    wait_for(server, "news-live", lambda s: httpx.get(playlist, timeout=30).status_code == 200)

    bad = [({"recipe": {**insert, "audio_track": {"script": "Hi.", "voice_id": "nobody"}}},
            "recipe.audio_track.voice_id"),
           ({"recipe": insert, "at": "later"}, "at"),
           ({"recipe": insert, "when": "now"}, "when"),
           ({"recipe": "news.json"}, "recipe"),
           ({"recipe": short_recipe(actor_image="/etc/passwd")}, "recipe.visual_track.actor_image"),
           ({"recipe": {**insert, "slot_params": {"slot_id": 4, "duration_sec": 2.0, "fps": 25}}}, "recipe.slot_params.fps")]
    for case, field in bad:
        r = live(server, "news-live", case)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (case, r.text)
    assert live(server, "news-live", {"recipe": insert}, token=False).status_code == 401

    r = live(server, "news-live", {"recipe": insert, "at": "now"})
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert set(accepted) >= {"id", "air_time", "duration_sec", "state"} and accepted["duration_sec"] == 2.5
    assert accepted["state"] == "making" and r.headers["location"] == "/v1/channels/news-live"

    token_file = tmp_path / "token"
    token_file.write_text(server.token)
    token_file.chmod(0o600)
    recipe_file = tmp_path / "next.json"
    recipe_file.write_text(json.dumps(short_recipe(slot_id=41, seed=41, duration=2.0, script="And now the weather.")))
    exe = shutil.which("vortex") or str(Path(sys.executable).parent / "vortex")
    cli = subprocess.run([exe, "channel", "live", "news-live", str(recipe_file), "--at", "next",
                          "--url", server.url, "--token-file", str(token_file), "--wait"],
                         capture_output=True, text=True, timeout=240)
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "live insert live-" in cli.stdout and cli.stdout.rstrip().endswith("aired")

    shown = wait_for(server, "news-live", lambda s: s["counts"]["inserts"]["aired"] == 2)
    first = next(i for i in shown["inserts"] if i["id"] == accepted["id"])
    assert first["air_time"] == accepted["air_time"] or first["air_time"] >= accepted["air_time"]
    assert first["chunks"] and all(c["state"] == "aired" and c["speech_passed"] for c in first["chunks"])
    assert first["published_after_s"] is not None and shown["definition"]["live_delay_sec"] == 8.0
    metrics = httpx.get(server.url + "/metrics", timeout=30).text
    assert 'vortex_channel_inserts_total{channel="news-live",state="aired"} 2.0' in metrics
    assert 'vortex_channel_insert_publish_seconds_count{channel="news-live"} 2.0' in metrics

    assert httpx.delete(server.url + "/v1/channels/news-live", headers=server.headers(), timeout=90).status_code == 200
    r = live(server, "news-live", {"recipe": insert})
    assert r.status_code == 409 and "not on air" in r.json()["error"]["message"]


def test_kill9_during_a_live_insert_resumes_after_a_discontinuity(tmp_path):
    """The node dies while an insert is on air: a restart resumes the channel at the next slot after a
    DISCONTINUITY, every file listed before the kill (the insert's parts too) unchanged, and the
    insert recorded as interrupted."""
    s = Server(data=tmp_path / "data", port=free_port())
    s.data.mkdir()
    s.start()
    try:
        body = channel("crash-live", [short_recipe(slot_id=1, seed=3, duration=2.0, script="Still here."),
                                      short_recipe(slot_id=2, seed=4, duration=2.0, script="And again.")],
                       live_delay_sec=6.0)
        assert post(s, body).status_code == 201
        folder = s.data / "channels" / "crash-live"
        wait_for(s, "crash-live", lambda st: (folder / "index.m3u8").is_file())
        insert = short_recipe(slot_id=9, seed=9, duration=6.0, script="Breaking news: the bridge has reopened.")
        r = live(s, "crash-live", {"recipe": insert})
        assert r.status_code == 202, r.text
        wait_for(s, "crash-live", lambda st: st["inserts"] and st["inserts"][-1]["state"] == "on_air")
        time.sleep(1.5)  # a part or two of it listed
        s.kill9()
        old = parse_playlist((folder / "index.m3u8").read_text())
        before = listed_digests(folder, old)
        s.start()
        wait_for(s, "crash-live", lambda st: len(parse_playlist(httpx.get(
            f"{s.url}/v1/channels/crash-live/index.m3u8", timeout=30).text).segments) > len(old.segments) + 2)
        text = httpx.get(f"{s.url}/v1/channels/crash-live/index.m3u8", timeout=30).text
        after = parse_playlist(text)
        assert [g.uri for g in after.segments[:len(old.segments)]] == [g.uri for g in old.segments]
        for uri, digest in before.items():  # parts may go once unlisted (never rewritten); segments stay
            path = folder / uri
            if uri.startswith("part-") and not path.exists():
                continue
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, uri
        assert any(g.discontinuity for g in after.segments[len(old.segments):])
        shown = httpx.get(f"{s.url}/v1/channels/crash-live", timeout=30).json()["inserts"][-1]
        assert shown["state"] == "failed" and "interrupted while on_air" in shown["error"], shown
    finally:
        s.stop()
