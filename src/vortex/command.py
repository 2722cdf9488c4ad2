"""How a `vortex` command runs, for `vortex` itself (cli.py) and the entry points that run one of
its commands alone (`python -m vortex.channel.cli`): the logs configured from the command's own
-v/--log-file, then the command, its errors turned into exit statuses.

    0 done · 1 the slot failed (cli.py) · 2 bad input or settings (a VortexError: the message names
    the field) · 130 Ctrl-C · 143 SIGTERM during a slot (it ended as Ctrl-C would)
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import logs
from .errors import VortexError

EXIT_FAILED, EXIT_USAGE = 1, 2


class Terminated(Exception):
    """SIGTERM (what an orchestrator sends) arrived during a slot; it ended as Ctrl-C would."""


def run_command(parser: argparse.ArgumentParser, argv: Optional[Sequence[str]] = None) -> int:
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
    except Terminated:
        print("vortex: terminated (SIGTERM): the slot was stopped and its temporary files removed", file=sys.stderr)
        return 143
