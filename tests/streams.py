"""Helpers of the channel tests: decode a listed HLS stream, drive Debian's headless Chromium."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import av
import numpy as np

from vortex.channel import read_playlist

FPS, SR, TS = 24, 24000, 90_000


def decode(folder: Path):
    """(video pts, audio packet pts, pcm, priming samples, frames) of the whole listed stream."""
    data = b"".join((folder / s.uri).read_bytes() for s in read_playlist(folder).segments)
    with av.open(io.BytesIO(data), format="mpegts") as c:
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(c.streams.video[0])]
    with av.open(io.BytesIO(data), format="mpegts") as c:
        chunks = [(f.pts, f.to_ndarray().reshape(-1)) for f in c.decode(c.streams.audio[0])]
        v_start, a_start = c.streams.video[0].start_time, c.streams.audio[0].start_time
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
