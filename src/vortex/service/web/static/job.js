// The job page: state and facts, the live event stream while it runs (the first audio, each chunk
// of speech as it is made and then heard, the first frame, the frames), then the player, the phase
// timeline and the verification charts from the sidecar (result.json).
"use strict";

(() => {
  const parts = location.pathname.split("/").filter(Boolean); // ["jobs", "<id>"]
  const id = decodeURIComponent(parts[1] || "");
  const $ = (x) => document.getElementById(x);
  const video = $("video");
  let stream = null;
  let shown = null; // the state whose result is on the page
  let timer = null;

  $("job-id").textContent = id;
  document.title = "Vortex — job " + id;

  function fact(dl, term, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(Vx.el("dt", {}, term));
    dl.appendChild(Vx.el("dd", {}, typeof value === "object" && !(value instanceof Node) ? JSON.stringify(value) : value));
  }

  function renderJob(job, sidecar) {
    const st = $("job-state");
    st.textContent = job.state;
    st.className = "state " + job.state;
    const dl = Vx.clear($("facts"));
    fact(dl, "phase", job.phase || (job.state === "queued" ? "waiting" : null));
    fact(dl, "attempts", job.attempts === undefined ? null : String(job.attempts));
    fact(dl, "seed", job.seed === undefined || job.seed === null ? null : String(job.seed));
    fact(dl, "submitted", Vx.fmtDate(job.created));
    fact(dl, "started", job.started ? Vx.fmtDate(job.started) : null);
    fact(dl, "finished", job.finished ? Vx.fmtDate(job.finished) : null);
    fact(dl, "took", job.started ? Vx.fmtSeconds(Vx.took(job)) : null);
    if (sidecar) {
      fact(dl, "profile", sidecar.profile);
      if (Array.isArray(sidecar.stand_ins) && sidecar.stand_ins.length) fact(dl, "stand-ins", sidecar.stand_ins.join(", "));
      if (sidecar.n_frames) fact(dl, "frames", sidecar.n_frames + " at " + sidecar.fps + " fps, " + sidecar.n_samples + " samples");
      fact(dl, "generation", Vx.fmtMs(sidecar.generation_time_ms));
      fact(dl, "first audio", sidecar.first_audio_ms ? "at " + Vx.fmtMs(sidecar.first_audio_ms) : null);
      fact(dl, "first frame", sidecar.first_frame_ms ? "at " + Vx.fmtMs(sidecar.first_frame_ms) : null);
      fact(dl, "priority", sidecar.priority);
      const pv = sidecar.provenance;  // Content Credentials (docs/provenance.md): who signed the MP4, or why not
      if (pv) fact(dl, "credentials", pv.signed
        ? "C2PA, AI-generated (trainedAlgorithmicMedia), signed by " + pv.signer + (pv.development_key ? " (development key)" : "")
          + " · watermarked"
        : "none: " + (pv.why || "not signed"));
    } else {
      fact(dl, "first audio", live.first_audio);
      fact(dl, "first frame", live.first_frame);
    }
    const v = (sidecar && sidecar.verification) || job.verification;
    if (Vx.checks(v).length) fact(dl, "checks", Vx.checkBadges(v));
    const err = $("job-error");
    const e = job.error || (sidecar && sidecar.error_msg);
    err.hidden = !e;
    err.textContent = e ? (typeof e === "object" ? (e.message || JSON.stringify(e)) : String(e)) : "";
  }

  const live = {}; // first audio / first frame of a running job, from its events

  // One line per chunk of speech: when it was made, what it says; then whether it was heard.
  function chunkLine(c) {
    const list = $("chunks");
    if (list.dataset.filled !== "1") { Vx.clear(list); list.dataset.filled = "1"; }
    const li = Vx.el("li", { "data-sentence": String(c.sentence) },
      Vx.el("span", { class: "at" }, Number.isFinite(c.at_ms) ? Vx.fmtMs(c.at_ms) : ""),
      Vx.el("span", {}, "sentence " + c.sentence + " · " + Vx.num(c.start_s, 2) + " s + " + Vx.num(c.seconds, 2) +
            " s · “" + c.text + "”"),
      Vx.el("span", { class: "heard muted" }, " …"));
    list.appendChild(li);
  }

  function heardLine(h) {
    for (const k of h.sentences || []) {
      // A long first sentence is made in two chunks (the bounded first chunk): both rows get its verdict.
      for (const li of $("chunks").querySelectorAll('li[data-sentence="' + k + '"]')) {
        const mark = li.querySelector(".heard");
        mark.className = "heard " + (h.passed ? "ok" : "bad");
        mark.textContent = " · heard, WER " + Vx.num(h.wer, 2) + (h.judged === false ? " (not judged)" : h.passed ? " ✓" : " ✗");
      }
    }
  }

  function addEvent(ev) {
    if (ev.kind === "chunk" && ev.data) chunkLine({ ...ev.data, at_ms: ev.at_ms });
    if (ev.kind === "chunk_checked" && ev.data) heardLine(ev.data);
    if (ev.kind === "first_audio" || ev.kind === "first_frame") {
      live[ev.kind] = "at " + Vx.fmtMs(ev.at_ms);
      const dl = $("facts");
      const term = ev.kind === "first_audio" ? "first audio" : "first frame";
      if (![...dl.querySelectorAll("dt")].some((dt) => dt.textContent === term)) fact(dl, term, live[ev.kind]);
    }
    const list = $("events");
    let what = ev.kind + (ev.phase ? " " + ev.phase : "");
    if (ev.kind === "progress" && ev.data && ev.data.total) what += " " + ev.data.frames + "/" + ev.data.total;
    if (ev.kind === "phase_done" && ev.data && Number.isFinite(ev.data.ms)) what += " (" + Vx.fmtMs(ev.data.ms) + ")";
    if (ev.kind === "phase_failed" && ev.data && ev.data.error) what += ": " + ev.data.error;
    if (ev.kind === "chunk" && ev.data) what = "chunk " + ev.data.index + " made (" + Vx.num(ev.data.seconds, 2) + " s of speech)";
    if (ev.kind === "chunk_checked" && ev.data) what = "sentence " + ev.data.sentences.join("+") + " heard, WER " + Vx.num(ev.data.wer, 2);
    if (ev.kind === "state") what = "state " + ev.state + (ev.attempts ? " (attempt " + ev.attempts + ")" : "");
    const at = Number.isFinite(ev.at_ms) ? Vx.fmtMs(ev.at_ms) : "";
    // progress events come per frame: keep one line for them, updated in place
    const last = list.lastElementChild;
    if (ev.kind === "progress" && last && last.dataset.kind === "progress") {
      last.lastChild.textContent = what;
      last.firstChild.textContent = at;
    } else {
      const li = Vx.el("li", { "data-kind": ev.kind }, Vx.el("span", { class: "at" }, at), Vx.el("span", {}, what));
      list.appendChild(li);
      while (list.children.length > 200) list.removeChild(list.firstChild);
      list.scrollTop = list.scrollHeight;
    }
    if (ev.kind === "progress" && ev.data && ev.data.total) {
      const p = $("progress");
      p.hidden = false;
      p.querySelector(".bar-inner").style.width = (100 * ev.data.frames / ev.data.total).toFixed(1) + "%";
      p.querySelector("span").textContent = "video " + ev.data.frames + " / " + ev.data.total + " frames";
    }
    if (ev.phase) {
      const dd = $("facts").querySelector("dd");
      if (dd && $("facts").querySelector("dt").textContent === "phase") dd.textContent = ev.phase;
    }
    if ((ev.kind === "result" || ev.kind === "phase_failed") && !shown) load();
  }

  function charts(sidecar, job) {
    const v = (sidecar && sidecar.verification) || job.verification || null;
    if (sidecar && sidecar.spans_ms) Charts.timeline($("timeline"), sidecar.spans_ms, sidecar.generation_time_ms);
    else Charts.empty($("timeline"), "Phases", "This result records no phase spans.");
    if (!v) {
      for (const n of ["clip", "identity", "lipsync", "speech"]) Vx.clear($(n));
      $("clip").appendChild(Vx.el("p", { class: "muted" }, "No verification: the job did not reach it."));
      return;
    }
    const clipCap = Charts.verdict(v) || Vx.el("p", {});
    clipCap.insertBefore(document.createTextNode("ensemble " + Vx.num(v.ensemble) + " vs threshold " +
                         Vx.num(v.threshold) + " · "), clipCap.firstChild);
    const refs = [{ label: "B floor", value: v.threshold_b, cls: "b" }, { label: "L floor", value: v.threshold_l, cls: "l" },
                  { label: "threshold", value: v.threshold, cls: "limit" }].filter((r) => Number.isFinite(r.value));
    Charts.lines($("clip"), {
      title: "CLIP cosine (image ↔ prompt) per frame", xs: v.frame_indices, refs, caption: clipCap,
      series: [{ label: "ViT-B/32", values: v.cosine_b || [], cls: "b" }, { label: "ViT-L/14", values: v.cosine_l || [], cls: "l" }],
    });
    const id = v.identity;
    if (id && Array.isArray(id.distances)) {
      Charts.bars($("identity"), { title: "Identity distance to the portrait", xs: id.frame_indices, values: id.distances,
                                   limit: id.max_distance, limitLabel: "max", caption: Charts.verdict(id) });
    } else Charts.empty($("identity"), "Identity distance to the portrait", "Not measured.");
    const ls = v.lip_sync;
    if (ls && Number.isFinite(ls.r)) {
      const cap = Charts.verdict(ls);
      cap.insertBefore(document.createTextNode("lag " + Vx.num(ls.lag_ms, 0) + " ms, " + ls.frames_measured +
                       " frames measured · "), cap.firstChild);
      Charts.gauge($("lipsync"), { title: "Lip-sync correlation r", value: ls.r, limit: ls.floor, limitLabel: "floor",
                                   better: "higher", lo: 0, hi: 1, caption: cap });
    } else Charts.empty($("lipsync"), "Lip-sync correlation r", "Not measured.");
    const sp = v.speech;
    if (sp && Number.isFinite(sp.wer)) {
      Charts.gauge($("speech"), { title: "Speech word error rate", value: sp.wer, limit: sp.max_wer, limitLabel: "max",
                                  better: "lower", lo: 0, hi: 1, caption: Charts.verdict(sp) });
      $("transcript").textContent = sp.transcript ? "Heard: “" + sp.transcript + "”" : "";
    } else Charts.empty($("speech"), "Speech word error rate", "Not measured.");
  }

  async function sidecarOf(job) {
    try { return await Vx.api(Vx.linksOf(job).result); } catch (_) { return null; }
  }

  async function load() {
    clearTimeout(timer);
    let job;
    try {
      job = await Vx.api("/v1/slots/" + encodeURIComponent(id));
    } catch (err) {
      renderJob({ state: err.status === 404 ? "unknown" : "unreachable", error: err.message }, null);
      video.hidden = err.status === 404;
      if (err.status !== 404) timer = setTimeout(load, 2000);
      return;
    }
    const links = Vx.linksOf(job);
    const finished = Vx.FINISHED.has(job.state);
    if (!finished) {
      renderJob(job, null);
      if (!stream) stream = Vx.followEvents(links.events, addEvent, () => {
        stream = null;  // ended (or cut): look at the job again soon, not in a tight loop
        clearTimeout(timer);
        timer = setTimeout(load, 250);
      });
      timer = setTimeout(load, 2000); // the stream may be cut; the job's state is the truth
      return;
    }
    if (stream) { stream.close(); stream = null; }
    if (shown === job.state) return;
    shown = job.state;
    // a finished job's stream replays its history, then ends: the log of how it went
    if (!$("events").children.length) Vx.followEvents(links.events, addEvent, null);
    const sidecar = await sidecarOf(job);
    renderJob(job, sidecar);
    if (sidecar && Array.isArray(sidecar.chunks) && $("chunks").dataset.filled !== "1") {
      sidecar.chunks.forEach(chunkLine);
      const sp = sidecar.verification && sidecar.verification.speech;
      if (sp && Array.isArray(sp.sentences)) sp.sentences.forEach(heardLine);
    }
    if (job.state === "succeeded") {
      video.src = links.video;
      $("video-note").textContent = "";
      $("video-note").appendChild(Vx.el("a", { href: links.video }, "video.mp4"));
      $("video-note").appendChild(document.createTextNode(" · "));
      $("video-note").appendChild(Vx.el("a", { href: links.result }, "result.json"));
      Credentials.show($("credentials"), id);  // the verifier's verdict (credentials.js), not the sidecar's say-so
    } else {
      video.hidden = true;
      $("video-note").textContent = "No video: the job " + job.state + ".";
      Vx.clear($("credentials")).appendChild(Vx.el("p", { class: "muted" }, "No video to verify."));
    }
    charts(sidecar, job);
  }

  load();
})();
