"""The device check's bookkeeping: the time budget, the log, each section's result or error, and
check.json / check.md, saved after every section. Imported by check.py (which runs the sections)
and by sections.py (which fill it in), so neither imports the other."""

from __future__ import annotations

import contextlib
import json
import time
import traceback
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any


class Check:
    def __init__(self, out: Path, budget_s: float, dry_run: bool, kokoro_import: str):
        self.out, self.budget_s, self.dry_run = out, budget_s, dry_run
        self.t0 = time.perf_counter()
        self.results: dict[str, Any] = {"errors": [], "skipped": [], "kokoro_import": kokoro_import}
        self.md: list[str] = []

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def log(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.t0:6.1f} s] {text}", flush=True)

    @contextlib.contextmanager
    def section(self, name: str, needs_s: float):
        """Run a section if `needs_s` seconds are left; record an error and go on if it fails."""
        if self.left() < needs_s:
            line = f"{name}: SKIPPED, {self.left():.0f} s of budget left and it needs ~{needs_s:.0f} s"
            self.log(line)
            self.results["skipped"].append(line)
            self.md.append(f"\n_{line}_\n")
            yield False
            return
        self.log(f"--- {name} ({self.left():.0f} s left)")
        try:
            yield True
        except Exception as exc:  # a section's failure must not cost the others their numbers
            text = f"{name}: {type(exc).__name__}: {exc}"
            self.log("ERROR " + text)
            traceback.print_exc()
            self.results["errors"].append({"section": name, "error": text, "traceback": traceback.format_exc()})
            self.md.append(f"\n**{name} failed**: `{text.splitlines()[0][:300]}`\n")
        finally:
            self.save()

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "check.json").write_text(json.dumps(self.results, indent=2, default=_json) + "\n")
        (self.out / "check.md").write_text("\n".join(self.md) + "\n")


def _json(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
