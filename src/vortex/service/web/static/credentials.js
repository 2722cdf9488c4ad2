// The job page's "Content Credentials" section: what this node's verifier says of the job's MP4,
// asked of POST /v1/verify (the same code as `vortex verify`, trusting this node's own CA), not what
// the sidecar recorded when it was signed. Every value goes in as text (Vx.el), never as HTML.
"use strict";

const Credentials = (() => {
  const short = (h) => (typeof h === "string" && h.length > 16 ? h.slice(0, 16) + "…" : h);

  function row(dl, term, value, cls) {
    dl.appendChild(Vx.el("dt", {}, term));
    dl.appendChild(Vx.el("dd", cls ? { class: cls } : {}, value));
  }

  function render(box, report) {
    Vx.clear(box);
    const ok = report.verdict === "verified";
    box.appendChild(Vx.el("p", { class: "verdict " + (ok ? "pass" : "fail"), "data-verdict": report.verdict },
      (ok ? "✓ " : "✗ ") + report.verdict + " by this node's verifier"));
    const c = report.credentials || {};
    const dl = Vx.el("dl", { class: "credentials" });
    row(dl, "C2PA manifest", c.present ? (c.signature_valid ? "present, signature valid" : "present, signature INVALID")
                                       : "none in the file", c.present && c.signature_valid ? "ok" : "bad");
    if (c.present) {
      row(dl, "signer", (c.signer || "?") + (c.issuer ? " (issued by " + c.issuer + ")" : ""), "signer");
      row(dl, "trusted", c.trusted ? "yes, under this node's CA" : "no", c.trusted ? "ok" : "bad");
      row(dl, "AI-generated", c.ai_generated ? "c2pa.created · digitalSourceType trainedAlgorithmicMedia"
                                             : "no AI-generated action", c.ai_generated ? "ok ai" : "bad ai");
    }
    const i = report.integrity || {};
    if (i.checked) {
      const frames = i.video_match ? "every frame" : "frame " + i.first_video_differing + " differs";
      const audio = i.audio_match ? "every audio packet" : "audio packet " + i.first_audio_differing + " differs";
      row(dl, "integrity", frames + " · " + audio + (i.proof_consistent === false ? " · proof broken" : ""),
          i.video_match && i.audio_match ? "ok" : "bad");
    }
    const w = report.watermark || {};
    row(dl, "watermark", w.found ? "found: node tag " + w.node_tag + ", slot " + w.slot_id
                                   + (w.matches_credentials === false ? " (not the signed node/slot)" : "")
                                 : "not found", w.found ? "ok" : "bad");
    const models = (c.slot && c.slot.models) || {};
    const names = Object.keys(models).sort();
    if (names.length) {
      row(dl, "models", names.map((n) => n + (models[n].sha256 ? " " + short(models[n].sha256) : "")).join(" · "), "models");
    }
    box.appendChild(dl);
    if (Array.isArray(report.reasons) && report.reasons.length) {
      const ul = Vx.el("ul", { class: "reasons" });
      for (const r of report.reasons) ul.appendChild(Vx.el("li", {}, r));
      box.appendChild(ul);
    }
  }

  async function show(box, jobId) {
    Vx.clear(box).appendChild(Vx.el("p", { class: "muted" }, "Verifying the MP4…"));
    const form = new FormData();
    form.append("job", jobId);
    try {
      render(box, await Vx.api("/v1/verify", { method: "POST", body: form }));
    } catch (err) {
      const why = err.status === 401 ? "the verifier needs this server's API token (set it on the jobs page)"
                                      : "the verifier did not answer: " + err.message;
      Vx.clear(box).appendChild(Vx.el("p", { class: "error" }, why));
    }
  }

  return { render, show };
})();
