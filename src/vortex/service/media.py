"""Where `vortex serve` keeps media: job MP4s and sidecars, uploaded portraits, channel folders.

    DIR/jobs/<id>/attempt-<n>/video.mp4, video.json | video.failed.json
    DIR/portraits/<sha256>.png
    DIR/channels/<name>/index.m3u8, seg-*.ts, channel.json, definition.json, slots/
    DIR/vortex-media.json          which job store the folder belongs to

DIR is `--media`, else `--data` (one node, as before). Several nodes sharing one `--db` share one
`--media` on a file system every node mounts: NFS (v4.1+), EFS, CephFS, or a Kubernetes
ReadWriteMany volume. Any node then serves any job's MP4 and result and any channel's playlist and
segments. What the file system must give, and what the writers rely on:

- rename within one directory is atomic (every file is written under a temporary name, fsynced,
  then renamed: a reader sees the old file or the whole new one);
- fsync reaches the server before it returns (NFS: no `async` export; EFS and CephFS do);
- close-to-open consistency: once the writer has closed and renamed a file, another node that
  opens it reads all of its bytes (NFS, EFS and CephFS give it; attribute caching can delay a
  *listing* by a few seconds, which is why a takeover reads the playlist, not the directory).

Two nodes never write one file: a job attempt writes only its own `attempt-<n>` folder (the
claim numbers attempts), a channel's folder is written only by the holder of its lease (fenced
before each append: store/lease.py), portraits are content-addressed (two uploads of one image
write two temporaries and rename the same bytes). Locks across nodes (`flock` over NFS) are not
used: ownership lives in the store.

The seam: the service asks a `Media` for every path it reads or writes (`LocalMedia` here). An
object store (S3) is the next step, on paper: segments and MP4s become objects (a PUT is atomic,
so no rename is needed; the playlist a PUT with `Cache-Control: no-cache`); readers get redirects
to presigned URLs, or a CDN in front; the channel writer needs a sink that uploads each finished
segment and then the playlist (in that order), and a resume that lists the playlist object
instead of a folder; `channel.json` moves into the store. S3's conditional writes
(`If-Match` on the playlist's ETag) would give storage-side fencing, which a shared file system
cannot: a stale owner's PUT of the playlist would fail.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

from .security import ServeSetupError

MARKER = "vortex-media.json"


class Media(Protocol):
    root: Path

    @property
    def portraits(self) -> Path: ...

    def job_dir(self, job_id: str, attempt: int) -> Path: ...

    def job_file(self, job_id: str, attempt: int, name: str) -> Optional[Path]: ...

    def channel_dir(self, name: str) -> Path: ...


@dataclass(frozen=True)
class LocalMedia:
    """Media in a folder: this node's own, or one every node mounts."""

    root: Path

    @property
    def portraits(self) -> Path:
        return self.root / "portraits"

    @property
    def channels(self) -> Path:
        return self.root / "channels"

    def job_dir(self, job_id: str, attempt: int) -> Path:
        """Where attempt `attempt` of a job writes: its own folder, so that a node that stalled past
        its lease and finishes late never overwrites the attempt that took the job over."""
        return self.root / "jobs" / job_id / f"attempt-{attempt}"

    def job_file(self, job_id: str, attempt: int, name: str) -> Optional[Path]:
        """A finished job's file: its last attempt's, else where jobs were kept before attempts had
        folders (DIR/jobs/<id>/NAME)."""
        for path in (self.job_dir(job_id, attempt) / name, self.root / "jobs" / job_id / name):
            if path.is_file():
                return path
        return None

    def channel_dir(self, name: str) -> Path:
        return self.channels / name


def open_media(root: Path, store_id: str, store_where: str, flag: str = "--media") -> LocalMedia:
    """The media folder, checked before the service starts: it exists (made if need be), takes an
    atomic write (temporary name, fsync, rename), and belongs to this job store (the marker file;
    written on first use). ServeSetupError names `flag` otherwise (exit 2)."""
    root = Path(root).resolve()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServeSetupError(f"{flag} {root}: cannot create the folder: {exc.strerror or exc}") from None
    _probe(root, flag)
    mine = {"store": store_id, "where": store_where}
    marker = root / MARKER
    if not marker.exists():
        _create_marker(marker, {**mine, "created": time.time()})
    theirs = _read_marker(marker, flag)
    if theirs.get("store") != store_id:
        raise ServeSetupError(
            f"{flag} {root}: this folder belongs to another job store ({theirs.get('where', 'unknown')}, id "
            f"{theirs.get('store')}), not this node's ({store_where}, id {store_id}); nodes share a --media folder "
            f"only with the same --db. Give this node its own {flag}, or, if this store replaces the old one for good, "
            f"delete {marker}")
    return LocalMedia(root)


def _probe(root: Path, flag: str) -> None:
    temp, final = root / f".probe.{os.getpid()}.{secrets.token_hex(4)}.tmp", root / f".probe.{secrets.token_hex(4)}"
    try:
        with open(temp, "x", encoding="utf-8") as f:
            f.write("vortex")
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, final)
        if final.read_text(encoding="utf-8") != "vortex":
            raise OSError(0, "a file renamed into place did not read back")
    except OSError as exc:
        raise ServeSetupError(f"{flag} {root}: not writable (a file written, fsynced and renamed there failed: "
                              f"{exc.strerror or exc}); give a folder this user can write") from None
    finally:
        temp.unlink(missing_ok=True)
        final.unlink(missing_ok=True)


def _create_marker(marker: Path, value: dict) -> None:
    """Written once: link() refuses an existing name, so two nodes starting at once agree on one."""
    temp = marker.with_name(f".{marker.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as f:
            json.dump(value, f)
            f.flush()
            os.fsync(f.fileno())
        os.link(temp, marker)
    except FileExistsError:
        pass  # another node wrote it first: read theirs
    finally:
        temp.unlink(missing_ok=True)


def _read_marker(marker: Path, flag: str) -> dict:
    try:
        value = json.loads(marker.read_text(encoding="utf-8"))
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    except (OSError, ValueError) as exc:
        raise ServeSetupError(f"{flag}: {marker} is unreadable ({exc}); it records which job store owns the "
                              "folder: delete it only if no other store's node uses this folder") from None
