"""The bench report as the terminal table `vortex bench` prints (this module reads the report; the
report never imports it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .report import PROCESS, UNATTRIBUTED
from .stats import GIB, Percentiles

if TYPE_CHECKING:
    from .report import BenchReport


def report_table(r: "BenchReport") -> str:
    where = (f"CPU ({r.device_name}) — CPU figures, no GPU" if r.on_cpu
             else f"GPU {r.device_name} ({r.device}, {r.vram_total_bytes / GIB:.1f} GiB)")
    lines = [f"vortex bench · profile {r.profile} · {where}"]
    if r.stand_ins:
        lines.append(f"  STAND-INS (named in the profile; see README): {', '.join(r.stand_ins)}")
    lines.append(f"  recipe {r.recipe}: {r.duration_sec:g} s at {r.fps} fps = {r.n_frames} frames; "
                 f"{r.slots} slots measured after {r.warmup} warm-up; "
                 f"MP4 encode {'on' if r.encode else 'off'}; animation {r.animation or '?'}")
    load = f"{r.load_s:.1f} s" if r.load_s is not None else "not measured here"
    lines.append(f"  engine load {load}; torch {r.torch_version}; {r.date}"
                 + (f"; commit {r.commit[:12]}" if r.commit else "")
                 + (f"; host load average {r.host_load[0]:.2f}" if r.host_load else ""))
    if r.vram_limit_bytes:
        lines.append(f"  per-process VRAM cap: {r.vram_limit_bytes / GIB:.2f} GiB")
    lines.append(f"  percentiles: {r.percentile_method}")
    lines.append("")
    unit = "ms (CPU)" if r.on_cpu else "ms"
    lines.append(f"{'phase':<22}{'P50':>10}{'P95':>10}{'P99':>10}{'mean':>10}{'min':>10}{'max':>10}  {unit}")
    lines.append("-" * 92)
    for name, p in r.phases().items():
        lines.append(_row(name, p, "{:10.1f}"))
    overlap = r.voice_actor_overlap()
    if overlap is not None:
        lines.append(_row("voice ‖ actor overlap", overlap, "{:10.1f}"))
    rtf = r.real_time_factor()
    if rtf is not None:
        lines.append(_row("real-time factor", rtf, "{:10.3f}") + "  slot time / slot duration")
    for name, p in r.check_figures().items():
        lines.append(_row(name, p, "{:10.3f}"))
    if not r.succeeded:
        lines.append("(no slot succeeded: no latency figures)")
    lines.append("")
    lines.append(f"{'peak memory per stage':<22}{'allocated':>14}{'reserved':>14}")
    lines.append("-" * 50)
    for stage, p in r.vram_peaks().items():
        if r.on_cpu:
            lines.append(f"{stage:<22}{'n/a (CPU)':>14}{'n/a (CPU)':>14}")
        else:
            lines.append(f"{stage:<22}{p['allocated'] / GIB:>10.2f} GiB{p['reserved'] / GIB:>10.2f} GiB")
    lines.extend(_cpu_lines(r))
    for s in r.failures:
        lines.append(f"FAILED slot {s.slot_id} in '{s.failed_phase}': {s.error}")
    lines.extend(f"note: {n}" for n in r.notes)
    return "\n".join(lines)


def _cpu_lines(r: "BenchReport") -> list[str]:
    cpu = r.cpu_per_content_second()
    if not cpu:
        return []
    total = cpu[PROCESS]
    lines = ["", f"{'CPU per content second':<26}{'core-s':>10}{'share':>9}",  "-" * 45]
    for stage, v in cpu.items():
        if stage == PROCESS:
            lines.append("-" * 45)
        share = "" if stage == PROCESS else f"{100 * v / total:8.1f}%" if total else ""
        lines.append(f"{stage:<26}{v:>10.3f}{share:>9}")
    lines.append("  stages: thread_time of the threads that did their work, plus the threads their library spawned;")
    lines.append(f"  '{UNATTRIBUTED}': process CPU no stage accounts for (interpreter, short-lived library threads)")
    return lines


def _row(name: str, p: Percentiles, fmt: str) -> str:
    return f"{name:<22}" + "".join(fmt.format(v) for v in (p.p50, p.p95, p.p99, p.mean, p.min, p.max))
