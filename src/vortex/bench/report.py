"""What one `vortex bench` run measured: its slots, and the figures derived from them.

Over the measured slots that succeeded:

- per phase (the result's `timings_ms`: voice, actor, video, verify) and the whole slot: P50 /
  P95 / P99, mean, min and max, in milliseconds;
- time to the first frame handed to the encoder, measured from the slot's start;
- how long voice and actor really ran at the same time (the overlap of their spans);
- the real-time factor: slot wall time / slot duration (below 1: faster than real time);
- per stage (voice+actor, video, verify) the peak device memory, allocated and reserved, as the
  maximum over slots (failed ones too); zeros on a CPU engine;
- CPU seconds per content second: per stage (vortex.engine.cpu: the threads that did each stage's
  work, plus the threads its library spawned), the process's total over the slot, and the
  remainder no stage accounts for (the interpreter, threads spawned and gone, such as x264's).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from .stats import PERCENTILE_METHOD, Percentiles

if TYPE_CHECKING:
    from ..result import GenerationResult

from .stats import GIB  # noqa: F401 - re-exported (vortex.bench.GIB)

UNATTRIBUTED = "unattributed"  # the process's CPU that no stage accounts for
PROCESS = "process total"
FIRST_FRAME = "first frame"  # the row name of the first-frame latency
FIRST_AUDIO = "first audio"  # ... and of the first chunk of speech
TOTAL = "total"  # the row name of the whole slot


@dataclass
class SlotSample:
    slot_id: int
    seed: int
    success: bool
    duration_sec: float
    generation_time_ms: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    first_frame_ms: Optional[float] = None
    first_audio_ms: Optional[float] = None
    voice_actor_overlap_ms: Optional[float] = None  # how long voice and actor ran at the same time
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)
    error: Optional[str] = None
    failed_phase: Optional[str] = None
    # What the slot's own checks measured on its pixels and sound (None where not measured)
    lip_sync_r: Optional[float] = None
    lip_sync_lag_ms: Optional[float] = None
    identity_worst: Optional[float] = None  # the largest face-descriptor distance to the portrait
    wer: Optional[float] = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds (library threads included)
    process_cpu_s: Optional[float] = None  # the whole process's CPU over the slot (every thread)

    @property
    def real_time_factor(self) -> float:
        return self.generation_time_ms / 1000.0 / self.duration_sec

    @classmethod
    def from_result(cls, result: "GenerationResult", duration_sec: float) -> "SlotSample":
        return cls(
            slot_id=result.slot_id, seed=result.seed, success=result.success, duration_sec=duration_sec,
            generation_time_ms=result.generation_time_ms, timings_ms=dict(result.timings_ms),
            cpu_s=dict(getattr(result, "cpu_s", {}) or {}),
            first_frame_ms=result.first_frame_ms, first_audio_ms=result.first_audio_ms,
            voice_actor_overlap_ms=_overlap_ms(result.spans_ms),
            vram_peaks={k: dict(v) for k, v in result.vram_peaks.items()},
            error=result.error_msg, failed_phase=result.failed_phase, **_check_figures(result),
        )


def _check_figures(result: "GenerationResult") -> dict[str, Optional[float]]:
    v = result.verification
    lips = None if v is None else v.lip_sync
    return {
        "lip_sync_r": None if lips is None else lips.r,
        "lip_sync_lag_ms": None if lips is None or lips.r is None else lips.lag_ms,
        "identity_worst": None if v is None or v.identity is None else v.identity.worst,
        "wer": None if v is None or v.speech is None else v.speech.wer,
    }


def _overlap_ms(spans: dict[str, tuple[float, float]]) -> Optional[float]:
    if "voice" not in spans or "actor" not in spans:
        return None
    (v0, v1), (a0, a1) = spans["voice"], spans["actor"]
    return max(0.0, min(v1, a1) - max(v0, a0))


@dataclass
class LoadFigure:
    component: str
    seconds: float
    weight_bytes: int
    vram_delta: int


@dataclass
class BenchReport:
    profile: str
    description: str
    device: str  # "cpu" | "cuda:0"
    device_name: str  # the GPU's name, or the CPU's model and core count
    stand_ins: list[str]
    recipe: str  # "built-in" or the recipe file
    duration_sec: float
    fps: int
    n_frames: int
    slots: int
    warmup: int
    encode: bool
    load_s: Optional[float]
    load: list[LoadFigure]
    samples: list[SlotSample]  # the measured slots, warm-up excluded
    warmup_samples: list[SlotSample]
    date: str
    commit: Optional[str]
    torch_version: str
    vram_total_bytes: int = 0  # the card's capacity (0 on CPU)
    vram_limit_bytes: int = 0  # the per-process cap in force during the run (0: none)
    animation: str = ""
    notes: list[str] = field(default_factory=list)
    percentile_method: str = PERCENTILE_METHOD
    host_load: list[float] = field(default_factory=list)  # 1/5/15-min load average at the end: CPU contention

    @property
    def on_cpu(self) -> bool:
        return not self.device.startswith("cuda")

    @property
    def succeeded(self) -> list[SlotSample]:
        return [s for s in self.samples if s.success]

    @property
    def failures(self) -> list[SlotSample]:
        return [s for s in self.samples if not s.success]

    # ---- the summary ----------------------------------------------------------------------
    def phases(self) -> dict[str, Percentiles]:
        """Percentiles per phase, then the whole slot and the first frame (ms), successful slots only."""
        ok = self.succeeded
        if not ok:
            return {}
        names: list[str] = []
        for s in ok:
            names += [n for n in s.timings_ms if n not in names]
        rows = {n: Percentiles.of([s.timings_ms[n] for s in ok if n in s.timings_ms]) for n in names}
        rows[TOTAL] = Percentiles.of([s.generation_time_ms for s in ok])
        for row, attr in ((FIRST_AUDIO, "first_audio_ms"), (FIRST_FRAME, "first_frame_ms")):
            firsts = [getattr(s, attr) for s in ok if getattr(s, attr) is not None]
            if firsts:
                rows[row] = Percentiles.of(firsts)
        return rows

    def voice_actor_overlap(self) -> Optional[Percentiles]:
        values = [s.voice_actor_overlap_ms for s in self.succeeded if s.voice_actor_overlap_ms is not None]
        return Percentiles.of(values) if values else None

    def check_figures(self) -> dict[str, Percentiles]:
        """Percentiles of the checks' figures over the successful slots that measured them."""
        out = {}
        for name, attr in (("lip sync r", "lip_sync_r"), ("lip sync lag (ms)", "lip_sync_lag_ms"),
                           ("identity worst dist.", "identity_worst"), ("speech WER", "wer")):
            values = [getattr(s, attr) for s in self.succeeded if getattr(s, attr) is not None]
            if values:
                out[name] = Percentiles.of(values)
        return out

    def real_time_factor(self) -> Optional[Percentiles]:
        ok = self.succeeded
        return Percentiles.of([s.real_time_factor for s in ok]) if ok else None

    def cpu_per_content_second(self) -> dict[str, float]:
        """Core-seconds per content second over the successful slots that measured CPU: each stage,
        then the process total and the unattributed remainder (total minus the stages)."""
        ok = [s for s in self.succeeded if s.process_cpu_s is not None]
        content = sum(s.duration_sec for s in ok)
        if not ok or content <= 0:
            return {}
        from ..engine.cpu import ordered

        stages: dict[str, float] = {}
        for s in ok:
            for k, v in s.cpu_s.items():
                stages[k] = stages.get(k, 0.0) + v
        out = {k: v / content for k, v in ordered(stages)}
        total = sum(s.process_cpu_s for s in ok) / content
        out[UNATTRIBUTED] = total - sum(out.values())
        out[PROCESS] = total
        return out

    def vram_peaks(self) -> dict[str, dict[str, int]]:
        """Per stage, the largest peak over every measured slot (failed ones too: memory is memory)."""
        peaks: dict[str, dict[str, int]] = {}
        for s in self.samples:
            for stage, p in s.vram_peaks.items():
                slot = peaks.setdefault(stage, {"allocated": 0, "reserved": 0})
                for k in ("allocated", "reserved"):
                    slot[k] = max(slot[k], int(p.get(k, 0)))
        return peaks

    def summary(self) -> dict[str, Any]:
        rtf, overlap = self.real_time_factor(), self.voice_actor_overlap()
        return {
            "phases_ms": {k: asdict(v) for k, v in self.phases().items()},
            "real_time_factor": None if rtf is None else asdict(rtf),
            "voice_actor_overlap_ms": None if overlap is None else asdict(overlap),
            "vram_peaks_bytes": self.vram_peaks(),
            "cpu_s_per_content_s": self.cpu_per_content_second(),
            "succeeded": len(self.succeeded),
            "failed": len(self.failures),
        }

    # ---- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary()  # derived; from_json recomputes it from the samples
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "BenchReport":
        data = json.loads(text)
        data.pop("summary", None)
        data["load"] = [LoadFigure(**x) for x in data["load"]]
        data["samples"] = [SlotSample(**x) for x in data["samples"]]
        data["warmup_samples"] = [SlotSample(**x) for x in data["warmup_samples"]]
        return cls(**data)
