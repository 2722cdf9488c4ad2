"""How far behind the wall clock hls.js plays the channel's stream in headless Chromium, and whether it stalls.

    python benchmarks/bench_llhls_player.py [--seconds 40] [--modes fmp4-ll ts-ll fmp4-plain]

A synthetic channel (moving 512² pattern + tone, 24 fps) is written by ``HlsChannelWriter`` with the
channel's realtime pacing (each frame handed over one part before its air time) and served on
loopback with `vortex serve`'s LL-HLS code (vortex.service.channels.hls_serving: blocking playlist reload).
No engine runs, so this is the stream path alone. Modes:

- ``fmp4-ll``: the channel as shipped: fMP4 parts, hls.js ``lowLatencyMode`` (the channel page's config);
- ``ts-ll``: the same parts remuxed to MPEG-TS as they are published (the container choice);
- ``fmp4-plain``: the same stream played as plain HLS (``lowLatencyMode: false``, 3 segments back:
  what the channel page did before).

Per mode: wall clock − ``hls.playingDate`` sampled every second after the first 10 s, ``waiting``
events after playback started, hls.js errors, and the mean part size. The machine is a shared
2-core box: numbers move with its load, printed alongside.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import av
import numpy as np
from fastapi import FastAPI, HTTPException, Request  # module level: FastAPI resolves the annotations here
from fastapi.responses import FileResponse, HTMLResponse, Response

sys.path.insert(0, str(Path(__file__).parent))
from bench_encode import content  # noqa: E402

from vortex.bench.host import host_load  # noqa: E402
from vortex.bench.stats import Percentiles  # noqa: E402
from vortex.channel.hls import HlsChannelWriter  # noqa: E402
from vortex.channel.hls.pacing import WallClockPacer  # noqa: E402
from vortex.channel.hls.playlist import PLAYLIST_NAME  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HLSJS = Path(os.environ.get("VORTEX_HLSJS", ROOT / "build/hlsjs/node_modules/hls.js/dist/hls.min.js"))
FPS, SR, SIZE = 24, 24000, 512
CONFIGS = {
    "fmp4-ll": ("fmp4", "{lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.25}"),
    "ts-ll": ("ts", "{lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.25}"),
    "fmp4-plain": ("fmp4", "{lowLatencyMode: false, liveSyncDurationCount: 3}"),
}
PAGE = """<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0;background:#111">
<video id="v" autoplay muted playsinline style="width:512px;height:512px"></video>
<script src="/hls.min.js"></script><script>
const v = document.getElementById('v');
window.stats = {started: false, waiting: 0, errors: []};
const hls = new Hls(CONFIG); window.hls = hls;
hls.on(Hls.Events.ERROR, (e, d) => stats.errors.push(d.details + (d.fatal ? ' (fatal)' : '')));
v.addEventListener('playing', () => { stats.started = true; });
v.addEventListener('waiting', () => { if (stats.started) stats.waiting += 1; });
hls.loadSource('/FOLDER/index.m3u8'); hls.attachMedia(v);
hls.on(Hls.Events.MANIFEST_PARSED, () => v.play());
</script></body></html>"""


class TsMirror:
    """Remuxes every published fMP4 part to MPEG-TS and keeps a TS twin of the playlist beside it."""

    def __init__(self, source: Path, folder: Path) -> None:
        self.source, self.folder = source, folder
        folder.mkdir(parents=True, exist_ok=True)
        self.init: bytes | None = None
        self.sizes: list[int] = []

    def on_part(self, part) -> None:
        if self.init is None:
            self.init = next(self.source.glob("init-*.mp4")).read_bytes()
        data = _to_ts(self.init + (self.source / part.uri).read_bytes())
        self.sizes.append(len(data))
        _write(self.folder / part.uri.replace(".m4s", ".ts"), data)
        segment = part.uri.split(".")[0].replace("part-", "seg-") + ".m4s"
        if (self.source / segment).is_file() and not (self.folder / segment.replace(".m4s", ".ts")).exists():
            parts = sorted(self.folder.glob(part.uri.split(".")[0] + ".*.ts"), key=lambda p: int(p.name.split(".")[1]))
            _write(self.folder / segment.replace(".m4s", ".ts"), b"".join(p.read_bytes() for p in parts))
        text = (self.source / PLAYLIST_NAME).read_text()
        text = "\n".join(line for line in text.splitlines() if not line.startswith("#EXT-X-MAP")) + "\n"
        _write(self.folder / PLAYLIST_NAME, text.replace(".m4s", ".ts").encode())


def _write(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_bytes(data)
    os.replace(temp, path)


def _to_ts(mp4: bytes) -> bytes:
    out = io.BytesIO()
    with av.open(io.BytesIO(mp4), format="mp4") as src, av.open(out, "w", format="mpegts",
                                                                 options={"mpegts_copyts": "1"}) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.size:
                packet.stream = streams[packet.stream.index]
                dst.mux(packet)
    return out.getvalue()


def write_channel(folder: Path, seconds: float, mirror: TsMirror | None, stop: threading.Event) -> None:
    frames = content("moving", 96, SIZE)
    n = round(seconds * FPS)
    writer = HlsChannelWriter(folder, width=SIZE, height=SIZE, fps=FPS, sample_rate=SR,
                              program_start=datetime.now(timezone.utc) + timedelta(seconds=1),
                              on_part=mirror.on_part if mirror else None)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n * SR // FPS) / SR)).astype(np.float32)
    writer.append_slot(WallClockPacer(writer, 0.5, stop)([frames[i % 96] for i in range(n)]), tone)
    writer.close(end=False)


def serve(root: Path):
    import uvicorn

    from vortex.service.channels.hls_serving import playlist_response

    app = FastAPI()

    @app.get("/hls.min.js")
    def hlsjs():
        return Response(HLSJS.read_bytes(), media_type="text/javascript")

    @app.get("/{mode}/page")
    def page(mode: str):
        folder, config = CONFIGS[mode]
        return HTMLResponse(PAGE.replace("CONFIG", config).replace("FOLDER", folder))

    @app.get("/{folder}/index.m3u8")
    async def playlist(folder: str, request: Request):
        return await playlist_response(root / folder, request.query_params, "not yet")

    @app.get("/{folder}/{name}")
    def media(folder: str, name: str):
        path = root / folder / name
        if folder not in ("fmp4", "ts") or "/" in name or not path.is_file():
            raise HTTPException(404)
        return FileResponse(path, media_type="video/mp2t" if name.endswith(".ts") else "video/mp4")

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def chromium(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    return webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))


def play(url: str, mode: str, seconds: float, profile: Path) -> dict:
    driver = chromium(profile)
    try:
        driver.get(f"{url}/{mode}/page")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not driver.execute_script("return stats.started"):
            time.sleep(0.2)
        started = time.monotonic()
        behind = []
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
            lag = driver.execute_script("return hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : null")
            if lag is not None and time.monotonic() - started > 10:
                behind.append(lag)
        stats = driver.execute_script("return stats")
    finally:
        driver.quit()
    return {"behind": behind, **stats}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="playback per mode")
    parser.add_argument("--modes", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    args = parser.parse_args(argv)
    if not HLSJS.is_file():
        raise SystemExit(f"hls.js not found at {HLSJS}: npm install --prefix build/hlsjs hls.js@1.7")
    with tempfile.TemporaryDirectory(prefix="vortex-bench-llhls-") as tmp:
        root = Path(tmp)
        mirror = TsMirror(root / "fmp4", root / "ts") if "ts-ll" in args.modes else None
        stop = threading.Event()
        total = args.seconds * len(args.modes) + 30 * len(args.modes) + 10
        writer = threading.Thread(target=write_channel, args=(root / "fmp4", total, mirror, stop), daemon=True)
        writer.start()
        while not (root / "fmp4" / PLAYLIST_NAME).is_file() or (mirror and not (root / "ts" / PLAYLIST_NAME).is_file()):
            time.sleep(0.1)
        time.sleep(6)  # a few segments listed before the first viewer joins
        server, url = serve(root)
        load = host_load()
        version = json.loads((HLSJS.parents[1] / "package.json").read_text()).get("version", "?")
        print(f"bench_llhls_player · hls.js {version} in headless Chromium · synthetic 512² channel, "
              f"0.5 s parts, paced 0.5 s ahead of air" + (f" · load average {load[0]:.2f}" if load else ""))
        try:
            for mode in args.modes:
                r = play(url, mode, args.seconds, root / f"profile-{mode}")
                b = Percentiles.of(r["behind"]) if r["behind"] else None
                size = ""
                if mode.startswith("ts") and mirror and mirror.sizes:
                    size = f" · mean part {np.mean(mirror.sizes) / 1024:.1f} KiB"
                elif mode.startswith("fmp4"):
                    parts = list((root / "fmp4").glob("part-*.m4s"))
                    size = f" · mean part {np.mean([p.stat().st_size for p in parts]) / 1024:.1f} KiB" if parts else ""
                lags = f"min {b.min:.2f} p50 {b.p50:.2f} p95 {b.p95:.2f} max {b.max:.2f} s" if b else "no playback"
                print(f"  {mode:10s} wall − playingDate {lags} · waiting {r['waiting']} · "
                      f"errors {sorted(set(r['errors'])) or 'none'}{size}")
        finally:
            stop.set()
            server.should_exit = True
            writer.join(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
