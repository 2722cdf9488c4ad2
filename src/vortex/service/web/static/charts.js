// SVG charts drawn in the page, no library: the phase timeline, line charts (CLIP cosines per
// frame), bar charts (identity distance per frame) and gauges (lip-sync r, WER) against their
// limits. Every label goes in through textContent.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";

  function s(tag, attrs, text) {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = String(text);
    return n;
  }

  function svgBox(w, h, label) {
    return s("svg", { viewBox: "0 0 " + w + " " + h, width: "100%", role: "img", "aria-label": label,
                      preserveAspectRatio: "xMinYMin meet" });
  }

  // ~n round ticks (1, 2, 5 × 10^k) covering [lo, hi].
  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const raw = (hi - lo) / Math.max(1, n);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p).find((st) => st >= raw);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toFixed(10));
    return out;
  }

  function fmt(v) {
    const a = Math.abs(v);
    return a !== 0 && (a < 0.01 || a >= 1e4) ? v.toExponential(1) : String(+v.toFixed(3));
  }

  function frame(node, title, caption) {
    Vx.clear(node);
    node.appendChild(Vx.el("h3", {}, title));
    const box = Vx.el("div", { class: "svgbox" });
    node.appendChild(box);
    if (caption) node.appendChild(caption);
    return box;
  }

  // "passed · enforced" / "failed · not enforced: <why>" and the check's notes.
  function verdict(check) {
    if (!check || typeof check.passed !== "boolean") return null;
    const p = Vx.el("p", { class: "verdict " + (check.passed ? "pass" : "fail") });
    let t = check.passed ? "passed" : "failed";
    if (check.enforced === false) t += " · not enforced" + (check.why_not_enforced ? ": " + check.why_not_enforced : "");
    else if (check.enforced === true) t += " · enforced";
    p.textContent = t;
    for (const note of check.notes || []) p.appendChild(Vx.el("span", { class: "note" }, String(note)));
    return p;
  }

  function empty(node, title, why) {
    frame(node, title, Vx.el("p", { class: "muted" }, why));
  }

  // spans: {phase: [start_ms, end_ms]} since the slot began; one lane per phase, by start.
  function timeline(node, spans, total) {
    const items = Object.entries(spans || {})
      .filter(([, v]) => Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && Number.isFinite(v[1]))
      .sort((a, b) => a[1][0] - b[1][0] || a[1][1] - b[1][1]);
    if (!items.length) return empty(node, "Phases", "This result records no phase spans.");
    const W = 1000, left = 120, right = 70, lane = 26, top = 8, axis = 30;
    const H = top + items.length * lane + axis;
    const end = Math.max(total || 0, ...items.map(([, v]) => v[1]));
    const x = (ms) => left + (ms / end) * (W - left - right);
    const svg = svgBox(W, H, "phase timeline");
    const grid = s("g", { class: "grid" });
    for (const t of ticks(0, end / 1000, 8)) {
      grid.appendChild(s("line", { x1: x(t * 1000), x2: x(t * 1000), y1: top, y2: H - axis + 4 }));
      grid.appendChild(s("text", { x: x(t * 1000), y: H - axis + 20, "text-anchor": "middle" }, fmt(t) + " s"));
    }
    svg.appendChild(grid);
    items.forEach(([phase, [a, b]], i) => {
      const y = top + i * lane;
      svg.appendChild(s("text", { class: "lane", x: left - 8, y: y + lane / 2 + 4, "text-anchor": "end" }, phase));
      const r = s("rect", { class: "span phase-" + phase.replace(/[^a-z0-9_-]/gi, "_"), x: x(a), y: y + 4,
                            width: Math.max(1.5, x(b) - x(a)), height: lane - 8, rx: 3,
                            "data-phase": phase, "data-start": a, "data-end": b });
      r.appendChild(s("title", {}, phase + ": " + fmt(a / 1000) + "–" + fmt(b / 1000) + " s"));
      svg.appendChild(r);
      svg.appendChild(s("text", { class: "dur", x: x(b) + 5, y: y + lane / 2 + 4 }, Vx.fmtMs(b - a)));
    });
    frame(node, "Phases (" + Vx.fmtMs(end) + ")").appendChild(svg);
  }

  // y axis for values and reference lines, padded a little.
  function yScale(values, lo0, hi0, top, bottom) {
    let lo = Math.min(lo0 ?? Infinity, ...values), hi = Math.max(hi0 ?? -Infinity, ...values);
    if (!(hi > lo)) { lo -= 0.05; hi += 0.05; }
    const pad = (hi - lo) * 0.08;
    lo = lo0 !== undefined && lo0 !== null ? Math.min(lo0, lo) : lo - pad;
    hi += pad;
    return { lo, hi, y: (v) => bottom - ((v - lo) / (hi - lo)) * (bottom - top) };
  }

  function axes(svg, sc, left, right, W) {
    const g = s("g", { class: "grid" });
    for (const t of ticks(sc.lo, sc.hi, 5)) {
      g.appendChild(s("line", { x1: left, x2: W - right, y1: sc.y(t), y2: sc.y(t) }));
      g.appendChild(s("text", { x: left - 6, y: sc.y(t) + 4, "text-anchor": "end" }, fmt(t)));
    }
    svg.appendChild(g);
  }

  function refLine(svg, sc, left, right, W, ref) {
    svg.appendChild(s("line", { class: "ref " + (ref.cls || ""), x1: left, x2: W - right, y1: sc.y(ref.value), y2: sc.y(ref.value) }));
    svg.appendChild(s("text", { class: "ref-label " + (ref.cls || ""), x: W - right + 4, y: sc.y(ref.value) + 4 },
                      ref.label + " " + fmt(ref.value)));
  }

  // xs: frame indices; series: [{label, values, cls}]; refs: [{label, value, cls}]
  function lines(node, { title, xs, series, refs, caption, xLabel }) {
    const all = series.flatMap((se) => se.values.filter(Number.isFinite));
    if (!all.length) return empty(node, title, "Not measured.");
    const W = 520, H = 230, left = 50, right = 110, top = 10, bottom = H - 34;
    const sc = yScale(all.concat(refs.map((r) => r.value)), null, null, top, bottom);
    const n = Math.max(...series.map((se) => se.values.length));
    const px = xs && xs.length === n ? xs : [...Array(n).keys()];
    const x0 = Math.min(...px), x1 = Math.max(...px);
    const x = (v) => left + (x1 > x0 ? (v - x0) / (x1 - x0) : 0.5) * (W - left - right);
    const svg = svgBox(W, H, title);
    axes(svg, sc, left, right, W);
    const g = s("g", { class: "grid" });
    for (const t of ticks(x0, x1, 8)) g.appendChild(s("text", { x: x(t), y: bottom + 16, "text-anchor": "middle" }, fmt(t)));
    g.appendChild(s("text", { x: (left + W - right) / 2, y: H - 2, "text-anchor": "middle" }, xLabel || "frame"));
    svg.appendChild(g);
    for (const r of refs) refLine(svg, sc, left, right, W, r);
    for (const se of series) {
      const pts = se.values.map((v, i) => [x(px[i]), sc.y(v)]).filter(([, y]) => Number.isFinite(y));
      svg.appendChild(s("path", { class: "series " + se.cls, d: pts.map((p, i) => (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1)).join(" ") }));
      for (const [cx, cy] of pts) svg.appendChild(s("circle", { class: "dot " + se.cls, cx, cy, r: 3 }));
    }
    const legend = Vx.el("p", { class: "legend" });
    for (const se of series) legend.appendChild(Vx.el("span", { class: "key " + se.cls }, se.label));
    const box = frame(node, title, caption);
    box.appendChild(svg);
    box.appendChild(legend);
  }

  // One bar per frame; a bar passes when it is at or under `limit`.
  function bars(node, { title, xs, values, limit, limitLabel, caption }) {
    const vals = (values || []).filter((v) => v === null || Number.isFinite(v));
    if (!vals.length) return empty(node, title, "Not measured.");
    const W = 520, H = 230, left = 50, right = 110, top = 10, bottom = H - 34;
    const sc = yScale(vals.filter(Number.isFinite).concat([limit]), 0, null, top, bottom);
    const bw = (W - left - right) / vals.length;
    const svg = svgBox(W, H, title);
    axes(svg, sc, left, right, W);
    vals.forEach((v, i) => {
      const xPos = left + i * bw + bw * 0.15;
      const label = xs && xs[i] !== undefined ? xs[i] : i;
      if (v === null) {  // no face found in that frame
        svg.appendChild(s("text", { class: "missing", x: xPos + bw * 0.35, y: bottom - 4, "text-anchor": "middle" }, "no face"));
      } else {
        const r = s("rect", { class: "bar " + (v <= limit ? "pass" : "fail"), x: xPos, y: sc.y(v),
                              width: bw * 0.7, height: Math.max(0.5, bottom - sc.y(v)) });
        r.appendChild(s("title", {}, "frame " + label + ": " + fmt(v)));
        svg.appendChild(r);
      }
      svg.appendChild(s("text", { class: "tick", x: xPos + bw * 0.35, y: bottom + 16, "text-anchor": "middle" }, label));
    });
    refLine(svg, sc, left, right, W, { value: limit, label: limitLabel, cls: "limit" });
    svg.appendChild(s("text", { class: "axis-label", x: (left + W - right) / 2, y: H - 2, "text-anchor": "middle" }, "frame"));
    frame(node, title, caption).appendChild(svg);
  }

  // A horizontal gauge: the value's bar from `lo`, and the limit marked. better: "higher"|"lower".
  function gauge(node, { title, value, limit, limitLabel, better, lo, hi, caption }) {
    if (!Number.isFinite(value)) return empty(node, title, "Not measured.");
    const W = 520, H = 92, left = 50, right = 110, top = 16, bar = 30;
    const a = Math.min(lo, value, limit), b = Math.max(hi, value, limit);
    const x = (v) => left + ((v - a) / (b - a)) * (W - left - right);
    const ok = better === "higher" ? value >= limit : value <= limit;
    const svg = svgBox(W, H, title);
    const g = s("g", { class: "grid" });
    for (const t of ticks(a, b, 5)) {
      g.appendChild(s("line", { x1: x(t), x2: x(t), y1: top, y2: top + bar }));
      g.appendChild(s("text", { x: x(t), y: top + bar + 18, "text-anchor": "middle" }, fmt(t)));
    }
    svg.appendChild(g);
    svg.appendChild(s("rect", { class: "track", x: x(a), y: top, width: x(b) - x(a), height: bar, rx: 3 }));
    const z = Math.max(a, Math.min(0, b));
    svg.appendChild(s("rect", { class: "bar " + (ok ? "pass" : "fail"), x: Math.min(x(z), x(value)), y: top + 5,
                                width: Math.max(1.5, Math.abs(x(value) - x(z))), height: bar - 10, rx: 2 }));
    svg.appendChild(s("line", { class: "ref limit", x1: x(limit), x2: x(limit), y1: top - 6, y2: top + bar + 6 }));
    svg.appendChild(s("text", { class: "ref-label limit", x: x(limit), y: top - 8, "text-anchor": "middle" },
                      limitLabel + " " + fmt(limit)));
    svg.appendChild(s("text", { class: "value", x: W - right + 8, y: top + bar / 2 + 5 }, fmt(value)));
    frame(node, title, caption).appendChild(svg);
  }

  return { timeline, lines, bars, gauge, verdict, empty };
})();
