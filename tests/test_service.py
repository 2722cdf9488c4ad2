"""`vortex serve` as a real process on loopback with the real cpu-preview engine (Kokoro speech, a
real face): submit → SSE → MP4, bad input, idempotency, cancel, auth and path rules, kill -9 and
SIGTERM. One token-protected server is shared by the tests in file order; the last test kills it.
"""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys

import httpx
import numpy as np
import pytest

from vortex.errors import RecipeError
from vortex.media import probe_mp4
from vortex.recipe import Recipe
from support.harness import Server, free_port
from support.recipes import short_recipe
from vortex.service.store.jobs import JobStore

N_FRAMES, N_SAMPLES = 36, 36000  # 1.5 s at 24 fps, 24 kHz
LATE_PHASES = {"video", "speech_check", "verify"}  # video and the speech check start together: mid-slot


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(data=tmp_path_factory.mktemp("serve") / "data", port=free_port(), token=secrets.token_urlsafe(24))
    s.data.mkdir()
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def portrait_png() -> bytes:
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buf, format="PNG")  # public domain; a real face
    return buf.getvalue()


@pytest.fixture(scope="module")
def portrait_ref(server, portrait_png) -> str:
    r = httpx.post(server.url + "/v1/portraits", files={"file": ("astronaut.png", portrait_png, "image/png")},
                   headers=server.headers(), timeout=30)
    assert r.status_code == 201, r.text
    return r.json()["ref"]


def _count(server) -> int:
    return len(httpx.get(server.url + "/v1/slots?limit=500", timeout=10).json()["slots"])


def test_refuses_a_public_address_without_a_token(tmp_path):
    cmd = [sys.executable, "-m", "vortex.service", "--host", "0.0.0.0", "--data", str(tmp_path / "d")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--host 0.0.0.0" in p.stderr and "--token-file" in p.stderr
    loose = tmp_path / "token"
    loose.write_text("x" * 32)
    loose.chmod(0o644)
    p = subprocess.run(cmd + ["--token-file", str(loose)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "chmod 600" in p.stderr


def test_submit_streams_events_then_serves_the_mp4(server, tmp_path):
    key = secrets.token_hex(8)
    r = server.submit(short_recipe(slot_id=3), **{"Idempotency-Key": key})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] == "queued" and isinstance(job["seed"], int)  # drawn at submission when absent
    assert job["links"]["video"] == f"/v1/slots/{job['id']}/video.mp4"
    again = server.submit(short_recipe(slot_id=3), **{"Idempotency-Key": key})
    assert again.status_code == 200 and again.json()["id"] == job["id"]

    events = list(server.events(job["id"]))
    kinds = [k for k, _ in events]
    assert kinds[0] == "state" and kinds[-2:] == ["result", "end"], kinds
    started = [d["phase"] for k, d in events if k == "phase_started"]
    assert {"voice", "actor", "video", "verify"} <= set(started), started
    assert "first_frame" in kinds
    progress = [d["data"] for k, d in events if k == "progress"]
    assert progress[-1] == {"frames": N_FRAMES, "total": N_FRAMES}
    assert events[-1][1]["state"] == "succeeded"

    done = server.job(job["id"])
    assert done["state"] == "succeeded" and done["attempts"] == 1 and done["error"] is None
    assert done["seed"] == job["seed"] and done["proof"]["proof_sha256"]
    assert done["timings"]["video"] > 0 and done["verification"]["frame_indices"]

    video = httpx.get(server.url + done["links"]["video"], timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    (tmp_path / "v.mp4").write_bytes(video.content)
    info = probe_mp4(tmp_path / "v.mp4")
    assert (info.n_frames, info.n_audio_samples) == (N_FRAMES, N_SAMPLES)
    vtt = httpx.get(server.url + done["links"]["captions"], timeout=30)  # the script's words
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt"), vtt.text
    assert " ".join(l for l in vtt.text.splitlines()[1:] if l and "-->" not in l).split() == \
        short_recipe()["audio_track"]["script"].split()

    part = httpx.get(server.url + done["links"]["video"], headers={"Range": "bytes=100-1123"}, timeout=30)
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-1123/{len(video.content)}"
    assert part.content == video.content[100:1124]

    sidecar = httpx.get(server.url + done["links"]["result"], timeout=30).json()
    assert sidecar["proof"] == done["proof"] and sidecar["n_frames"] == N_FRAMES

    # a late subscriber gets the whole history, then the end
    replay = [k for k, _ in server.events(job["id"])]
    assert replay[-1] == "end" and "first_frame" in replay

    listed = httpx.get(server.url + "/v1/slots?state=succeeded&limit=1", timeout=10).json()["slots"]
    assert [j["id"] for j in listed] == [job["id"]]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'vortex_slot_seconds_count{outcome="succeeded"} 1.0' in metrics
    assert 'vortex_jobs{state="succeeded"} 1.0' in metrics
    assert 'vortex_phase_seconds_count{phase="video"} 1.0' in metrics
    assert 'vortex_verification_score_count{score="ensemble"} 1.0' in metrics
    assert sidecar["loudness"]["target_lufs"] == -23.0
    assert f'vortex_loudness_integrated_lufs_last{{source="job"}} {sidecar["loudness"]["integrated_lufs"]}' in metrics


def _cli_message(data) -> str:
    with pytest.raises(RecipeError) as exc:
        Recipe.from_dict(data)
    return str(exc.value)


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r["slot_params"].update(duration_sec=99), "slot_params.duration_sec"),
    (lambda r: r["audio_track"].update(speed=2.5), "audio_track.speed"),
    (lambda r: r["audio_track"].pop("script"), "audio_track.script"),
    (lambda r: r["audio_track"].update(emotion="furious"), "audio_track.emotion"),
])
def test_a_bad_recipe_is_422_with_the_cli_message_and_queues_nothing(server, mutate, field):
    before = _count(server)
    bad = short_recipe()
    mutate(bad)
    r = server.submit(bad)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {"field": field, "message": _cli_message(bad)}
    assert _count(server) == before


def test_a_bad_body_or_an_unknown_voice_is_422(server):
    before = _count(server)
    for body, field in (("{not json", "recipe"), ("[1, 2]", "recipe"), (b"\xff\xfe\x00x", "recipe")):
        r = httpx.post(server.url + "/v1/slots", content=body, headers=server.headers(), timeout=10)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    r = server.submit(short_recipe() | {"audio_track": {"script": "Hi there.", "voice_id": "nobody"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "audio_track.voice_id"
    assert "rick_c137" in r.json()["error"]["message"]  # names what is allowed
    assert _count(server) == before


def test_mutating_requests_need_the_token(server, portrait_png):
    before = _count(server)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": server.token}):
        r = httpx.post(server.url + "/v1/slots", content=json.dumps(short_recipe()), headers=headers, timeout=10)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert httpx.delete(server.url + "/v1/slots/abc", headers=headers, timeout=10).status_code == 401
        r = httpx.post(server.url + "/v1/portraits", files={"file": ("a.png", portrait_png)}, headers=headers)
        assert r.status_code == 401
    assert _count(server) == before
    assert httpx.get(server.url + "/v1/slots", timeout=10).status_code == 200  # reading needs none
    assert httpx.get(server.url + "/healthz", timeout=10).json() == {"status": "ok"}


def test_a_recipe_may_name_only_uploaded_portraits(server, portrait_ref, portrait_png):
    before = _count(server)
    for visual, field in (({"actor_image": "/etc/hostname"}, "visual_track.actor_image"),
                          ({"actor_image": "../portraits/x.png"}, "visual_track.actor_image"),
                          ({"actor_image": "portrait:" + "0" * 64}, "visual_track.actor_image"),
                          ({"driving_source": "/tmp/motion.pkl"}, "visual_track.driving_source")):
        r = server.submit(short_recipe(**visual))
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert _count(server) == before
    # the same bytes give the same reference; a file that is no image is refused by the image gate
    r = httpx.post(server.url + "/v1/portraits", files={"file": ("again.png", portrait_png)}, headers=server.headers())
    assert r.status_code == 201 and r.json()["ref"] == portrait_ref and r.json()["width"] == 512
    r = httpx.post(server.url + "/v1/portraits", files={"file": ("notes.txt", b"hello")}, headers=server.headers())
    assert r.status_code == 422 and r.json()["error"]["field"] == "file"
    assert "notes.txt" in r.json()["error"]["message"]


def test_bodies_over_the_limits_are_413(server):
    big = short_recipe(script="word " * 60_000)  # 300 KB > the 256 KiB recipe limit
    assert server.submit(big).status_code == 413
    chunked = httpx.post(server.url + "/v1/slots", content=iter([b"{" + b" " * 300_000]), headers=server.headers())
    assert chunked.status_code == 413
    huge = np.zeros(20 * 1024 * 1024 + 1, np.uint8).tobytes()
    r = httpx.post(server.url + "/v1/portraits", files={"file": ("big.png", huge)}, headers=server.headers(), timeout=60)
    assert r.status_code == 413


def test_a_second_server_on_the_same_data_is_refused(server):
    cmd = [sys.executable, "-m", "vortex.service", "--data", str(server.data), "--port", str(free_port())]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "another `vortex serve`" in p.stderr, p.stderr


def test_cancel_a_queued_and_a_running_job(server, portrait_ref):
    a = server.submit(short_recipe(slot_id=11, duration=3.0, actor_image=portrait_ref)).json()
    b = server.submit(short_recipe(slot_id=12)).json()
    assert a["actor_image"] == portrait_ref
    server.wait_state(a["id"], {"running"})
    r = httpx.delete(f"{server.url}/v1/slots/{b['id']}", headers=server.headers(), timeout=10)
    assert r.status_code == 202 and r.json()["state"] == "cancelled"
    assert [k for k, _ in server.events(b["id"], timeout=10)] == ["end"]

    r = httpx.delete(f"{server.url}/v1/slots/{a['id']}", headers=server.headers(), timeout=10)
    assert r.status_code == 202
    done = server.wait_state(a["id"], {"succeeded", "failed", "cancelled"}, timeout=60)
    assert done["state"] == "cancelled" and done["error"]["kind"] == "cancelled", done
    assert httpx.get(server.url + done["links"]["video"], timeout=10).status_code == 404
    again = httpx.delete(f"{server.url}/v1/slots/{a['id']}", headers=server.headers(), timeout=10)
    assert again.status_code == 409
    assert server.job(b["id"])["attempts"] == 0  # it never ran


def test_kill9_then_restart_completes_with_the_same_proof_and_sigterm_drains(server, portrait_ref, tmp_path):
    recipe = short_recipe(slot_id=21, seed=4242, actor_image=portrait_ref)
    k = server.submit(recipe).json()
    server.wait_state(k["id"], {"running"}, phases=LATE_PHASES)  # mid-slot
    server.kill9()

    s2 = Server(data=server.data, port=free_port(), token=server.token, args=["--grace-sec", "60"]).start()
    try:
        done = s2.wait_state(k["id"], {"succeeded", "failed"})
        assert done["state"] == "succeeded" and done["attempts"] == 2, done
        # attempt 2 wrote its own folder; attempt 1's staging files went with its folder
        assert [p.name for p in (server.data / "jobs" / k["id"]).iterdir()] == ["attempt-2"]
        assert sorted(p.name for p in (server.data / "jobs" / k["id"] / "attempt-2").iterdir()) == ["video.json", "video.mp4", "video.vtt"]
        # SIGTERM: the running job finishes within the grace period, the queued one is not started
        l_job = s2.submit(short_recipe(slot_id=22)).json()
        m_job = s2.submit(short_recipe(slot_id=23)).json()
        s2.wait_state(l_job["id"], {"running"})
        assert s2.terminate() == 0
    finally:
        s2.stop()
    store = JobStore(server.data / "jobs.sqlite3")
    assert store.get(l_job["id"]).state == "succeeded"
    assert (store.get(m_job["id"]).state, store.get(m_job["id"]).attempts) == ("queued", 0)
    store.close()

    # grace 0: the running slot is cancelled and goes back to the queue for the next process
    s3 = Server(data=server.data, port=free_port(), token=server.token, args=["--grace-sec", "0"]).start()
    try:
        s3.wait_state(m_job["id"], {"running"}, phases=LATE_PHASES)
        assert s3.terminate() == 0
    finally:
        s3.stop()
    store = JobStore(server.data / "jobs.sqlite3")
    m = store.get(m_job["id"])
    assert (m.state, m.attempts) == ("queued", 1)
    store.close()

    # the proof of the attempt that survived the kill equals a direct run of the same recipe and seed
    from support.engines import engine_of

    from vortex.config import VortexConfig
    from vortex.contracts.requests import SlotRequest

    portrait = server.data / "portraits" / (portrait_ref.split(":")[1] + ".png")
    direct_recipe = Recipe.from_dict(short_recipe(slot_id=21, seed=4242, actor_image=str(portrait)))
    with engine_of(VortexConfig.load()) as engine:
        result = engine.run(SlotRequest(recipe=direct_recipe, output=tmp_path / "direct.mp4"))
    assert result.success, result.error_msg
    assert result.proof == done["proof"]
