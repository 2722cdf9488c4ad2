"""The `vortex` command: generate | plan | models | profiles | bench.

Exit status: 0 done; 1 the slot failed (the reason is printed and in the sidecar); 2 the input,
the configuration or the set-up is wrong (the message says which field or file, and the fix).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from . import logs
from .config import DEFAULT_PROFILE, VortexConfig, available_profiles
from .errors import VortexError
from .recipe import Recipe

EXIT_FAILED, EXIT_USAGE = 1, 2


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logs.configure(verbose=verbose, log_file=getattr(args, "log_file", None))
    if not verbose:
        logs.quiet_libraries()
    try:
        return args.func(args)
    except VortexError as exc:
        print(f"vortex: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("vortex: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vortex", description="Recipe to verified talking-head video slot.")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate one slot from a recipe (JSON or YAML)")
    g.add_argument("recipe", type=Path)
    g.add_argument("-o", "--output", type=Path, help="MP4 to write (default: slot-<slot_id>.mp4); a .json sidecar goes beside it")
    _add_config_args(g)
    g.add_argument("--seed", type=int, help="override the recipe's seed")
    g.add_argument("--slot-id", type=int, help="override the recipe's slot_id")
    g.add_argument("--deadline", type=float, help="seconds the slot may take (default: the profile's generation_timeout_sec)")
    g.add_argument("-v", "--verbose", action="store_true", help="JSON log events on stderr")
    g.add_argument("--log-file", type=Path, help="append JSON log events to this file")
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

    from .bench import add_bench_parser

    add_bench_parser(sub)
    return p


def _add_config_args(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--profile", help=f"a shipped profile (default: {DEFAULT_PROFILE}); see `vortex profiles`")
    group.add_argument("--config", type=Path, help="a config.yaml (may start with `extends: <profile>`)")


def _load_config(args: argparse.Namespace) -> VortexConfig:
    return VortexConfig.load(profile=args.profile, path=args.config)


# ---- generate --------------------------------------------------------------------------------
def _generate(args: argparse.Namespace) -> int:
    recipe = Recipe.from_file(args.recipe)  # validate before loading any model
    cfg = _load_config(args)
    recipe.check_voice(list(cfg.models.kokoro.voices))
    from .motion.expressions import check_expressions

    check_expressions(recipe.visual_track.expression_preset, recipe.visual_track.expression_sequence)
    slot_id = recipe.slot_params.slot_id if args.slot_id is None else args.slot_id
    output = args.output or Path(f"slot-{slot_id}.mp4")
    if output.suffix.lower() != ".mp4":
        raise VortexError(f"output '{output}' must end in .mp4")
    output.parent.mkdir(parents=True, exist_ok=True)

    err = sys.stderr
    print(f"vortex · profile {cfg.profile}: {cfg.description}", file=err)
    if cfg.uses_stand_ins:
        print("  ! this profile runs STAND-INS (miniature seeded-random weights) for: "
              + ", ".join(cfg.stand_ins)
              + ". Their pictures and scores mean nothing; see README, 'Real weights'.", file=err)
    print("  loading models …", file=err, flush=True)

    from .pipeline import VortexPipeline

    if not args.verbose:
        logs.quiet_libraries(load=True)
    pipeline = VortexPipeline(cfg, on_progress=_ProgressPrinter(err))
    print(pipeline.registry.summary(), file=err)
    p = recipe.slot_params
    print(f"  slot {slot_id}: {p.duration_sec:g} s at {p.fps} fps = {p.n_frames} frames, "
          f"{p.n_samples(cfg.buffers.audio.sample_rate)} audio samples", file=err)
    try:
        result = pipeline.generate_slot_sync(recipe, slot_id=slot_id, seed=args.seed, deadline=args.deadline, output=output)
    finally:
        pipeline.close()

    sidecar = output.with_suffix(".json")
    for w in result.warnings:
        print(f"  ! {w}", file=err)
    if result.verification is not None:
        v = result.verification
        enforced = "enforced" if v.enforced else "NOT enforced: stand-in CLIP weights"
        identity = "" if v.identity_min is None else f", identity {v.identity_min:.3f} (≥ {v.identity_threshold:.2f})"
        print(f"  verification: ensemble {v.ensemble:.3f} (B/32 {v.mean_b:.3f}, L/14 {v.mean_l:.3f}) "
              f"threshold {v.threshold:.3f}{identity} → {'pass' if v.passed else 'fail'} ({enforced})", file=err)
    if not result.success:
        print(f"vortex: slot {slot_id} failed in phase '{result.failed_phase}': {result.error_msg}", file=err)
        print(f"  details: {sidecar}", file=err)
        return EXIT_FAILED
    print(f"  seed {result.seed} · proof {result.proof['proof_sha256'][:16]}… · {result.generation_time_ms / 1000:.2f} s", file=err)
    print(f"wrote {output} ({result.video_frames.shape[0]} frames, {result.audio_waveform.shape[0]} samples) and {sidecar}", file=err)
    return 0


class _ProgressPrinter:
    def __init__(self, stream):
        self.stream = stream

    def __call__(self, phase: str, status: str, ms: float) -> None:
        if status == "start":
            print(f"  {phase:<7} … started at {ms / 1000:6.2f} s", file=self.stream, flush=True)
        else:
            print(f"  {phase:<7} … {status} at {ms / 1000:6.2f} s", file=self.stream, flush=True)


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
