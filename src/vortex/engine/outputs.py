"""The one place that writes a slot's files: OUT.mp4, OUT.vtt (its captions), OUT.json, or OUT.failed.json.

Every file is written under a temporary name in the target's own folder and renamed into place,
so a reader sees the old file or the whole new one, never half of one. Temporary names carry the
writer's pid (`.OUT.mp4.<pid>.<hex>.partial.mp4`, `.OUT.json.<pid>.<hex>.tmp`): a run that was
killed (kill -9, power loss) leaves them behind, and the next run into the folder removes those
whose process is gone.

A failed slot never touches an existing OUT.mp4 or OUT.json: its report goes to OUT.failed.json.
What can be known before any work (a folder that does not exist or is not writable, a name too
long, a directory in the way) is refused up front as a `VortexError` (exit 2 in the CLI).
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from dataclasses import dataclass
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Optional

from ..contracts.captions import Cue
from ..errors import VortexError
from ..program.captions import webvtt

# `.NAME.<pid>.<8 hex>.partial.mp4` and `.NAME.<pid>.<8 hex>.tmp`: the temporary names this module
# makes; the longest suffix decides how long a name may be.
_TEMP = re.compile(r"^\..+\.(?P<pid>\d+)\.[0-9a-f]{8}\.(partial\.mp4|tmp)$")
_LONGEST_TEMP_EXTRA = len(".") + len(".4194304.") + 8 + len(".partial.mp4")  # pid_max is 2^22


class OutputError(VortexError):
    """A slot's output cannot be written; names the path and the OS's reason."""


def describe_os_error(path: Path | str, exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return f"cannot write '{path}': {reason}" + (f" (errno {exc.errno})" if exc.errno else "")


@dataclass(frozen=True)
class SlotOutput:
    """Where a slot's MP4 and its sidecars go, checked before the slot starts."""

    mp4: Path

    @property
    def sidecar(self) -> Path:
        return self.mp4.with_suffix(".json")

    @property
    def captions(self) -> Path:
        return self.mp4.with_suffix(".vtt")

    @property
    def failure_report(self) -> Path:
        return self.mp4.with_name(self.mp4.stem + ".failed.json")

    @classmethod
    def prepare(cls, path: str | Path, *, create_parent: bool = True) -> "SlotOutput":
        """Check that the slot's files can be written here, before any model runs."""
        mp4 = Path(path)
        if mp4.is_dir():
            raise OutputError(f"output '{mp4}' is a directory; name an .mp4 file (e.g. '{mp4 / 'slot.mp4'}')")
        if mp4.suffix.lower() != ".mp4":
            raise OutputError(f"output '{mp4}' must end in .mp4")
        out = cls(mp4)
        for target in (out.mp4, out.sidecar, out.captions, out.failure_report):
            if target.is_dir():
                raise OutputError(f"output '{target}' is a directory in the way of the slot's files")
        parent = mp4.parent
        if create_parent:
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create the output folder '{parent}': {exc.strerror or exc}") from None
        if not parent.is_dir():
            raise OutputError(f"output folder '{parent}' does not exist")
        out._check_name_length()
        out._probe_writable()
        remove_stale_temporaries(parent)
        return out

    # ---- writing ---------------------------------------------------------------------------------
    def staging_mp4(self) -> Path:
        """A fresh temporary name beside the MP4: the encoder writes here; `publish` renames it."""
        return _temp_name(self.mp4, "partial.mp4")

    def publish(self, staging: Path, sign: Optional[Callable[[Path, Path], Any]] = None) -> Any:
        """Rename the staging MP4 into place. `sign(src, dst)` (vortex.provenance) first writes the
        signed copy into a second temporary; what it returns (the sidecar's `provenance`) comes back."""
        info = None
        if sign is not None:
            signed = _temp_name(self.mp4, "partial.mp4")
            try:
                info = sign(staging, signed)
            except BaseException:
                signed.unlink(missing_ok=True)
                staging.unlink(missing_ok=True)
                raise
            staging.unlink(missing_ok=True)
            staging = signed
        try:
            os.replace(staging, self.mp4)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise OutputError(describe_os_error(self.mp4, exc)) from None
        return info

    def publish_captions(self, cues: Sequence[Cue]) -> None:
        """OUT.vtt, right after OUT.mp4 (vortex.program.captions); if it cannot be written, the MP4
        goes too: the slot did not complete."""
        try:
            write_text_atomic(self.captions, webvtt(cues))
        except OutputError:
            self.mp4.unlink(missing_ok=True)
            raise

    def write_report(self, metadata: dict[str, Any], *, success: bool) -> Path:
        """The sidecar of a successful slot (OUT.json, and any stale OUT.failed.json goes), or the
        failure report (OUT.failed.json; OUT.json and OUT.mp4 stay as they were)."""
        target = self.sidecar if success else self.failure_report
        write_text_atomic(target, json.dumps(metadata, indent=2) + "\n")
        if success:
            self.failure_report.unlink(missing_ok=True)
        return target

    # ---- checks -----------------------------------------------------------------------------------
    def _check_name_length(self) -> None:
        try:
            name_max = os.pathconf(self.mp4.parent, "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        longest = max(len(p.name.encode()) for p in (self.mp4, self.failure_report))
        if longest + _LONGEST_TEMP_EXTRA > name_max:
            allowed = name_max - _LONGEST_TEMP_EXTRA - len(".failed.json") + len(".mp4")
            raise OutputError(
                f"output name '{self.mp4.name}' is too long: this file system allows {name_max} bytes per "
                f"name and the slot's temporary files add {_LONGEST_TEMP_EXTRA}; use at most {allowed} bytes"
            )

    def _probe_writable(self) -> None:
        probe = _temp_name(self.mp4, "tmp")
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise OutputError(f"output folder '{self.mp4.parent}' is not writable: {exc.strerror or exc}") from None
        os.close(fd)
        probe.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary name; on any failure nothing is left behind."""
    tmp = _temp_name(path, "tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(describe_os_error(path, exc)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove this module's temporary files in `folder` whose writing process no longer runs."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        if _alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # it exists, owned by someone else
    return True


def _temp_name(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")
