"""Before spending device time: does the carried wheel folder complete the device's Python?

Builds a site folder holding only (a) the distributions the device image already has (symlinked
from this machine's environment: KINDS.md's list) and (b) the carried wheels of .device-wheels,
installed with --no-deps (binary cp312 wheels are swapped for this interpreter's build of the
same version), then runs the device check's dry run with `python -S` on that folder alone: an
import the carried set forgot fails here, not on the GPU machine.

    python benchmarks/device/simulate.py [--wheels .device-wheels] [--keep DIR] [-- CHECK ARGS]
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The image's packages that Vortex and its carried dependencies import (.library/device/KINDS.md,
# "Python packages already there", 2026-11-17); the rest of that list is irrelevant here.
DEVICE_HAS = """accelerate annotated-doc anyio attrs certifi charset-normalizer click cloudpickle filelock fsspec
h11 hf-xet httpcore httpx huggingface-hub idna jinja2 joblib markdown-it-py markupsafe mdurl mpmath networkx numpy
onnx onnxruntime packaging pillow protobuf psutil pygments python-dateutil pyyaml regex requests rich safetensors
sentencepiece setuptools shellingham six sympy tokenizers torch tqdm transformers typer typing-extensions urllib3
flatbuffers coloredlogs humanfriendly ml-dtypes""".split()
# This machine's huggingface-hub and transformers (5.25, which requires `kernels` and raises in
# from_pretrained without it; the image's 5.17 does not) are newer than the image's and need
# these; they stand in with them.
STAND_IN_DEPENDENCIES = "httpx2 httpcore2 truststore sniffio typing-inspect mypy-extensions kernels tomlkit".split()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def link_device_packages(site: Path) -> list[str]:
    wanted = {canonical(n) for n in DEVICE_HAS + STAND_IN_DEPENDENCIES}
    linked = []
    for dist in md.distributions():
        name = canonical(dist.metadata["Name"] or "")
        if name not in wanted or not dist.files:
            continue
        tops = {Path(str(f)).parts[0] for f in dist.files if not str(f).startswith("..")}
        for top in tops:
            src, dst = Path(dist.locate_file(top)), site / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
        linked.append(name)
    return linked


def install_carried(site: Path, wheels: Path, scratch: Path) -> None:
    own = f"cp{sys.version_info.major}{sys.version_info.minor}"
    chosen = []
    for wheel in sorted(wheels.glob("*.whl")):
        if "-cp312-" in wheel.name and own != "cp312":  # a compiled wheel: take this interpreter's build
            dist, version = wheel.name.split("-")[:2]
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "-d", str(scratch), f"{dist.replace('_', '-')}=={version}"], check=True)
            chosen += [str(p) for p in scratch.glob(f"{dist}-{version}-*.whl")]
        else:
            chosen.append(str(wheel))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site),
                    *chosen], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / ".device-wheels")
    parser.add_argument("--keep", type=Path, help="build the site here and keep it (default: a temporary folder)")
    parser.add_argument("check_args", nargs="*", help="arguments for check.py (after --)")
    args = parser.parse_args(argv)
    if not args.wheels.is_dir():
        print(f"no {args.wheels}: run benchmarks/device/prepare.sh first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="vortex-devsim-") as tmp:
        base = args.keep or Path(tmp)
        site, scratch = base / "site", base / "scratch"
        site.mkdir(parents=True, exist_ok=True)
        scratch.mkdir(exist_ok=True)
        linked = link_device_packages(site)
        print(f"device image stand-in: {len(linked)} distributions linked from {sys.prefix}")
        install_carried(site, args.wheels, scratch)
        env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
        cmd = [sys.executable, "-S", str(ROOT / "benchmarks" / "device" / "check.py"), "--dry-run",
               "--out", str(base / "out"), *args.check_args]
        print("running:", " ".join(cmd))
        return subprocess.run(cmd, env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
