"""Text to Kokoro phonemes to token ids, offline.

G2P is misaki's espeak backend (`misaki.espeak.EspeakG2P`) over the espeak-ng library that
`espeakng-loader` ships: no spaCy model and no download. For English, espeak's IPA is rewritten
into the phoneme style Kokoro v1.0 was trained on (misaki's American/British sets), the same
rewrites misaki applies when it falls back to espeak for English words.

A script is spoken sentence by sentence: each sentence is one Kokoro call (its own context of at
most 510 phonemes), and a sentence too long for the context is cut at a pause or a word boundary.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from ..errors import VortexInitializationError

# espeak IPA -> misaki phonemes, applied in order (longer patterns first where they overlap).
_ENGLISH_COMMON = (
    ("ʔˌn\u0329", "ʔn"), ("ʔn\u0329", "ʔn"),
    ("r", "ɹ"), ("x", "k"), ("ç", "k"), ("ɐ", "ə"), ("ɬ", "l"),
    ("ʲo", "jo"), ("ʲə", "jə"), ("ʲ", ""), ("\u0303", ""),
)
_ENGLISH_US = (("ɚ", "əɹ"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ː", ""))
_ENGLISH_GB = (("eə", "ɛː"), ("iə", "ɪə"))
_SYLLABIC = re.compile("(\\S)\u0329")  # espeak's syllabic consonant n̩ -> misaki's ᵊn

# A sentence ends after . ! ? … ; (optionally closed by a quote or bracket) and whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?…;][\"'”’)\]])\s+|(?<=[.!?…;])\s+")
# Titles whose period does not end a sentence ("Mr. Smith").
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr|vs|etc|e\.g|i\.e)\.$", re.IGNORECASE)
_PAUSES = ".!?…;:,—"


@dataclass(frozen=True)
class PhonemeChunk:
    """One Kokoro call: the phoneme chars kept (all in the vocab) and their token ids; `sentence`
    is the index of the script's sentence it speaks and `text` that sentence's words (a sentence
    longer than the context is spoken in several chunks that share both)."""

    phonemes: str
    token_ids: tuple[int, ...]
    sentence: int = 0
    text: str = ""


class Phonemizer:
    def __init__(self, language: str) -> None:
        try:
            from misaki import espeak
        except (ImportError, OSError) as exc:
            raise VortexInitializationError(
                f"kokoro G2P needs misaki's espeak backend and the espeak-ng library: "
                f"pip install misaki espeakng-loader ({exc})"
            ) from None
        try:
            self._g2p = espeak.EspeakG2P(language=language)
        except RuntimeError as exc:  # phonemizer: language unknown to espeak-ng
            raise VortexInitializationError(f"models.kokoro.language '{language}': {exc}") from None
        self.language = language
        self._lock = threading.Lock()
        self._english = language.lower().startswith("en")
        self._british = language.lower() in ("en-gb", "en-uk", "en-gb-x-rp")

    def __call__(self, text: str) -> str:
        with self._lock:  # espeak-ng is one C library state per process: one call at a time
            phonemes, _ = self._g2p(unspoken_symbols_removed(text))
        return self._to_misaki(phonemes) if self._english else phonemes

    def _to_misaki(self, phonemes: str) -> str:
        for old, new in _ENGLISH_COMMON:
            phonemes = phonemes.replace(old, new)
        phonemes = _SYLLABIC.sub("ᵊ\\1", phonemes)
        for old, new in _ENGLISH_GB if self._british else _ENGLISH_US:
            phonemes = phonemes.replace(old, new)
        # misaki's v1.0 set spells the flap and the glottal stop as T and t.
        return phonemes.replace("ɾ", "T").replace("ʔ", "t")


def unspoken_symbols_removed(text: str) -> str:
    """The script without emoji and pictographs: espeak reads them by their Unicode names
    ("👋" becomes "waving hand", measured), which no presenter would say. Symbols with a spoken
    word of their own (%, $, &, +, ×) are kept; arrows, emoji joiners and variation selectors go."""
    import unicodedata

    kept = []
    for ch in text:
        if ch in "\u200d\ufe0e\ufe0f" or (unicodedata.category(ch) in ("So", "Sk", "Sm") and ord(ch) >= 0x2190):
            kept.append(" ")
        else:
            kept.append(ch)
    return "".join(kept)


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for piece in _SENTENCE_END.split(text.strip()):
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece.strip()}".strip()
        elif piece.strip():
            sentences.append(piece.strip())
    return sentences


def to_tokens(phonemes: str, vocab: dict[str, int]) -> PhonemeChunk:
    """Drop the chars the vocabulary lacks (as KModel does), keeping text and ids aligned."""
    kept = "".join(c for c in phonemes if c in vocab)
    return PhonemeChunk(kept, tuple(vocab[c] for c in kept))


def split_to_context(phonemes: str, limit: int) -> list[str]:
    """Cut a phoneme string into pieces of at most `limit` chars: after a pause mark if one is
    in the second half of the window, else at the last space, else hard."""
    pieces = []
    rest = phonemes.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = max(window.rfind(p, 0, limit) for p in _PAUSES) + 1  # keep the pause mark
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return [p for p in pieces if p]


def script_chunks(text: str, phonemize: Phonemizer, vocab: dict[str, int], limit: int) -> list[PhonemeChunk]:
    """The script as Kokoro calls: one per sentence, each within the `limit`-phoneme context."""
    chunks = []
    for index, sentence in enumerate(split_sentences(text)):
        for piece in split_to_context(to_tokens(phonemize(sentence), vocab).phonemes, limit):
            chunk = to_tokens(piece, vocab)
            if chunk.token_ids:
                chunks.append(PhonemeChunk(chunk.phonemes, chunk.token_ids, index, sentence))
    return chunks
