"""The web view in a real headless Chromium against a real `vortex serve` on loopback.

One slot (the demo recipe, 6 s) is submitted through the jobs page's form and made by the
engine; then the jobs page must list it as succeeded, the job page's <video> must play the MP4
(currentTime advances in real time), and the timeline and charts must be drawn from its sidecar.
The test saves the job page under tmp_path; with VORTEX_UPDATE_DOCS=1 it also refreshes docs/web-view.png.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from support.harness import Server, free_port

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "rick_intro.json"
SCREENSHOT = ROOT / "docs" / "web-view.png"
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
# Flags that work in this container: no sandbox (root), no GPU, nothing phoning home.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000"]
SLOT_TIMEOUT_S = 240  # the demo slot takes ~20 s on 2 cores; a loaded CI box may be several times slower

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver on PATH (apt-get install -y chromium chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(data=tmp_path_factory.mktemp("web") / "data", port=free_port())
    srv.start()
    yield srv
    try:
        srv.terminate(timeout=60)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_script_timeout(20)
    yield driver
    driver.quit()


def wait_for(browser, css: str, timeout: float = 15.0, text: str | None = None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d):
        els = d.find_elements(By.CSS_SELECTOR, css)
        if text is None:
            return els or False
        return [e for e in els if text in e.text] or False

    return WebDriverWait(browser, timeout).until(found, f"no element {css!r}" + (f" with {text!r}" if text else ""))


def js_errors(browser) -> list[str]:
    """Script errors on the pages; an HTTP error answer (a 422 we provoked) is logged as 'network'."""
    return [e["message"] for e in browser.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]


def submit_through_form(browser, server: Server, recipe_text: str) -> str:
    """Type the recipe into the jobs page's form, press Submit, return what the page said."""
    from selenium.webdriver.common.by import By

    browser.get(server.url + "/")
    area = wait_for(browser, "#recipe")[0]
    # set the value directly: send_keys would type 600 characters one by one
    browser.execute_script("arguments[0].value = arguments[1];", area, recipe_text)
    browser.find_element(By.ID, "submit-button").click()
    return wait_for(browser, "#submit-result", text=" ")[0]


def test_pages_and_static_files_are_served_with_a_strict_policy(server):
    for path in ("/", "/jobs/anything"):
        r = httpx.get(server.url + path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
    css = httpx.get(server.url + "/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # only the package's own files, by name: no path reaches outside static/
    for bad in ("/static/routes.py", "/static/..%2Froutes.py", "/static/nope.js"):
        r = httpx.get(server.url + bad)
        assert r.status_code == 404, bad
    r = httpx.get(server.url + "/submit", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/#submit"


def test_a_bad_recipe_from_the_form_shows_the_field_as_text(server, browser):
    from selenium.webdriver.common.by import By

    recipe = json.loads(DEMO.read_text())
    recipe["audio_track"]["voice_id"] = "<img src=x id=injected>"
    before = httpx.get(server.url + "/v1/slots").json()["slots"]
    said = submit_through_form(browser, server, json.dumps(recipe))
    assert "refused" in said.text and "audio_track.voice_id" in said.text
    assert "<img src=x id=injected>" in said.text  # shown as text ...
    assert not browser.find_elements(By.ID, "injected")  # ... never parsed as HTML
    assert httpx.get(server.url + "/v1/slots").json()["slots"] == before  # nothing queued

    said = submit_through_form(browser, server, "{not json")
    assert "recipe: not valid JSON" in said.text
    assert js_errors(browser) == []


def test_a_submitted_slot_is_listed_plays_and_is_charted(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    said = submit_through_form(browser, server, DEMO.read_text())
    assert said.text.startswith("queued "), said.text
    job_id = said.find_element(By.CSS_SELECTOR, "a.job-link").text
    job = server.wait_state(job_id, {"succeeded", "failed", "cancelled"}, timeout=SLOT_TIMEOUT_S)
    assert job["state"] == "succeeded", job["error"]
    sidecar = httpx.get(server.url + job["links"]["result"]).json()

    # the jobs page (still open, polling every second) shows it succeeded, with its checks
    row = wait_for(browser, f'#jobs tr[data-id="{job_id}"]', text="succeeded", timeout=10)[0]
    assert len(row.find_elements(By.CSS_SELECTOR, ".check")) == 4

    row.find_element(By.CSS_SELECTOR, "a.job-link").click()
    wait_for(browser, "#job-state.succeeded")
    wait_for(browser, "#timeline svg rect.span")

    # the <video> plays the MP4 (H.264 + AAC): currentTime advances ~2 s in 2 s
    video = browser.find_element(By.ID, "video")
    state = browser.execute_async_script("""
        const [v, done] = arguments;
        const go = () => v.play().then(() => done({ok: true}), (e) => done({ok: false, why: String(e)}));
        if (v.readyState >= 2) go(); else { v.addEventListener('canplay', go, {once: true});
          v.addEventListener('error', () => done({ok: false, why: 'media error ' + (v.error && v.error.code)})); }
    """, video)
    assert state["ok"], f"the video does not play in {CHROMIUM}: {state.get('why')}"
    t0 = browser.execute_script("return arguments[0].currentTime", video)
    time.sleep(2.0)
    t1, width, duration, err = browser.execute_script(
        "const v = arguments[0]; return [v.currentTime, v.videoWidth, v.duration, v.error && v.error.code];", video)
    assert err is None and width == 512 and abs(duration - 6.0) < 0.1, (err, width, duration)
    assert t1 - t0 > 1.0, f"currentTime went {t0:.2f} → {t1:.2f} s in 2 s"

    # the timeline: one bar per phase span, voice ‖ actor, then video ‖ speech_check, then verify
    bars = {e.get_attribute("data-phase"): e for e in browser.find_elements(By.CSS_SELECTOR, "#timeline rect.span")}
    assert set(sidecar["spans_ms"]) == set(bars)

    def span(phase):
        b = bars[phase]
        x, w = float(b.get_attribute("x")), float(b.get_attribute("width"))
        return x, x + w

    def overlap(a, b):
        return span(a)[0] < span(b)[1] and span(b)[0] < span(a)[1]

    assert overlap("voice", "actor") and overlap("video", "speech_check")
    assert span("verify")[0] >= span("video")[1] - 1 and span("video")[0] >= span("actor")[1]

    # the charts: two CLIP series with a point per scored frame, a bar per identity distance, gauges
    v = sidecar["verification"]
    paths = browser.find_elements(By.CSS_SELECTOR, "#clip svg path.series")
    assert len(paths) == 2
    for p in paths:
        assert p.get_attribute("d").count("L") == len(v["frame_indices"]) - 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "#clip svg line.ref")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#identity svg rect.bar")) == len(v["identity"]["distances"])
    for chart, value in (("lipsync", v["lip_sync"]["r"]), ("speech", v["speech"]["wer"])):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{chart} svg rect.bar"), chart
        shown = float(browser.find_element(By.CSS_SELECTOR, f"#{chart} svg text.value").text)
        assert shown == pytest.approx(value, abs=5e-4), chart
    assert v["speech"]["transcript"] in browser.find_element(By.ID, "transcript").text

    # the speech, chunk by chunk: each sentence as it was made, then as it was heard
    chunks = browser.find_elements(By.CSS_SELECTOR, "#chunks li[data-sentence]")
    assert len(chunks) == len(sidecar["chunks"]) >= 2
    assert all("heard, WER" in c.text and "✓" in c.text for c in chunks), [c.text for c in chunks]
    facts = browser.find_element(By.ID, "facts").text
    assert "first audio" in facts and "first frame" in facts
    assert sidecar["provenance"]["signed"] and "C2PA, AI-generated (trainedAlgorithmicMedia), signed by" in facts
    # the Content Credentials section: the verdict of this node's verifier (POST /v1/verify), not the sidecar's
    verdict = wait_for(browser, "#credentials .verdict", timeout=60)[0]
    report = httpx.post(server.url + "/v1/verify", files={"job": (None, job_id)}, timeout=120).json()
    assert verdict.get_attribute("data-verdict") == report["verdict"] == "verified", report["reasons"]
    shown = browser.find_element(By.ID, "credentials").text
    assert report["credentials"]["signer"] in shown and "yes, under this node's CA" in shown
    assert "c2pa.created · digitalSourceType trainedAlgorithmicMedia" in shown
    assert f"found: node tag {report['watermark']['node_tag']}, slot {report['watermark']['slot_id']}" in shown
    assert "kokoro " + report["credentials"]["slot"]["models"]["kokoro"]["sha256"][:16] in shown
    assert "PRIVATE KEY" not in browser.page_source
    assert js_errors(browser) == []

    # the screenshot: the whole page, the video paused on a frame
    browser.execute_script("const v = arguments[0]; v.pause(); v.currentTime = 2.0;", video)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height + 140)  # the window's frame takes ~140 px of its height
    time.sleep(0.5)
    shot = tmp_path / "web-view.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("VORTEX_UPDATE_DOCS") == "1":  # the README's screenshot: refreshed on request only
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    # one changed frame in the job's MP4: the page, loaded again, says what the verifier finds
    import av

    (mp4,) = [p for p in server.data.rglob("video.mp4") if job_id in p.parts]
    with av.open(str(mp4)) as c:
        packet = sorted((p for p in c.demux(c.streams.video[0]) if p.size), key=lambda p: p.pts)[20]
    data = bytearray(mp4.read_bytes())
    data[packet.pos + packet.size // 2] ^= 0xFF
    mp4.write_bytes(bytes(data))
    browser.get(server.url + f"/jobs/{job_id}")
    assert wait_for(browser, "#credentials .verdict", timeout=60)[0].get_attribute("data-verdict") == "not verified"
    assert "frame 20 differs" in browser.find_element(By.ID, "credentials").text


def test_a_cancelled_job_shows_its_exact_seed_and_no_player(server, browser):
    from selenium.webdriver.common.by import By

    from support.recipes import short_recipe

    job = server.submit(short_recipe(slot_id=7)).json()  # no seed: the server draws one below 2^63
    httpx.delete(f"{server.url}/v1/slots/{job['id']}", timeout=30)
    job = server.wait_state(job["id"], {"cancelled", "failed", "succeeded"}, timeout=60)
    assert job["state"] == "cancelled"
    browser.get(server.url + "/jobs/" + job["id"])
    wait_for(browser, "#job-state.cancelled")
    facts = dict(zip([e.text for e in browser.find_elements(By.CSS_SELECTOR, "#facts dt")],
                     [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#facts dd")]))
    assert facts["seed"] == str(job["seed"])  # past 2^53 a JS number would print another seed
    assert not browser.find_element(By.ID, "video").is_displayed()
    assert "cancelled" in browser.find_element(By.ID, "job-error").text
