"""What both Kokoro backends share: the model's fixed sizes and the voice-pack checks."""

from __future__ import annotations

from ...errors import ConfigError, VortexInitializationError

SAMPLE_RATE = 24000
SAMPLES_PER_UNIT = 600  # one predicted duration unit: 25 ms at 24 kHz
CONTEXT_PHONEMES = 510  # PL-BERT's 512 positions minus the two pads; also the voice packs' rows
STYLE_WIDTH = 256


def _missing_packs(missing: list[str], where: str, available: list[str]) -> ConfigError:
    return ConfigError(
        f"models.kokoro.voices names voice pack(s) {', '.join(missing)} that {where} lacks; "
        f"available: {', '.join(available) or 'none'}"
    )


def _check_pack_shape(name: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or shape[1:] != (1, STYLE_WIDTH) or shape[0] < 1:
        raise VortexInitializationError(
            f"kokoro: voice pack '{name}' has shape {shape}; Kokoro voice packs are ({CONTEXT_PHONEMES}, 1, {STYLE_WIDTH})"
        )


def _few(keys: list[str], limit: int = 5) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more
