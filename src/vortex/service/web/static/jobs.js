// The jobs page: the list polled every second (states change server-side, the list is cheap),
// plus one EventSource per running job so its phase and frame progress move between polls.
"use strict";

(() => {
  const POLL_MS = 1000;
  const LIMIT = 50;
  const MAX_STREAMS = 4; // browsers allow ~6 HTTP/1.1 connections per origin; keep two for fetches

  const tbody = document.querySelector("#jobs tbody");
  const empty = document.getElementById("jobs-empty");
  const status = document.getElementById("jobs-status");
  const rows = new Map();    // id -> <tr>
  const live = new Map();    // id -> {phase, frames, total} from SSE, newer than the last poll
  const streams = new Map(); // id -> {close}

  // --- token -------------------------------------------------------------------------------
  const tokenInput = document.getElementById("token");
  const tokenState = document.getElementById("token-state");
  const showToken = () => { tokenState.textContent = Vx.token() ? "kept in this browser" : ""; };
  tokenInput.value = Vx.token();
  showToken();
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    Vx.setToken(tokenInput.value.trim());
    showToken();
  });

  // --- submit ------------------------------------------------------------------------------
  const form = document.getElementById("submit-form");
  const recipe = document.getElementById("recipe");
  const result = document.getElementById("submit-result");
  const button = document.getElementById("submit-button");

  document.getElementById("recipe-file").addEventListener("change", async (e) => {
    const f = e.target.files && e.target.files[0];
    if (f) recipe.value = await f.text();
  });

  const say = (cls, ...parts) => {
    Vx.clear(result);
    result.className = cls;
    for (const p of parts) result.appendChild(typeof p === "object" ? p : document.createTextNode(p));
  };

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let body;
    try {
      body = JSON.parse(recipe.value);
    } catch (err) {
      say("error", "recipe: not valid JSON (" + err.message + ")");
      return;
    }
    button.disabled = true;
    try {
      const job = await Vx.api("/v1/slots", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      say("ok", "queued ", Vx.el("a", { href: Vx.linksOf(job).page, class: "job-link" }, job.id));
      poll();
    } catch (err) {
      const hint = err.status === 401 ? " — this server needs a token: type it above and Keep" : "";
      say("error", "refused: " + err.message + hint);
    } finally {
      button.disabled = false;
    }
  });

  // --- the list ----------------------------------------------------------------------------
  function phaseText(job) {
    const l = live.get(job.id);
    if (job.state === "succeeded") return "done";
    const phase = (l && l.phase) || job.phase;
    if (!phase) return job.state === "queued" ? "waiting" : "—";
    // live SSE progress, else the last progress the list carried
    const pr = l && l.total ? l : (job.progress && job.progress.data) || null;
    if (pr && pr.total && phase === "video") return phase + " " + pr.frames + "/" + pr.total;
    return phase;
  }

  function fill(tr, job) {
    const links = Vx.linksOf(job);
    const cells = [
      Vx.el("a", { href: links.page, class: "job-link" }, job.id),
      Vx.el("span", { class: "state " + job.state }, job.state),
      phaseText(job),
      job.attempts === undefined ? "—" : String(job.attempts),
      Vx.fmtDate(job.created),
      Vx.fmtSeconds(Vx.took(job)),
      job.state === "failed" ? Vx.el("span", { class: "error" }, job.error ? String(
        typeof job.error === "object" ? (job.error.message || JSON.stringify(job.error)) : job.error) : "failed")
        : Vx.checkBadges(job.verification),
      (job.state === "queued" || job.state === "running")
        ? Vx.el("button", { class: "cancel", "data-id": job.id }, "cancel") : "",
    ];
    Vx.clear(tr);
    for (const c of cells) tr.appendChild(Vx.el("td", {}, c));
    tr.dataset.state = job.state;
  }

  function follow(job) {
    if (streams.has(job.id) || streams.size >= MAX_STREAMS) return;
    const s = Vx.followEvents(Vx.linksOf(job).events, (ev) => {
      const l = live.get(job.id) || {};
      if (ev.phase) l.phase = ev.phase;
      if (ev.kind === "progress" && ev.data) { l.frames = ev.data.frames; l.total = ev.data.total; }
      live.set(job.id, l);
      const tr = rows.get(job.id);
      if (tr && tr.children[2]) tr.children[2].textContent = phaseText(job);
    }, () => { streams.delete(job.id); });
    streams.set(job.id, s);
  }

  function render(jobs) {
    const seen = new Set();
    let prev = null;
    for (const job of jobs) {
      if (!job || job.id === undefined) continue;
      seen.add(job.id);
      let tr = rows.get(job.id);
      if (!tr) { tr = Vx.el("tr", { "data-id": job.id }); rows.set(job.id, tr); }
      fill(tr, job);
      // newest first, as the server orders them
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
      if (job.state === "running") follow(job);
      else if (Vx.FINISHED.has(job.state)) { live.delete(job.id); }
    }
    for (const [id, tr] of rows) if (!seen.has(id)) { tr.remove(); rows.delete(id); }
    empty.hidden = rows.size > 0;
  }

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    try {
      render(Vx.slotsOf(await Vx.api("/v1/slots?limit=" + LIMIT)));
      status.textContent = "";
    } catch (err) {
      status.textContent = "(cannot list jobs: " + err.message + ")";
    }
    timer = setTimeout(poll, POLL_MS);
  }

  tbody.addEventListener("click", async (e) => {
    const b = e.target.closest("button.cancel");
    if (!b) return;
    b.disabled = true;
    try {
      await Vx.api("/v1/slots/" + encodeURIComponent(b.dataset.id), { method: "DELETE" });
    } catch (err) {
      status.textContent = "(cancel refused: " + err.message + ")";
    }
    poll();
  });

  if (location.hash === "#submit") recipe.focus();
  poll();
})();
