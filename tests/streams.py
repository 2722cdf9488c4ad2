"""Helpers of the channel tests: decode a listed HLS stream, drive Debian's headless Chromium, and
start, watch and fetch a channel in a `vortex serve` process."""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import av
import httpx
import numpy as np

from vortex.channel.hls import parse_playlist, read_playlist
from support.harness import Server

FPS, SR, TS = 24, 24000, 90_000


def stream_bytes(folder: Path, uris=None) -> bytes:
    """The init segment + the listed segments (or ``uris``, e.g. parts) as one fragmented MP4."""
    playlist = read_playlist(folder)
    maps = {s.map_uri for s in playlist.segments}
    assert len(maps) == 1 and None not in maps, f"one fMP4 init segment expected, the playlist names {maps}"
    uris = [s.uri for s in playlist.segments] if uris is None else uris
    return b"".join((folder / uri).read_bytes() for uri in [maps.pop(), *uris])


def decode(folder: Path, uris=None):
    """(video pts, audio packet pts, pcm, priming samples, frames) of the whole listed stream; every
    time in 90 kHz ticks (the fMP4 audio track counts samples: converted)."""
    data = stream_bytes(folder, uris)
    with av.open(io.BytesIO(data), format="mp4") as c:
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]
    with av.open(io.BytesIO(data), format="mp4") as c:
        chunks = [(f.pts * TS // SR, f.to_ndarray().reshape(-1)) for f in c.decode(c.streams.audio[0])]
        v_start, a_start = c.streams.video[0].start_time, c.streams.audio[0].start_time * TS // SR
    priming = (v_start - a_start) * SR // TS
    return ([p for p, _ in frames], [p for p, _ in chunks], np.concatenate([a for _, a in chunks]), priming,
            [f for _, f in frames])


def chromium(profile: Path):
    """Debian's headless Chromium through its chromedriver, allowed to autoplay (with sound)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}", "--window-size=600,600"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def post(server: Server, body, **params) -> httpx.Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return httpx.post(server.url + "/v1/channels", params=params, content=text, timeout=60,
                      headers=server.headers(**{"Content-Type": "application/json"}))


def status(server: Server, name: str) -> dict:
    r = httpx.get(f"{server.url}/v1/channels/{name}", timeout=30)
    r.raise_for_status()
    return r.json()


def wait_for(server: Server, name: str, ok, timeout: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = status(server, name)
        if ok(s):
            return s
        assert s["status"] != "failed", s
        time.sleep(0.5)
    raise AssertionError(f"channel {name} not there after {timeout} s: {status(server, name)}")


def fetch_stream(server: Server, name: str, into) -> tuple[str, dict[str, bytes]]:
    """The playlist, its init segment and every segment it lists, over HTTP, written to `into` for decoding."""
    base = f"{server.url}/v1/channels/{name}"
    r = httpx.get(base + "/index.m3u8", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert r.headers["cache-control"] == "no-cache"
    into.mkdir(parents=True, exist_ok=True)
    (into / "index.m3u8").write_text(r.text)
    segments = {}
    listed = parse_playlist(r.text).segments
    for uri in sorted({seg.map_uri for seg in listed if seg.map_uri}) + [seg.uri for seg in listed]:
        s = httpx.get(f"{base}/{uri}", timeout=30)
        assert s.status_code == 200 and s.headers["content-type"] == "video/mp4", (uri, s.headers)
        assert "immutable" in s.headers["cache-control"]
        segments[uri] = s.content
        (into / uri).write_bytes(s.content)
    return r.text, segments
