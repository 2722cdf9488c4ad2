"""JSON-structured logs: one event a line (slot_id, phase, ms, ...), to a file or stderr.

Quiet by default on the terminal: the CLI shows its own progress lines and sends these events
to stderr only with --verbose, or to a file with --log-file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Optional

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure(verbose: bool = False, log_file: Optional[Path] = None) -> None:
    root = logging.getLogger("vortex")
    root.handlers.clear()
    root.propagate = False
    root.setLevel(logging.INFO)
    if log_file is not None:
        handler: logging.Handler = logging.FileHandler(log_file, encoding="utf-8")
    elif verbose:
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.NullHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)


# Third-party loggers whose warnings are notices, not faults of ours: bitsandbytes warns on every
# import on a CPU with AVX512-BF16 and no `kernels` package ("Failed to load CPU gemm_4bit_forward
# from kernels-community", bitsandbytes/backends/cpu/ops.py; diffusers imports bitsandbytes with
# any model). Their errors still show; the "vortex" logger is untouched.
QUIET_LOGGERS = ("bitsandbytes", "kernels")  # kernels (transformers 5.25 needs it): an offline notice on every import


def quiet_libraries(load: bool = False) -> None:
    """Vortex prints its own progress: the libraries' loading bars and notices go (they return
    with --verbose). Environment switches and logger levels first (no import); with `load`, also
    diffusers' and transformers' own switches, which need the libraries imported (seconds: only
    where models load anyway)."""
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
    if not load:
        return
    import diffusers.utils.logging as diffusers_logging  # diffusers' bars ignore the hub's switch
    import transformers.utils.logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
        library.set_verbosity_error()


def phase_event(logger: logging.Logger, slot_id: int, phase: str, ms: float, **fields) -> None:
    logger.info(f"{phase} done", extra={"event": "phase", "slot_id": slot_id, "phase": phase, "ms": round(ms, 2), **fields})
