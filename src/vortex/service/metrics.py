"""Prometheus metrics of one service process, on a registry of its own (not the global one, so
two apps in one process — tests, a future multi-engine node — never collide).

Jobs by state and queue depth are read from the job store at scrape time (a collector), so they are
right after a restart too; the rest are observed by the worker as slots finish.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# A CPU preview slot takes 5-60 s, a GPU slot of 45 s about as long: buckets to 10 minutes.
SLOT_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)
PHASE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
WAIT_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Raw CLIP cosines sit in 0.1-0.4, dlib identity distances below 0.6, lip-sync r in -1..1, WER 0..1+.
# A channel slot's lead time (air time - ready): negative means it was late and filled.
LEAD_BUCKETS = (-10, -5, -1, 0, 1, 2, 5, 10, 20, 30, 60, 120, 300)
# A live insert's POST to its first part listed: the delay line (2.5 s by default) plus a part.
INSERT_BUCKETS = (0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 10, 15, 30)
# A slot's integrated loudness minus its target (LU): EBU R128 allows +-1 LU for live programmes.
LOUDNESS_BUCKETS = (-3, -2, -1, -0.5, -0.25, 0, 0.25, 0.5, 1, 2, 3)
SCORE_BUCKETS = (-0.5, 0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5)


class _StoreCollector(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]):
        self._counts = counts

    def collect(self) -> Iterable[GaugeMetricFamily]:
        counts = self._counts()
        by_state = GaugeMetricFamily("vortex_jobs", "Jobs in the store by state", labels=["state"])
        for state, n in counts.items():
            by_state.add_metric([state], n)
        yield by_state
        yield GaugeMetricFamily("vortex_queue_depth", "Jobs waiting for the worker", value=counts.get("queued", 0))


class _VramCollector(Collector):
    """Only when torch is already loaded (the engine loads it) and a CUDA device is present."""

    def collect(self) -> Iterable[GaugeMetricFamily]:
        torch = sys.modules.get("torch")
        if torch is None or not torch.cuda.is_available():
            return
        allocated = GaugeMetricFamily("vortex_vram_allocated_bytes", "Bytes held by live tensors", labels=["device"])
        reserved = GaugeMetricFamily("vortex_vram_reserved_bytes", "Bytes held by PyTorch's caching allocator",
                                     labels=["device"])
        peak = GaugeMetricFamily("vortex_vram_max_allocated_bytes", "Peak bytes held by live tensors",
                                 labels=["device"])
        total = GaugeMetricFamily("vortex_vram_total_bytes", "The device's capacity", labels=["device"])
        for i in range(torch.cuda.device_count()):
            d = str(i)
            allocated.add_metric([d], torch.cuda.memory_allocated(i))
            reserved.add_metric([d], torch.cuda.memory_reserved(i))
            peak.add_metric([d], torch.cuda.max_memory_allocated(i))
            total.add_metric([d], torch.cuda.get_device_properties(i).total_memory)
        yield from (allocated, reserved, peak, total)


class ServiceMetrics:
    def __init__(self, counts: Callable[[], dict[str, int]]):
        disable_created_metrics()  # the *_created series double every histogram for no use here
        self.registry = CollectorRegistry()
        r = self.registry
        self.slot_seconds = Histogram("vortex_slot_seconds", "Wall time of one slot attempt, by outcome",
                                      ["outcome"], buckets=SLOT_BUCKETS, registry=r)
        self.phase_seconds = Histogram("vortex_phase_seconds", "Wall time of one phase of a slot", ["phase"],
                                       buckets=PHASE_BUCKETS, registry=r)
        self.queue_wait_seconds = Histogram("vortex_queue_wait_seconds", "Submission to the start of its run",
                                            buckets=WAIT_BUCKETS, registry=r)
        self.failures = Counter("vortex_slot_failures", "Failed slots by the phase they stopped in and why",
                                ["phase", "kind"], registry=r)
        self.score = Histogram("vortex_verification_score", "Verification scores of finished slots", ["score"],
                               buckets=SCORE_BUCKETS, registry=r)
        self.score_last = Gauge("vortex_verification_score_last", "The last finished slot's verification scores",
                                ["score"], registry=r)
        self.requests = Counter("vortex_http_requests", "HTTP requests by route template and status",
                                ["method", "route", "status"], registry=r)
        self.engine_ready = Gauge("vortex_engine_ready", "1 when the engine is loaded and the worker runs",
                                  registry=r)
        self.channel_slots = Counter("vortex_channel_slots", "Channel slots decided, by what aired "
                                     "(aired, filler:last_good, filler:standby)", ["channel", "decision"], registry=r)
        self.channel_retries = Counter("vortex_channel_retries", "Channel slot attempts beyond the first",
                                       ["channel"], registry=r)
        self.channel_stalls = Counter("vortex_channel_stalls", "Channel slots appended after their air time "
                                      "(a player at the live edge waits there)", ["channel"], registry=r)
        self.channel_lead = Gauge("vortex_channel_lead_time_seconds_last", "The last aired slot's lead time",
                                  ["channel"], registry=r)
        self.channel_lead_seconds = Histogram("vortex_channel_lead_time_seconds", "Aired slots' lead time "
                                              "(air time - ready)", ["channel"], buckets=LEAD_BUCKETS, registry=r)
        self.channel_takeovers = Counter("vortex_channel_takeovers", "Channels this node took over after their "
                                         "owner's lease ran out (it died or stalled)", ["channel"], registry=r)
        self.channel_leases_lost = Counter("vortex_channel_leases_lost", "Channel leases this node lost (it stalled "
                                           "past the lease, or the store was out of reach)", ["channel"], registry=r)
        self.channel_inserts = Counter("vortex_channel_inserts", "Live inserts reaching each state (making: "
                                       "accepted; on_air, aired, failed)", ["channel", "state"], registry=r)
        self.channel_insert_publish_seconds = Histogram(
            "vortex_channel_insert_publish_seconds", "A live insert's POST to its first part listed in the playlist",
            ["channel"], buckets=INSERT_BUCKETS, registry=r)
        self.loudness_lufs = Gauge("vortex_loudness_integrated_lufs_last", "The last slot's integrated loudness "
                                   "(BS.1770-4, on its final audio), by source (job, or channel:NAME)", ["source"],
                                   registry=r)
        self.loudness_peak = Gauge("vortex_loudness_true_peak_dbtp_last", "The last slot's true peak (4x oversampled)",
                                   ["source"], registry=r)
        self.loudness_off = Histogram("vortex_loudness_deviation_lu", "Slots' integrated loudness minus their target",
                                      ["source"], buckets=LOUDNESS_BUCKETS, registry=r)
        r.register(_StoreCollector(counts))
        r.register(_VramCollector())

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_result(self, outcome: str, seconds: float, timings_ms: dict[str, float],
                       failed_phase: Optional[str], error_kind: Optional[str],
                       verification: Optional[dict[str, Any]]) -> None:
        self.slot_seconds.labels(outcome=outcome).observe(seconds)
        for phase, ms in timings_ms.items():
            self.phase_seconds.labels(phase=phase).observe(ms / 1000)
        if outcome == "failed":
            self.failures.labels(phase=failed_phase or "unknown", kind=error_kind or "unknown").inc()
        for name, value in verification_scores(verification).items():
            self.score.labels(score=name).observe(value)
            self.score_last.labels(score=name).set(value)


    def observe_loudness(self, source: str, loudness: Optional[dict[str, Any]]) -> None:
        """A finished slot's loudness figures (the sidecar's `loudness`); a silent slot has none to show."""
        lufs = (loudness or {}).get("integrated_lufs")
        peak = (loudness or {}).get("true_peak_dbtp")
        if isinstance(lufs, (int, float)):
            self.loudness_lufs.labels(source=source).set(lufs)
            target = loudness.get("target_lufs")
            if isinstance(target, (int, float)):
                self.loudness_off.labels(source=source).observe(lufs - target)
        if isinstance(peak, (int, float)):
            self.loudness_peak.labels(source=source).set(peak)


def verification_scores(v: Optional[dict[str, Any]]) -> dict[str, float]:
    """The numbers worth a time series, from the sidecar's `verification` section."""
    if not v:
        return {}
    out = {k: v.get(k) for k in ("ensemble", "mean_b", "mean_l")}
    out["identity_worst_distance"] = (v.get("identity") or {}).get("worst")
    out["lip_sync_r"] = (v.get("lip_sync") or {}).get("r")
    out["speech_wer"] = (v.get("speech") or {}).get("wer")
    return {k: float(x) for k, x in out.items() if isinstance(x, (int, float))}
