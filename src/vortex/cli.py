"""The `vortex` command: generate | plan | models | profiles | bench | serve | channel.

Exit status: 0 done; 1 the slot failed (the reason is printed and in the sidecar); 2 the input,
the configuration or the set-up is wrong (the message says which field or file, and the fix).
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence

from . import logs
from .command import EXIT_FAILED, EXIT_USAGE, Terminated, run_command
from .config import DEFAULT_PROFILE, VortexConfig, available_profiles
from .contracts.requests import SlotRequest
from .provenance.cli import add_provenance_parsers, add_signing_args, apply_signing
from .recipe import Recipe


def main(argv: Optional[Sequence[str]] = None) -> int:
    return run_command(_parser(), argv)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vortex", description="Recipe to verified talking-head video slot.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate one slot from a recipe (JSON or YAML)")
    g.add_argument("recipe", type=Path)
    g.add_argument("-o", "--output", type=Path, help="MP4 to write (default: slot-<slot_id>.mp4); a .json sidecar goes beside it")
    _add_config_args(g)
    g.add_argument("--seed", type=_seed, help="override the recipe's seed (0 to 2^63-1)")
    g.add_argument("--slot-id", type=int, help="override the recipe's slot_id")
    g.add_argument("--deadline", type=_seconds, help="seconds the slot may take (default: the profile's generation_timeout_sec)")
    g.add_argument("-v", "--verbose", action="store_true", help="JSON log events on stderr")
    g.add_argument("--log-file", type=Path, help="append JSON log events to this file")
    add_signing_args(g)
    g.set_defaults(func=_generate)

    pl = sub.add_parser("plan", help="print the computed VRAM plan of a profile and its verdict")
    _add_config_args(pl)
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=_plan)

    m = sub.add_parser("models", help="list the weights a profile needs, or pull them (online)")
    msub = m.add_subparsers(dest="models_command", required=True)
    ml = msub.add_parser("list", help="show each component's weights and whether they are on this machine")
    _add_config_args(ml)
    ml.set_defaults(func=_models_list)
    mp = msub.add_parser("pull", help="download the profile's weights into the Hugging Face cache (needs network)")
    _add_config_args(mp)
    mp.set_defaults(func=_models_pull)

    pr = sub.add_parser("profiles", help="list the shipped profiles")
    pr.set_defaults(func=_profiles)

    from .bench.cli import add_bench_parser  # imports no torch: see vortex/bench/cli.py

    add_bench_parser(sub)
    from .service.cli import add_serve_parser  # imports neither torch nor FastAPI until it runs

    add_serve_parser(sub)
    from .channel.cli import add_channel_parser  # imports no torch until it runs

    add_channel_parser(sub)
    add_provenance_parsers(sub)  # keys init, verify
    return p


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2^63-1, got {text!r}") from None
    if not 0 <= value < 2**63:  # the recipe's own range: the proof hashes it as a 63-bit seed
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2^63-1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:  # NaN would silently mean "no deadline"
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _add_config_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--profile", help=f"a shipped profile (default: {DEFAULT_PROFILE}); see `vortex profiles`")
    group.add_argument("--config", type=Path, help="a config.yaml (may start with `extends: <profile>`)")


def _load_config(args: argparse.Namespace) -> VortexConfig:
    return VortexConfig.load(profile=args.profile, path=args.config)


# ---- generate --------------------------------------------------------------------------------
def _generate(args: argparse.Namespace) -> int:
    with _SigtermGuard() as guard:
        return _generate_slot(args, guard)


class _SigtermGuard:
    """SIGTERM (what an orchestrator sends) ends the slot as Ctrl-C would: the running request is
    cancelled, its workers drain, its temporary files go, and the command exits 143. Installed for
    the whole command, so a signal during loading or printing is never the default bare kill."""

    def __init__(self) -> None:
        self.seen = False
        self.cancel: Optional[Callable[[], None]] = None

    def __enter__(self) -> "_SigtermGuard":
        signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def _on_sigterm(self, signum, frame) -> None:
        self.seen = True
        if self.cancel is not None:
            self.cancel()

    def check(self) -> None:
        if self.seen:
            raise Terminated()


def _generate_slot(args: argparse.Namespace, guard: _SigtermGuard) -> int:
    recipe = Recipe.from_file(args.recipe)  # validate before loading any model
    cfg = _load_config(args)
    from .engine.admission import admit
    from .engine.outputs import SlotOutput

    admit(cfg, recipe)  # buffers, a speakable script, a known voice, the expressions: before any model loads
    from .program.sink import config_program

    config_program(cfg, recipe)  # a config's program block: files, font, text widths (exit 2 naming program.<field>)
    slot_id = recipe.slot_params.slot_id if args.slot_id is None else args.slot_id
    output = SlotOutput.prepare(args.output or Path(f"slot-{slot_id}.mp4"))  # refused now, not after the render

    err = sys.stderr
    print(f"vortex · profile {cfg.profile}: {cfg.description}", file=err)
    cfg = apply_signing(cfg, args, err)  # a bad key or chain: exit 2 now, before any model loads
    if cfg.uses_stand_ins:
        print("  ! this profile runs STAND-INS for: " + ", ".join(cfg.stand_ins)
              + ". See README, 'What the default profile is'.", file=err)
    print("  loading models …", file=err, flush=True)

    from .engine.factory import build_engine

    if not args.verbose:
        logs.quiet_libraries(load=True)
    pipeline = build_engine(cfg)
    print(pipeline.registry.summary(), file=err)
    p = recipe.slot_params
    print(f"  slot {slot_id}: {p.duration_sec:g} s at {p.fps} fps = {p.n_frames} frames, "
          f"{p.n_samples(cfg.buffers.audio.sample_rate)} audio samples", file=err)
    request = SlotRequest(recipe=recipe, slot_id=slot_id, seed=args.seed, deadline_s=args.deadline, output=output.mp4)
    guard.cancel = lambda: pipeline.cancel(request.id)
    try:
        guard.check()  # it came while the models loaded: no slot starts
        result = pipeline.run(request, on_event=_ProgressPrinter(err))
    finally:
        guard.cancel = None
        pipeline.close()
    guard.check()

    for w in result.warnings:
        print(f"  ! {w}", file=err)
    if result.verification is not None:
        print(_verification_line(result.verification), file=err)
    for line in _check_lines(result):
        print(line, file=err)
    if not result.success:
        print(f"vortex: slot {slot_id} failed in phase '{result.failed_phase}': {result.error_msg}", file=err)
        if result.report_path is not None:
            print(f"  details: {result.report_path}", file=err)
        # A portrait without a face is found only once the portrait is read: still bad input.
        return EXIT_USAGE if result.error_kind == "input" else EXIT_FAILED
    print(f"  seed {result.seed} · proof {result.proof['proof_sha256'][:16]}… · {result.generation_time_ms / 1000:.2f} s", file=err)
    print(f"wrote {output.mp4} ({result.n_frames} frames, {result.audio_waveform.shape[0]} samples) "
          f"with {len(result.captions)} caption cue(s) in {output.captions}, and {output.sidecar}", file=err)
    return 0



def _verification_line(v) -> str:
    enforced = "enforced" if v.enforced else "NOT enforced: stand-in CLIP weights"
    return (f"  verification: CLIP ensemble {v.ensemble:.3f} (B/32 {v.mean_b:.3f}, L/14 {v.mean_l:.3f}) "
            f"threshold {v.threshold:.3f} → {'pass' if v.passed else 'fail'} ({enforced})")


def _check_lines(result) -> list[str]:
    """One line per face and speech check: the number, the threshold, and whether it counts."""
    v = result.verification
    if v is None:
        return []

    def state(r) -> str:
        verdict = "pass" if r.passed else "fail"
        return f"{verdict} (enforced)" if r.enforced else f"{verdict} (NOT enforced: {r.why_not_enforced})"

    lines = [f"  animation: {result.animation}; portrait: {result.actor.get('origin', '?')}"]
    if v.identity is not None:
        i = v.identity
        worst = "not measured" if i.worst is None else f"worst face distance {i.worst:.3f}"
        lines.append(f"  identity: {worst} over {len(i.distances)} frames (same person < {i.max_distance:.2f}) → {state(i)}")
    if v.lip_sync is not None:
        l = v.lip_sync
        r = "not measured" if l.r is None else f"r {l.r:.3f} at lag {l.lag_ms:+.0f} ms"
        lines.append(f"  lip sync: {r} (floor {l.floor:.2f}) → {state(l)}")
    if v.speech is not None:
        sp = v.speech
        wer = "not measured" if sp.wer is None else f"WER {sp.wer:.2f}, heard {sp.transcript[:60]!r}"
        lines.append(f"  speech: {wer} (max {sp.max_wer:.2f}) → {state(sp)}")
    return lines


class _ProgressPrinter:
    """The slot's events as one line each on the terminal."""

    def __init__(self, stream):
        self.stream = stream
        self._lock = threading.Lock()  # events come from two worker threads at once: whole lines

    def __call__(self, event) -> None:
        if event.kind in ("progress", "result"):
            return
        d = event.data
        if event.kind == "chunk":
            what = f"chunk {d['index']} ({d['seconds']:.2f} s of speech at {d['start_s']:.2f} s): {d['text'][:48]!r}"
        elif event.kind == "chunk_checked":
            verdict = "ok" if d["passed"] else "NOT HEARD"
            what = f"sentence {'+'.join(map(str, d['sentences']))} heard, WER {d['wer']:.2f} {verdict}"
        else:
            what = {"phase_started": "started", "phase_done": "done", "phase_failed": "failed",
                    "first_frame": "first frame", "first_audio": "first audio"}[event.kind]
        line = f"  {event.phase or '':<12} … {what} at {event.at_ms / 1000:6.2f} s\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()


# ---- plan, models, profiles -----------------------------------------------------------------
def _plan(args: argparse.Namespace) -> int:
    from .memory.plan import compute_plan

    plan = compute_plan(_load_config(args))
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.table())
    return 0


def _models_list(args: argparse.Namespace) -> int:
    from .weights import weights_status

    cfg = _load_config(args)
    print(f"profile {cfg.profile}")
    for name, (source, status) in weights_status(cfg).items():
        print(f"  {name:<12} {source:<36} {status}")
    return 0


def _models_pull(args: argparse.Namespace) -> int:
    from .weights import pull_profile

    cfg = _load_config(args)
    for name, message in pull_profile(cfg, progress=lambda n: print(f"  pulling {n} …", flush=True)):
        print(f"  {name:<12} {message}")
    return 0


def _profiles(args: argparse.Namespace) -> int:
    for name in available_profiles():
        cfg = VortexConfig.load(profile=name)
        marker = " (default)" if name == DEFAULT_PROFILE else ""
        print(f"  {name:<14}{marker:<10} {cfg.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
