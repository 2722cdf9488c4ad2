"""The plan as text: the verdict and the table `vortex plan` prints (units: figures.py)."""

from __future__ import annotations

from .figures import GIB, PlanFigures, count_label, gib

RULE = "-" * 110


def verdict(plan: PlanFigures) -> str:
    if not plan.on_gpu:
        return (f"device is {plan.device}: nothing is placed on a GPU. Host figures are what the full-size "
                f"models would need ({gib(plan.host_bytes)}); hypothetical for a CPU profile"
                + (", which runs miniature stand-ins" if plan.config is not None and plan.config.uses_stand_ins else "")
                + ".")
    if not plan.fits:
        return (f"OVER the hard limit by {gib(plan.overage_bytes)}: {gib(plan.gpu_bytes)} needed, "
                f"{gib(plan.hard_limit_bytes)} allowed. The pipeline refuses to start.")
    headroom = plan.hard_limit_bytes - plan.gpu_bytes
    if plan.gpu_bytes > plan.soft_limit_bytes:
        return (f"FITS the hard limit with {gib(headroom)} to spare, but is over the soft limit by "
                f"{gib(plan.gpu_bytes - plan.soft_limit_bytes)} (the monitor will warn).")
    return (f"FITS: {gib(plan.gpu_bytes)} of {gib(plan.hard_limit_bytes)} hard "
            f"({gib(headroom)} to spare; {gib(plan.soft_limit_bytes - plan.gpu_bytes)} under the soft limit).")


def table(plan: PlanFigures, suggestion: str = "") -> str:
    """The table; `suggestion` (the change that fits) is shown when the plan is over."""
    header = f"VRAM plan for profile '{plan.profile}' on {plan.device}   (units: GiB = 2**30 bytes)"
    cols = ("component", "place", "precision", "params", "GiB", "basis / note")
    lines = [header, f"{cols[0]:<40} {cols[1]:<5} {cols[2]:<9} {cols[3]:>8} {cols[4]:>7}  {cols[5]}", RULE]
    for r in plan.rows:
        extra = r.basis + (f"; {r.note}" if r.note else "")
        lines.append(f"{r.component:<40} {r.placement:<5} {r.precision:<9} {count_label(r.params):>8} "
                     f"{r.bytes / GIB:>7.3f}  {extra}")
    lines.append(RULE)
    if plan.peak_phase:
        lines.append(f"GPU activation peak: phase {plan.peak_phase}")
    lines.append(f"GPU total (weights + buffers + context + activation peak): {gib(plan.gpu_bytes)}")
    lines.append(f"host total (host-placed weights + host activation peak):   {gib(plan.host_bytes)}")
    lines.append(f"limits: soft {gib(plan.soft_limit_bytes)}, hard {gib(plan.hard_limit_bytes)}")
    lines.append(f"verdict: {verdict(plan)}")
    lines.extend(plan.notes)
    if suggestion and plan.on_gpu and not plan.fits:
        lines.append(f"suggestion: {suggestion}")
    return "\n".join(lines)
