"""`vortex channel live NAME RECIPE [--url URL] [--at now|next] [--token-file F]`: a breaking item
sent to a channel running in `vortex serve` (POST /v1/channels/{name}/live).

The recipe is read and checked here as `vortex generate` reads it (exit 2 naming the field); its
`actor_image`, a file on this machine, is uploaded first (POST /v1/portraits) and sent as its
`portrait:<sha256>` reference, since a recipe sent over HTTP may not name server files. Prints the
insert's id, air time and length; with `--wait` also each state until it has aired.
Exit status: 0 accepted (aired, with --wait), 1 the service refused or the insert failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8321"


def add_live_parser(csub) -> None:
    live = csub.add_parser("live", help="send a breaking item to a channel running in `vortex serve`")
    live.add_argument("name", help="the channel's name")
    live.add_argument("recipe", type=Path, help="the insert's recipe (JSON or YAML, as `vortex generate` reads)")
    live.add_argument("--url", default=DEFAULT_URL, help=f"the service (default {DEFAULT_URL})")
    live.add_argument("--at", choices=("now", "next"), default="now",
                      help="now: cut in as soon as its first sentence is checked; next: after the slot on air")
    live.add_argument("--token-file", type=Path, help="the service's bearer token (mode 600), when it has one")
    live.add_argument("--wait", action="store_true", help="follow the insert until it has aired")
    live.set_defaults(func=_live)


def _live(args: argparse.Namespace) -> int:
    import httpx

    from ..recipe import Recipe

    recipe = Recipe.from_file(args.recipe)  # a bad recipe: exit 2 naming the field, before any request
    body = recipe.model_dump(mode="json", exclude_none=True)
    headers = {}
    if args.token_file is not None:
        headers["Authorization"] = f"Bearer {args.token_file.read_text(encoding='utf-8').strip()}"
    url = args.url.rstrip("/")
    err = sys.stderr
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            image = recipe.visual_track.actor_image
            if image and not image.startswith("portrait:"):
                with open(image, "rb") as f:
                    r = client.post("/v1/portraits", files={"file": (Path(image).name, f)})
                if r.status_code != 200:
                    return _refused(r, "uploading visual_track.actor_image")
                body["visual_track"]["actor_image"] = r.json()["ref"]
            r = client.post(f"/v1/channels/{args.name}/live", json={"recipe": body, "at": args.at})
            if r.status_code != 202:
                return _refused(r, f"channel '{args.name}'")
            insert = r.json()
            print(f"live insert {insert['id']} on {args.name}: airs {insert['air_time']} "
                  f"for {insert['duration_sec']:g} s ({insert['state']})")
            if not args.wait:
                return 0
            return _follow(client, args.name, insert["id"])
    except httpx.TransportError as exc:
        print(f"vortex channel live: cannot reach {url}: {exc}", file=err)
        return 1


def _follow(client, name: str, insert_id: str) -> int:
    seen = None
    while True:
        r = client.get(f"/v1/channels/{name}")
        row = next((i for i in r.json().get("inserts", []) if i["id"] == insert_id), None) if r.status_code == 200 else None
        if row is not None and row["state"] != seen:
            seen = row["state"]
            print(f"  {seen}" + (f": {row['error']}" if row.get("error") else ""))
        if seen in ("aired", "failed"):
            return 0 if seen == "aired" else 1
        time.sleep(0.5)


def _refused(r, what: str) -> int:
    try:
        detail = r.json().get("error") or r.json()
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except (ValueError, AttributeError):
        detail = r.text[:300]
    print(f"vortex channel live: {what}: HTTP {r.status_code}: {json.dumps(detail) if not isinstance(detail, str) else detail}",
          file=sys.stderr)
    return 1
