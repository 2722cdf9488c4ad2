// Shared by the pages: the API client (with the optional bearer token), safe DOM building
// (text only ever goes in through textContent / createTextNode), formatting, and SSE.
"use strict";

const Vx = (() => {
  const TOKEN_KEY = "vortex.token";
  const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
  // the engine's kinds, plus the service's "state" (queued → running, with the attempt)
  const KINDS = ["phase_started", "phase_done", "phase_failed", "first_audio", "chunk", "chunk_checked", "first_frame",
                 "progress", "result", "state"];

  class ApiError extends Error {
    constructor(status, body) {
      super(errorText(status, body));
      this.status = status;
      this.body = body;
    }
  }

  // The API's errors are {"error": {"field", "message"}}; FastAPI's own are {"detail": ...}.
  function errorText(status, body) {
    if (body && typeof body === "object") {
      const e = body.error;
      if (e && typeof e === "object") {
        return (e.field ? e.field + ": " : "") + (e.message || JSON.stringify(e));
      }
      if (typeof e === "string") return e;
      if (body.detail !== undefined) {
        return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      }
    }
    if (typeof body === "string" && body) return "HTTP " + status + ": " + body.slice(0, 300);
    return "HTTP " + status;
  }

  // Seeds go up to 2^63: past 2^53 a JS number would show a different seed, so such integers
  // are kept as their source text (JSON.parse source access: Chromium 114+, elsewhere unchanged).
  function exactInts(key, value, context) {
    if (typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value) &&
        context && typeof context.source === "string") return context.source;
    return value;
  }

  function token() { return localStorage.getItem(TOKEN_KEY) || ""; }
  function setToken(t) {
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
  }

  async function api(path, opts = {}) {
    const headers = Object.assign({ "Accept": "application/json" }, opts.headers || {});
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    const r = await fetch(path, Object.assign({}, opts, { headers }));
    const text = await r.text();
    let body = null;
    try { body = text ? JSON.parse(text, exactInts) : null; } catch (_) { body = text; }
    if (!r.ok) throw new ApiError(r.status, body);
    return body;
  }

  // GET /v1/slots answers {"slots": [...]}; a bare list is accepted too.
  function slotsOf(body) {
    if (Array.isArray(body)) return body;
    if (body && Array.isArray(body.slots)) return body.slots;
    if (body && Array.isArray(body.jobs)) return body.jobs;
    return [];
  }

  function linksOf(job) {
    const id = encodeURIComponent(job.id);
    const base = "/v1/slots/" + id;
    const l = job.links || {};
    return {
      self: l.self || base,
      events: l.events || base + "/events",
      video: l.video || base + "/video.mp4",
      result: l.result || base + "/result.json",
      page: "/jobs/" + id,
    };
  }

  // el("td", {class: "x"}, "text", childNode) — strings become text nodes, never HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

  // Timestamps may come as ISO strings or as Unix seconds (or milliseconds).
  function toDate(v) {
    if (v === null || v === undefined || v === "") return null;
    if (typeof v === "number") return new Date(v < 1e12 ? v * 1000 : v);
    const n = Number(v);
    if (!Number.isNaN(n) && String(v).trim() !== "") return toDate(n);
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  function fmtDate(v) {
    const d = toDate(v);
    if (!d) return "—";
    const p = (x) => String(x).padStart(2, "0");
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " +
      p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds());
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined || Number.isNaN(s)) return "—";
    if (s < 60) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }

  function fmtMs(ms) { return ms === null || ms === undefined ? "—" : fmtSeconds(ms / 1000); }

  function took(job) {
    const a = toDate(job.started), b = toDate(job.finished);
    if (!a) return null;
    return ((b || new Date()).getTime() - a.getTime()) / 1000;
  }

  function num(v, digits = 3) {
    return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "—";
  }

  // One EventSource for a job: calls onEvent(parsed) for every engine event (named by kind or
  // unnamed), onEnd() once on the final "end" event or when the stream closes. The browser would
  // reconnect a closed stream on its own; a finished job has nothing more to say, so we close it.
  function followEvents(url, onEvent, onEnd) {
    const es = new EventSource(url);
    let ended = false;
    const finish = () => { if (!ended) { ended = true; es.close(); if (onEnd) onEnd(); } };
    const handle = (msg) => {
      let ev;
      try { ev = JSON.parse(msg.data); } catch (_) { return; }
      if (ev && typeof ev === "object") {
        if (!ev.kind) ev.kind = msg.type === "message" ? "event" : msg.type;
        onEvent(ev);
      }
    };
    es.onmessage = handle;
    for (const k of KINDS) es.addEventListener(k, handle);
    es.addEventListener("end", finish);
    es.onerror = finish;
    return { close: finish };
  }

  // The four checks of a sidecar's `verification`, each {name, passed, enforced, why}.
  function checks(v) {
    if (!v || typeof v !== "object") return [];
    const out = [];
    if (typeof v.passed === "boolean") {
      out.push({ name: "CLIP", passed: v.passed, enforced: v.enforced !== false, why: null });
    }
    for (const [key, name] of [["identity", "identity"], ["lip_sync", "lip-sync"], ["speech", "speech"]]) {
      const c = v[key];
      if (c && typeof c === "object" && typeof c.passed === "boolean") {
        out.push({ name, passed: c.passed, enforced: c.enforced !== false, why: c.why_not_enforced || null });
      }
    }
    return out;
  }

  // Small badges for checks(): green pass, red fail, grey when reported but not enforced.
  function checkBadges(v) {
    const box = el("span", { class: "checks" });
    for (const c of checks(v)) {
      const cls = "check " + (c.passed ? "pass" : "fail") + (c.enforced ? "" : " unenforced");
      const title = c.name + ": " + (c.passed ? "passed" : "failed") +
        (c.enforced ? "" : " (not enforced" + (c.why ? ": " + c.why : "") + ")");
      box.appendChild(el("span", { class: cls, title }, (c.passed ? "✓ " : "✗ ") + c.name));
    }
    return box;
  }

  return { ApiError, checks, checkBadges, FINISHED, api, slotsOf, linksOf, el, clear, token, setToken, toDate, fmtDate,
           fmtSeconds, fmtMs, took, num, followEvents, errorText };
})();
