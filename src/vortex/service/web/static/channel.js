// One channel: the live stream in hls.js (native HLS where the browser has it, e.g. Safari), and
// the schedule polled every 2 s: on air, the next slots and their state, every decision and why.
// window.vxPlayer counts what a viewer would notice (the browser test reads it): stalls after
// playback started, fatal errors, whether an audio track was found, and how far the picture is
// behind the wall clock (wall clock − hls.playingDate, the program date-time at the playhead).
"use strict";

(() => {
  const POLL_MS = 2000;
  const name = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
  const base = "/v1/channels/" + encodeURIComponent(name);
  const video = document.getElementById("video");
  const note = document.getElementById("player-note");
  const stats = { started: false, waiting: 0, errors: [], audio: false, video: false, behind: null };
  window.vxPlayer = stats;
  document.getElementById("channel-name").textContent = name;

  video.addEventListener("playing", () => { stats.started = true; });
  // The player takes the stream's shape: a program picture is 16:9 (1280x720), the engine's square 1:1.
  video.addEventListener("loadedmetadata", () => {
    if (video.videoWidth && video.videoHeight) {
      video.style.aspectRatio = video.videoWidth + " / " + video.videoHeight;
      stats.size = video.videoWidth + "x" + video.videoHeight;
    }
  });
  video.addEventListener("waiting", () => { if (stats.started) stats.waiting += 1; });

  let hls = null;
  function startPlayer() {
    const src = base + "/master.m3u8";  // the stream and its captions (a WebVTT rendition)
    if (window.Hls && Hls.isSupported()) {
      // Low-Latency HLS: parts, blocking playlist reload, and the playhead PART-HOLD-BACK (2 s) behind
      // the live edge. No liveSync* option: any of them would put it back at 3 target durations (6 s).
      // Up to 1.25x speed (pitch kept) wins back latency that a late part or a slow start cost.
      hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.25, manifestLoadingMaxRetry: 30,
                      manifestLoadingRetryDelay: 2000 });
      window.vxHls = hls;
      video.addEventListener("timeupdate", () => {
        if (hls.playingDate) stats.behind = (Date.now() - hls.playingDate.getTime()) / 1000;
      });
      // Our fMP4 muxes both tracks: hls.js buffers them as one "audiovideo" track.
      hls.on(Hls.Events.BUFFER_CODECS, (e, d) => {
        stats.audio = !!(d.audio || d.audiovideo); stats.video = !!(d.video || d.audiovideo);
      });
      hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) stats.errors.push(d.type + ":" + d.details); });
      hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch((err) => stats.errors.push("play:" + err)));
      hls.loadSource(src);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;
      stats.audio = null; // native playback does not say
    } else {
      note.textContent = "This browser cannot play HLS: hls.js is missing (run `bash scripts/setup-hlsjs` " +
        "on the server) or the browser has no Media Source Extensions. The stream is at " + src;
      note.className = "error";
    }
  }

  const fmtLead = (s) => (typeof s === "number" ? (s >= 0 ? "+" : "") + s.toFixed(2) + " s" : "—");
  const attemptsText = (r) => (r.attempts || []).map((a) => a.outcome + (a.error_kind ? " (" + a.error_kind + ")" : ""))
    .join(", ") || "—";
  const why = (r) => {
    const last = (r.attempts || []).slice(-1)[0];
    if (r.decision === "aired" || !last) return "";
    return (r.decision === "filler:last_good" ? "re-aired slot " + r.filler_of + ": " : "") + (last.error || "");
  };

  function rows(tbody, items, cells) {
    Vx.clear(tbody);
    for (const r of items) tbody.appendChild(Vx.el("tr", {}, ...cells(r).map((c) => Vx.el("td", {}, c))));
    if (!items.length) tbody.appendChild(Vx.el("tr", {}, Vx.el("td", { class: "muted", colspan: 7 }, "none")));
  }

  // The last takeover: when, from which node (it died or stalled), and how long after its lease ran out.
  const lastTakeover = (ch) => {
    const t = (ch.takeovers || []).slice(-1)[0];
    return t ? " · last " + Vx.fmtDate(t.at) + " from " + t.from + " (" + Vx.num(t.after_sec, 1) + " s after its lease ran out)" : "";
  };

  function render(ch) {
    const st = document.getElementById("channel-status");
    st.textContent = ch.status;
    st.className = "state " + ({ on_air: "running", starting: "queued", ended: "succeeded", stopped: "cancelled" }[ch.status] || "failed");
    const err = document.getElementById("channel-error");
    err.hidden = !ch.error;
    err.textContent = ch.error || "";
    document.getElementById("channel-stop").hidden = !(ch.status === "on_air" || ch.status === "starting");
    const c = ch.counts, lead = ch.lead_time_sec, d = ch.definition || {};
    const facts = [
      ["pace", ch.pace], ["recipes", (d.recipes || []).join(", ") + (d.loop ? " (looped)" : "")],
      ["lookahead", d.lookahead], ["margin", d.margin_sec + " s"], ["filler", d.filler],
      ["slots decided", c.slots + " (aired " + c.aired + ")"],
      ["fillers", "last good " + c.fillers.last_good + ", stand-by " + c.fillers.standby],
      ["retries", c.retries + " (skipped as too slow: " + c.skipped + ")"], ["stalls", c.stalls],
      ["lead time", "last " + fmtLead(lead.last) + " · min " + fmtLead(lead.min) + " · P50 " + fmtLead(lead.p50)],
      ["player", stats.started ? "playing · waits " + stats.waiting + (stats.audio ? " · audio" : "") +
        (typeof stats.behind === "number" ? " · " + stats.behind.toFixed(1) + " s behind the wall clock" : "") : "starting"],
      ["node", ch.owner ? ch.owner.node + (ch.owner.this_node ? " (this page's node)" : "") + " · lease " +
        Vx.num(ch.owner.lease_left_sec, 1) + " s left" : "none now (the next node to look takes it over)"],
      ["takeovers", c.takeovers + (lastTakeover(ch) || "")],
      ["live inserts", c.inserts ? "aired " + c.inserts.aired + " · failed " + c.inserts.failed +
        (c.inserts.making + c.inserts.on_air ? " · now " + (c.inserts.making + c.inserts.on_air) : "") : "—"],
    ];
    const dl = Vx.clear(document.getElementById("facts"));
    for (const [k, v] of facts) { dl.appendChild(Vx.el("dt", {}, k)); dl.appendChild(Vx.el("dd", {}, v === undefined ? "—" : v)); }
    const onAir = document.getElementById("on-air");
    onAir.textContent = ch.on_air ? "slot " + ch.on_air.index + " · " + ch.on_air.recipe + " · " +
      ch.on_air.decision + " · since " + Vx.fmtDate(ch.on_air.air_time) : "—";
    rows(document.querySelector("#next tbody"), ch.next, (r) => [r.index, r.recipe, r.state,
      r.air_time ? Vx.fmtDate(r.air_time) : "—", r.deadline ? Vx.fmtDate(r.deadline) : "—", attemptsText(r), fmtLead(r.lead_time_sec)]);
    rows(document.querySelector("#recent tbody"), ch.recent.slice().reverse(), (r) => [r.index, r.recipe, r.decision,
      Vx.fmtDate(r.air_time), attemptsText(r), fmtLead(r.lead_time_sec), why(r)]);
    renderInserts(ch);
  }

  // Live inserts: each sentence's verdict (aired, or replaced by the stand-by card) and what was heard.
  const chunkText = (i) => (i.chunks || []).map((c) => c.state === "replaced"
    ? "✗ " + c.text + " (heard “" + c.heard + "”, WER " + Vx.num(c.wer, 2) + ")" : (c.state === "aired" ? "✓ " : "… ") + c.text)
    .join(" · ") || "—";
  function renderInserts(ch) {
    document.getElementById("live-delay").textContent = ch.definition ? ch.definition.live_delay_sec + " s" : "—";
    rows(document.querySelector("#inserts tbody"), (ch.inserts || []).slice().reverse(), (i) => [i.id + " (" + i.at + ")",
      i.state, i.air_time ? Vx.fmtDate(i.air_time) : "—", i.duration_sec + " s",
      typeof i.published_after_s === "number" ? i.published_after_s.toFixed(2) + " s" : "—", chunkText(i), i.error || ""]);
  }

  const liveForm = document.getElementById("live-form");
  const liveResult = document.getElementById("live-result");
  liveForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    liveResult.className = "";
    let recipe;
    try {
      recipe = JSON.parse(document.getElementById("live-recipe").value);
    } catch (err) {
      liveResult.className = "error";
      liveResult.textContent = "recipe: not valid JSON (" + err.message + ")";
      return;
    }
    const button = document.getElementById("live-button");
    button.disabled = true;
    try {
      const ins = await Vx.api(base + "/live", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ recipe, at: document.getElementById("live-at").value }) });
      liveResult.className = "ok";
      liveResult.textContent = ins.id + " airs at " + Vx.fmtDate(ins.air_time) + " for " + ins.duration_sec + " s";
    } catch (err) {
      liveResult.className = "error";
      liveResult.textContent = "refused: " + err.message + (err.status === 401 ? " — keep the server's token on the jobs page" : "");
    } finally {
      button.disabled = false;
    }
  });

  async function poll() {
    try {
      render(await Vx.api(base));
    } catch (e) {
      const err = document.getElementById("channel-error");
      err.hidden = false;
      err.textContent = e.message;
    }
    setTimeout(poll, POLL_MS);
  }

  document.getElementById("channel-stop").addEventListener("click", async () => {
    try { render(await Vx.api(base, { method: "DELETE" })); } catch (e) { alert(e.message); }
  });
  startPlayer();
  poll();
})();
