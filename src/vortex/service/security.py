"""The service's safety rules: where it may listen, who may change things, which files a recipe
sent over HTTP may name, and how big a request may be.

- Only loopback without a token: any other bind address needs `--token-file` (exit 2 otherwise).
- With a token, every POST and DELETE needs `Authorization: Bearer <token>` (401 otherwise);
  compared in constant time.
- A recipe from the network names no server path: `visual_track.actor_image` must be a
  `portrait:<sha256>` reference that `POST /v1/portraits` returned; `driving_source` (a pickled
  motion template: loading a pickle runs code) cannot be sent over HTTP at all until a templates
  endpoint serves vetted ones.
"""

from __future__ import annotations

import copy
import hmac
import ipaddress
import re
import stat
from pathlib import Path
from typing import Any, Optional

from ..errors import RecipeError, VortexError

RECIPE_MAX_BYTES = 256 * 1024  # the longest recipe (a 45 s script) is under 4 KiB
UPLOAD_MAX_BYTES = 20 * 1024 * 1024  # a portrait PNG at 40 MP is far over what a 512² slot uses
PORTRAIT_REF = re.compile(r"^portrait:([0-9a-f]{64})$")
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost"})


class ServeSetupError(VortexError):
    """`vortex serve` was started with settings it refuses (exit 2)."""


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_token(path: Optional[Path]) -> Optional[str]:
    """The bearer token: the file's first line, at least 16 characters, in a file others cannot read."""
    if path is None:
        return None
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ServeSetupError(f"--token-file '{path}': cannot be read: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServeSetupError(f"--token-file '{path}': is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                              f"run `chmod 600 {path}`")
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if len(token) < 16:
        raise ServeSetupError(f"--token-file '{path}': the token must be at least 16 characters on the first line "
                              f"(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}`)")
    return token


def check_bind(host: str, token: Optional[str]) -> None:
    if token is None and not is_loopback(host):
        raise ServeSetupError(
            f"--host {host}: refusing to listen beyond this machine without a token; "
            "pass --token-file FILE (every POST and DELETE then needs 'Authorization: Bearer <token>') "
            "or bind 127.0.0.1")


def bearer_ok(header: Optional[str], token: str) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def portrait_path(portraits_dir: Path, digest: str) -> Path:
    return portraits_dir / f"{digest}.png"


def resolve_references(data: Any, portraits_dir: Path) -> Any:
    """The recipe (bare or wrapped) with `portrait:` references replaced by the stored files'
    paths; a RecipeError naming the field for anything that names a file of its own."""
    if not isinstance(data, dict):
        return data  # Recipe.from_dict says what is wrong with the shape
    data = copy.deepcopy(data)
    inner = data["recipe"] if isinstance(data.get("recipe"), dict) else data
    visual = inner.get("visual_track")
    if not isinstance(visual, dict):
        return data
    if visual.get("driving_source") is not None:
        raise RecipeError("visual_track.driving_source",
                          "motion templates cannot be sent over HTTP (a template is a pickle, and loading one runs "
                          "code); remove the field, or run `vortex generate` with a template on the server")
    ref = visual.get("actor_image")
    if ref is None:
        return data
    match = PORTRAIT_REF.match(ref) if isinstance(ref, str) else None
    if match is None:
        raise RecipeError("visual_track.actor_image",
                          f"over HTTP an actor image must be a 'portrait:<sha256>' reference returned by "
                          f"POST /v1/portraits, got {ref!r} (a recipe sent to the server cannot name its files)")
    path = portrait_path(portraits_dir, match.group(1))
    if not path.is_file():
        raise RecipeError("visual_track.actor_image",
                          f"no portrait {ref!r} on this server; upload the image with POST /v1/portraits first")
    visual["actor_image"] = str(path.resolve())
    return data


def portrait_reference(path: str | None, portraits_dir: Path) -> Optional[str]:
    """The stored recipe's resolved path, shown back to clients as its reference."""
    if path is None:
        return None
    p = Path(path)
    if p.parent.resolve() == portraits_dir.resolve() and p.suffix == ".png":
        return f"portrait:{p.stem}"
    return None
