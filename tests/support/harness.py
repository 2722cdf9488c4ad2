"""Real `vortex serve` processes on loopback, driven over HTTP: for tests/test_service*.py,
test_web.py, the channel tests and benchmarks/bench_service.py, bench_ray_channels.py (needs httpx,
a test dependency, so it lives with the tests, not in the package)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx

READY_TIMEOUT_S = 120.0  # the engine loads in ~13 s on 2 cores; the first run also builds miniatures


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    data: Path
    port: int
    token: Optional[str] = None
    args: list[str] = field(default_factory=list)
    proc: Optional[subprocess.Popen] = None
    log_path: Optional[Path] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> "Server":
        cmd = [sys.executable, "-m", "vortex.service", "--data", str(self.data), "--port", str(self.port), *self.args]
        if self.token is not None:
            token_file = self.data.parent / f"{self.data.name}.token"
            token_file.write_text(self.token + "\n")
            token_file.chmod(0o600)
            cmd += ["--token-file", str(token_file)]
        self.log_path = self.data.parent / f"{self.data.name}.{self.port}.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server not ready after {READY_TIMEOUT_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def headers(self, **extra: str) -> dict[str, str]:
        h = dict(extra)
        if self.token is not None:
            h["Authorization"] = f"Bearer {self.token}"
        return h

    def submit(self, recipe: Any, **headers: str) -> httpx.Response:
        return httpx.post(self.url + "/v1/slots", content=json.dumps(recipe), timeout=30,
                          headers=self.headers(**{"Content-Type": "application/json", **headers}))

    def job(self, job_id: str) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/v1/slots/{job_id}", timeout=30)
        r.raise_for_status()
        return r.json()

    def wait_state(self, job_id: str, states: set[str], timeout: float = 120.0,
                   phases: Optional[set[str]] = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] in states and (phases is None or job["phase"] in phases):
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not in {states} (phases {phases}) after {timeout} s: {self.job(job_id)}")

    def events(self, job_id: str, timeout: float = 120.0) -> Iterator[tuple[str, dict[str, Any]]]:
        """The SSE stream as (event, data) pairs, to its end."""
        with httpx.stream("GET", f"{self.url}/v1/slots/{job_id}/events", timeout=timeout) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            kind, data = None, None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    kind = line[len("event: "):]
                elif line.startswith("data: "):
                    data = json.loads(line[len("data: "):])
                elif line == "" and kind is not None:
                    yield kind, data
                    if kind == "end":
                        return
                    kind, data = None, None

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 90.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def start_all(nodes: list[Server]) -> list[Server]:
    """Start several servers at once (each makes its --data folder), then wait until all are ready."""
    for n in nodes:
        n.data.mkdir()
        n.start(wait=False)
    for n in nodes:
        n.wait_ready()
    return nodes


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
