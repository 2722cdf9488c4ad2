// The jobs page's channel list: every channel the server runs, polled every 2 s, each linking to
// its player page. Hidden while there is none (POST /v1/channels starts one).
"use strict";

(() => {
  const POLL_MS = 2000;
  const section = document.getElementById("channels");
  const tbody = document.querySelector("#channel-list tbody");
  const lead = (s) => (typeof s === "number" ? (s >= 0 ? "+" : "") + s.toFixed(1) + " s" : "—");

  async function poll() {
    try {
      const body = await Vx.api("/v1/channels");
      const list = (body && body.channels) || [];
      section.hidden = list.length === 0;
      Vx.clear(tbody);
      for (const ch of list) {
        const page = "/channels/" + encodeURIComponent(ch.name);
        const c = ch.counts;
        tbody.appendChild(Vx.el("tr", {},
          Vx.el("td", {}, Vx.el("a", { href: page }, ch.name)),
          Vx.el("td", {}, Vx.el("span", { class: "state " + (ch.status === "on_air" ? "running" : "cancelled") }, ch.status)),
          Vx.el("td", {}, ch.on_air ? ch.on_air.recipe : "—"),
          Vx.el("td", {}, c.slots + " (aired " + c.aired + ")"),
          Vx.el("td", {}, String(c.fillers.last_good + c.fillers.standby)),
          Vx.el("td", {}, lead(ch.lead_time_sec.min) + " / " + lead(ch.lead_time_sec.p50)),
          Vx.el("td", {}, Vx.el("a", { href: page }, "watch"))));
      }
    } catch (_) { /* the jobs list shows the server's state; this list just waits for the next poll */ }
    setTimeout(poll, POLL_MS);
  }
  poll();
})();
