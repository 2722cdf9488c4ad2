"""The web view's routes: four pages and their static files, served from `vortex/service/web/static/`.

The pages are plain HTML; their JavaScript reads the job id from the page's own URL and talks to
the JSON API (`/v1/slots...`) like any other client, so the server inserts nothing into the
HTML and there is nothing to escape here. No build step, no CDN: everything is under `static/`,
except hls.js (the channel page's player), installed from npm by `scripts/setup-hlsjs` into
build/hlsjs/ (or named by $VORTEX_HLSJS) and served from there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).parents[1] / "web" / "static"
HLSJS_VERSION = "1.7.4"  # scripts/setup-hlsjs installs exactly this
_HLSJS_BUILT = Path(__file__).resolve().parents[4] / "build/hlsjs/node_modules/hls.js/dist/hls.min.js"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}

# hls.js plays through Media Source Extensions (a blob: URL) and demuxes in a blob: worker.
# Only our own scripts and the API's origin: a script injected through a job's text could not run
# even if an escape were missed ('self' only, no inline script, no eval).
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _files() -> dict[str, Path]:
    """The servable files, by name: a fixed listing, so a request can never name another path."""
    return {p.name: p for p in STATIC.iterdir() if p.is_file() and p.suffix in _TYPES}


def _serve(name: str) -> FileResponse:
    path = _files().get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}; "
                                                    f"there are: {', '.join(sorted(_files()))}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_HEADERS)


@router.get("/")
def jobs_page() -> FileResponse:
    """The jobs, live, and the form that submits a recipe."""
    return _serve("index.html")


@router.get("/submit")
def submit_page() -> RedirectResponse:
    """The form lives on the jobs page, so a submitted job appears right under it."""
    return RedirectResponse("/#submit", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> FileResponse:
    """One job: player, phase timeline, verification charts. `job_id` is read by the page's script."""
    return _serve("job.html")


@router.get("/channels/{name}")
def channel_page(name: str) -> FileResponse:
    """One channel: the live player (hls.js), on air now, the next slots, every decision."""
    return _serve("channel.html")


def hlsjs_path() -> Optional[Path]:
    env = os.environ.get("VORTEX_HLSJS")
    path = Path(env) if env else _HLSJS_BUILT
    return path if path.is_file() else None


@router.get("/static/hls.min.js")
def hlsjs() -> FileResponse:
    path = hlsjs_path()
    if path is None:
        raise HTTPException(status_code=404, detail=f"hls.js is not installed on this server: run `bash "
                            f"scripts/setup-hlsjs` (npm hls.js@{HLSJS_VERSION}) or set VORTEX_HLSJS to hls.min.js")
    return FileResponse(path, media_type=_TYPES[".js"], headers=_HEADERS)


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    return _serve(name)
