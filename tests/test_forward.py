"""The helper that hands a request to the node running a channel (service/channels/forward.py): it passes the
owner's answer on, never loops, and says why when no node can answer (503 with Retry-After, 502)."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

from starlette.requests import Request

from vortex.service.channels.forward import ANSWERED_BY, FORWARDED_BY, _send, forward_to_owner
from vortex.service.store.channels import ChannelRow

ME = "node-a:11"


def row(owner="node-b:22", url="http://node-b.internal:8321", leased=True) -> ChannelRow:
    return ChannelRow(name="news", state="on", definition={}, pace="realtime", max_slots=None, created=0.0,
                      updated=0.0, error=None, owner=owner, owner_url=url, term=4, acquired=90.0, lease_s=8.0,
                      lease_expires=108.0 if leased else 99.0, stop_requested=False, now=100.0)


def request(**headers: str) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in {"Authorization": "Bearer t0k", "Content-Type": "application/json",
                                                         "Cookie": "private", **headers}.items()]
    return Request({"type": "http", "method": "POST", "path": "/v1/channels/news/live", "query_string": b"at=next",
                    "headers": raw, "scheme": "http", "server": ("127.0.0.1", 8321), "root_path": ""})


STATE = SimpleNamespace(channels=SimpleNamespace(leases=SimpleNamespace(owner=ME)))


def forward(r: ChannelRow, req: Request, send=None):
    calls = []

    def fake(method, url, body, headers, timeout):
        calls.append((method, url, body, headers))
        if send is not None:
            return send()
        return 202, "application/json", b'{"queued": true}'

    return asyncio.run(forward_to_owner(STATE, r, req, b'{"text": "breaking"}', send=fake)), calls


def test_the_owner_serves_it_itself():
    answer, calls = forward(row(owner=ME), request())
    assert answer is None and calls == []


def test_another_owner_gets_the_request_and_its_answer_comes_back():
    answer, calls = forward(row(), request())
    (method, url, body, headers), = calls
    assert (method, url, body) == ("POST", "http://node-b.internal:8321/v1/channels/news/live?at=next",
                                   b'{"text": "breaking"}')
    assert headers == {"authorization": "Bearer t0k", "content-type": "application/json", FORWARDED_BY: ME}
    assert answer.status_code == 202 and answer.body == b'{"queued": true}' and answer.headers[ANSWERED_BY] == "node-b:22"


def test_no_loop_no_owner_and_a_dead_owner_are_said_plainly():
    answer, calls = forward(row(), request(**{FORWARDED_BY: "node-c:33"}))
    assert calls == [] and answer.status_code == 503 and "node-c:33" in json.loads(answer.body)["error"]["message"]
    answer, calls = forward(row(leased=False), request())
    assert calls == [] and answer.status_code == 503 and answer.headers["retry-after"] == "1"

    def refused():
        raise ConnectionRefusedError(111, "Connection refused")
    answer, _ = forward(row(), request(), send=refused)
    assert answer.status_code == 502 and "node-b:22" in json.loads(answer.body)["error"]["message"]


def test_send_passes_the_owners_errors_on():
    class Owner(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            code = 409 if self.path.endswith("busy") else 200
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps({"got": body.decode(), "by": self.headers[FORWARDED_BY]}).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Owner)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, ctype, body = _send("POST", base + "/x", b"hi", {FORWARDED_BY: ME, "Content-Type": "text/plain"}, 10)
        assert (status, ctype, json.loads(body)) == (200, "application/json", {"got": "hi", "by": ME})
        status, _, body = _send("POST", base + "/busy", b"", {FORWARDED_BY: ME}, 10)
        assert status == 409 and json.loads(body)["by"] == ME
    finally:
        server.shutdown()
