"""The speech check: faster-whisper tiny.en transcribes a slot's audio, scored against the script.

    whisper.py    the recogniser (WhisperTranscriber, Transcript)
    normalize.py  the words both sides are compared by, and the word error rate
    check.py      check_speech → SpeechReport
"""

from .check import check_speech
from .normalize import normalize_text, normalize_words, wer
from .whisper import Segment, Transcript, WhisperTranscriber

__all__ = ["check_speech", "normalize_text", "normalize_words", "wer", "Segment", "Transcript", "WhisperTranscriber"]
