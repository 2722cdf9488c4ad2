"""`vortex channel run CHANNEL.yaml --out DIR`: a schedule of recipes becomes a live HLS stream.

Registering the parser imports no torch: the engine is imported when the command runs.
Exit status: 0 the run ended (``--max-slots`` reached, the list ended, or stopped by SIGTERM /
Ctrl-C: the playlist then keeps no ENDLIST, so the same command continues it); 2 the channel
file, a recipe, the config or the folder is wrong (the message names the field or file).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

def add_channel_parser(subparsers) -> argparse.ArgumentParser:
    from ..config import DEFAULT_PROFILE

    c = subparsers.add_parser("channel", help="run a channel: a schedule of recipes as one live HLS stream")
    csub = c.add_subparsers(dest="channel_command", required=True)
    r = csub.add_parser("run", help="make the channel's stream (DIR/index.m3u8) slot by slot, ahead of air time")
    r.add_argument("channel", type=Path, help="the channel definition (YAML or JSON)")
    r.add_argument("--out", type=Path, required=True, help="the stream's folder; the same folder resumes a channel")
    r.add_argument("--max-slots", type=_positive, help="stop after this many schedule items in all (fillers and breaks count), "
                   "ending the playlist with EXT-X-ENDLIST; default: run until SIGTERM/Ctrl-C")
    group = r.add_mutually_exclusive_group()
    group.add_argument("--profile", help=f"a shipped profile (default: {DEFAULT_PROFILE})")
    group.add_argument("--config", type=Path, help="a config.yaml (may start with `extends: <profile>`)")
    r.add_argument("--pace", choices=("realtime", "asap"), default="realtime",
                   help="realtime: publish with the wall clock (a live stream); asap: as fast as slots are made")
    r.add_argument("--part-seconds", type=float, default=0.5,
                   help="LL-HLS part length (a whole number of frames dividing the 2 s segment, at most 1 s; "
                        "default 0.5); realtime hands media over this long before air")
    r.add_argument("-v", "--verbose", action="store_true", help="JSON log events on stderr")
    from ..provenance.cli import add_signing_args

    add_signing_args(r)
    r.set_defaults(func=_run)
    from .live_cli import add_live_parser

    add_live_parser(csub)
    return c


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _run(args: argparse.Namespace) -> int:
    from .. import logs
    from ..config import VortexConfig
    from .definition import ChannelDefinition
    from .scheduler import ChannelRunner, RunOptions

    definition = ChannelDefinition.from_file(args.channel)  # validated before any model loads
    cfg = VortexConfig.load(profile=args.profile, path=args.config)
    definition.check(cfg)
    err = sys.stderr
    from ..provenance.cli import apply_signing

    cfg = apply_signing(cfg, args, err)  # a bad key or chain: exit 2 before any model loads
    v = cfg.buffers.video
    print(f"vortex channel {definition.name} · profile {cfg.profile} · {len(definition.slots)} recipes"
          f"{' (looped)' if definition.loop else ''} · {v.width}x{v.height} at {definition.fps} fps · "
          f"pace {args.pace} → {args.out}", file=err)
    print("  loading models …", file=err, flush=True)
    from ..engine.factory import build_engine

    if not args.verbose:
        logs.quiet_libraries(load=True)
    pipeline = build_engine(cfg)
    options = RunOptions(out=args.out, width=v.width, height=v.height, sample_rate=cfg.buffers.audio.sample_rate,
                         pace=args.pace, max_slots=args.max_slots, part_seconds=args.part_seconds)
    runner = ChannelRunner(definition, pipeline, options, cfg.pipeline.generation_timeout_sec,
                           say=lambda line: print(line, flush=True))
    stopped = []

    def on_signal(signum, frame) -> None:
        stopped.append(signum)
        runner.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        state = runner.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        pipeline.close()
    how = "stopped by a signal: the playlist stays open (no ENDLIST); run the same command to continue" if stopped \
        else ("ended (EXT-X-ENDLIST)" if state.ended else "done")
    print(f"channel {definition.name}: {runner.appended} slot(s) appended this run, {len(state.slots)} in all; "
          f"{how}", file=err)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m vortex.channel.cli run ...`: the same as `vortex channel run ...`."""
    from ..command import run_command

    parser = argparse.ArgumentParser(prog="vortex")
    add_channel_parser(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(parser, argv if argv[:1] == ["channel"] else ["channel", *argv])


if __name__ == "__main__":
    sys.exit(main())
