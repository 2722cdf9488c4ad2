"""Rewrite a wheel without the files it does not need on the device, so the carried folder fits the
device tool's 64 MiB tree limit. The wheel keeps its name; RECORD loses the dropped entries (pip
checks the hashes of what is listed, and nothing else).

    python benchmarks/device/slim_wheel.py WHEEL --drop GLOB [--drop GLOB ...] [--keep GLOB ...]

A file is dropped when it matches a --drop pattern and no --keep pattern (fnmatch on its path
inside the wheel).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
import zipfile
from pathlib import Path


def slim(wheel: Path, drop: list[str], keep: list[str]) -> tuple[int, int]:
    def dropped(name: str) -> bool:
        return any(fnmatch.fnmatch(name, p) for p in drop) and not any(fnmatch.fnmatch(name, p) for p in keep)

    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".slim.tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        names = [i.filename for i in src.infolist()]
        gone = {n for n in names if dropped(n)}
        for info in src.infolist():
            if info.filename in gone:
                continue
            data = src.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = [line for line in data.decode().splitlines() if line.split(",", 1)[0] not in gone]
                data = ("\n".join(lines) + "\n").encode()
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    os.replace(tmp, wheel)
    return before, wheel.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path)
    parser.add_argument("--drop", action="append", default=[])
    parser.add_argument("--keep", action="append", default=[])
    args = parser.parse_args(argv)
    before, after = slim(args.wheel, args.drop, args.keep)
    print(f"{args.wheel.name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
