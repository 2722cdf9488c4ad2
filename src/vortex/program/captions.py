"""Captions from the speech timeline: each script word's time, the cues, and their writers.

Word times come from the speech plan (vortex.models.kokoro.voice.SpeechPlan), not from a
recogniser: the timeline holds one entry per phoneme char, with its start and length in samples
(Kokoro's per-token durations), and espeak separates a chunk's words with spaces. A sentence's
phoneme words are matched to its script words one to one; where espeak says a word as several
("3.5%" is "three point five percent") each script word is phonemized alone to count its phoneme
words; only if that still disagrees are the words spread over the phoneme chars by their letters.
A word starts at its first phoneme's first sample and ends after its last non-punctuation phoneme.

Cues (CEA-608-safe): at most MAX_LINES lines of MAX_CHARS characters, MIN_S to MAX_S seconds
each, starting at their first word's first sample, ending HOLD_S after their last word (or at the
next cue). They break at a sentence's (a chunk's) end once they last MIN_S, and wherever the next word would
not fit. Each cue names the speech chunks its words come from: a chunk that airs as the stand-by
card (a live insert's failed check) takes its cues off the air.

Writers: WebVTT text (`webvtt`), and a `mov_text` (3GPP timed text, tx3g) track muxed into a
PyAV container through ffmpeg's own encoder (`add_mov_text`). `cue_image` renders one cue as an
RGBA image for burned-in captions (the compositor places it: vortex.program.compose).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Optional

from ..contracts.captions import Cue

MAX_CHARS = 32  # a CEA-608 caption row
MAX_LINES = 2
MIN_S, MAX_S = 1.0, 7.0
HOLD_S = 0.6  # a cue stays this long after its last word (reading time), unless the next one starts
_PUNCT = set(",.;:!?—–-…\"'“”()[] ")
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


@dataclass(frozen=True)
class Word:
    text: str  # as the script spells it
    start: float  # seconds from the slot's first sample
    end: float
    chunk: int
    sentence: int


# ---- word times ---------------------------------------------------------------------------------
def words(plan: Any, sample_rate: int, count: Optional[Callable[[str], int]] = None) -> list[Word]:
    """Every script word of `plan` (a SpeechPlan) with its time. `count(word)` says how many
    phoneme words the G2P makes of one script word (used where a sentence's counts disagree)."""
    timeline = plan.timeline
    starts, samples = timeline.starts, timeline.samples
    spans: list[tuple[int, int, int, str]] = []  # per phoneme word: first char, last spoken char, chunk
    offset = 0
    by_sentence: dict[int, list[int]] = {}
    texts: dict[int, str] = {}
    for k, chunk in enumerate(plan.chunks):
        if k:
            offset += 1  # the pause entry between two chunks
        position = 0
        for piece in chunk.phonemes.split(" "):
            if piece:
                spoken = [i for i, ch in enumerate(piece) if ch not in _PUNCT] or list(range(len(piece)))
                by_sentence.setdefault(chunk.sentence, []).append(len(spans))
                spans.append((offset + position + spoken[0], offset + position + spoken[-1], k, piece))
            position += len(piece) + 1
        offset += len(chunk.phonemes)
        texts[chunk.sentence] = chunk.text
    out: list[Word] = []
    for sentence, indices in by_sentence.items():
        script = texts[sentence].split()
        owners = _match(script, [spans[i][3] for i in indices], count)
        for w, (first, last) in zip(script, owners):
            if first is None:  # a word espeak does not say ("—" dropped, an emoji): it rides with the previous
                t = out[-1].end if out else starts[spans[indices[0]][0]] / sample_rate
                out.append(Word(w, t, t, spans[indices[0]][2], sentence))
                continue
            a, b = spans[indices[first]], spans[indices[last]]
            out.append(Word(w, int(starts[a[0]]) / sample_rate, int(starts[b[1]] + samples[b[1]]) / sample_rate,
                            a[2], sentence))
    return out


def _match(script: list[str], phonemes: list[str], count) -> list[tuple[Optional[int], Optional[int]]]:
    """For each script word, the first and last of the sentence's phoneme words it is spoken as."""
    n = len(phonemes)
    if len(script) == n:
        return [(i, i) for i in range(n)]
    counts = [count(w) for w in script] if count is not None else None
    if counts is not None and sum(counts) == n:
        out, i = [], 0
        for c in counts:
            out.append((i, i + c - 1) if c else (None, None))
            i += c
        return out
    # Spread by letters: script word j owns the phoneme words whose middle falls in its share.
    letters = [max(1, len(w)) for w in script]
    sizes = [max(1, len(p)) for p in phonemes]
    total_l, total_p = sum(letters), sum(sizes)
    bounds, acc = [], 0
    for size in letters:
        acc += size
        bounds.append(acc / total_l)
    owner, acc = [], 0
    for size in sizes:
        middle = (acc + size / 2) / total_p
        owner.append(next(j for j, b in enumerate(bounds) if middle <= b or j == len(bounds) - 1))
        acc += size
    out = []
    for j in range(len(script)):
        mine = [i for i, o in enumerate(owner) if o == j]
        out.append((mine[0], mine[-1]) if mine else (None, None))
    return out


# ---- cues ------------------------------------------------------------------------------------------
def lines(text_words: Sequence[str], width: int = MAX_CHARS) -> list[str]:
    """Words wrapped into lines of at most `width` characters (a longer word has a line of its own)."""
    out: list[str] = []
    for w in text_words:
        if out and len(out[-1]) + 1 + len(w) <= width:
            out[-1] += " " + w
        else:
            out.append(w)
    return out


def cues(all_words: Sequence[Word], duration_s: float) -> tuple[Cue, ...]:
    """The slot's cues (see the module note); `duration_s` is the slot's length."""
    groups: list[list[Word]] = []
    for w in all_words:
        current = groups[-1] if groups else None
        if current is not None:
            fits = len(lines([x.text for x in current] + [w.text])) <= MAX_LINES
            long_enough = w.start - current[0].start >= MIN_S
            boundary = w.chunk != current[-1].chunk or _SENTENCE_END.search(current[-1].text) is not None
            if fits and w.end - current[0].start <= MAX_S - 0.1 and not (boundary and long_enough):
                current.append(w)
                continue
        groups.append([w])
    # A group shorter than MIN_S before the next one starts joins the next if their words fit together.
    k = 0
    while k < len(groups) - 1:
        a, b = groups[k], groups[k + 1]
        if b[0].start - a[0].start < MIN_S and len(lines([x.text for x in a + b])) <= MAX_LINES \
                and b[-1].end - a[0].start <= MAX_S - 0.1:
            groups[k:k + 2] = [a + b]
        else:
            k += 1
    out = []
    for k, g in enumerate(groups):
        start = g[0].start
        limit = min(groups[k + 1][0].start if k + 1 < len(groups) else duration_s, start + MAX_S, duration_s)
        end = min(max(g[-1].end + HOLD_S, start + MIN_S), limit)
        out.append(Cue(round(start, 3), round(end, 3), "\n".join(lines([w.text for w in g])),
                       tuple(sorted({w.chunk for w in g}))))
    return tuple(out)


def slot_cues(plan: Any, sample_rate: int, phoneme_chunks: Optional[Callable[[str], Sequence[Any]]] = None
              ) -> tuple[Cue, ...]:
    """The cues of one slot's speech plan; `phoneme_chunks` is the voice's G2P (KokoroVoice.phoneme_chunks),
    which counts a word's phoneme words where a sentence's counts disagree."""
    count = None if phoneme_chunks is None else (lambda w: sum(len(c.phonemes.split()) for c in phoneme_chunks(w)))
    return cues(words(plan, sample_rate, count), plan.n_samples / sample_rate)


def aired(all_cues: Sequence[Cue], failed_chunks: set[int]) -> tuple[Cue, ...]:
    """The cues without those of chunks that aired as the card."""
    return tuple(c for c in all_cues if not failed_chunks.intersection(c.chunks))


# ---- writers ---------------------------------------------------------------------------------------
def timestamp(seconds: float) -> str:
    """WebVTT's HH:MM:SS.mmm (hours grow past 99 on a long channel: WebVTT allows it)."""
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def webvtt(all_cues: Sequence[Cue], header: str = "", offset: float = 0.0) -> str:
    """A WebVTT file: `header` lines after the signature (X-TIMESTAMP-MAP=...), each cue's times
    shifted by `offset` seconds."""
    head = "WEBVTT" + (f"\n{header}" if header else "") + "\n"
    body = "".join(f"\n{timestamp(c.start + offset)} --> {timestamp(c.end + offset)}\n{_escape(c.text)}\n"
                   for c in all_cues)
    return head + body


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("-->", "--&gt;")


# ffmpeg's mov_text encoder reads its style from an ASS header: one style, white on black, bottom centre.
_ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,DejaVu Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def add_mov_text(container: Any, all_cues: Sequence[Cue], language: str = "eng") -> Any:
    """Add a mov_text subtitle track to an output `container` (PyAV, before its first packet) and
    mux every cue into it (the muxer interleaves them with the media as they come); ffmpeg's mp4
    muxer fills the gaps between cues with empty samples. Returns the stream."""
    from av.subtitles.subtitle import SubtitleSet

    stream = container.add_stream("mov_text")
    stream.codec_context.subtitle_header = _ASS_HEADER
    stream.metadata["language"] = language
    stream.time_base = Fraction(1, 1000)
    container.start_encoding()
    for cue in all_cues:
        start, end = round(cue.start * 1000), round(cue.end * 1000)
        text = cue.text.replace("\n", r"\N")
        packet = stream.codec_context.encode_subtitle(
            SubtitleSet.create(f"0,0,Default,,0,0,0,,{text}".encode(), 0, end - start, pts=start * 1000))
        packet.stream, packet.time_base = stream, stream.time_base
        packet.pts = packet.dts = start
        packet.duration = end - start
        container.mux(packet)
    return stream


def read_mov_text(path: str) -> list[Cue]:
    """The cues of an MP4's first mov_text track (tests; an independent reader is ffmpeg's)."""
    import struct

    import av

    out = []
    with av.open(str(path)) as container:
        if not container.streams.subtitles:
            return out
        stream = container.streams.subtitles[0]
        for p in container.demux(stream):
            data = bytes(p)
            if p.pts is None or len(data) <= 2:
                continue
            n = struct.unpack(">H", data[:2])[0]
            start = float(p.pts * stream.time_base)
            out.append(Cue(start, start + float(p.duration * stream.time_base), data[2:2 + n].decode("utf-8")))
    return out


# ---- burned-in captions (`captions: burn`) --------------------------------------------------------
DEFAULT_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # Debian's fonts-dejavu-core (scripts/setup-media)


@dataclass(frozen=True, eq=False)
class CueImage:
    """One cue rendered once: an (h, w, 4) uint8 RGBA image and where its top-left corner goes."""

    rgba: Any
    x: int
    y: int


def cue_image(text: str, width: int, height: int, font_path: str = DEFAULT_FONT) -> CueImage:
    """A cue's lines, white on a translucent black box, centred near the bottom of a `width` x
    `height` picture inside the title-safe area (10 % margins); the text height is 1/18 of the
    picture's (40 px at 720 lines). Rendered once per cue; the compositor (vortex.program.compose)
    alpha-composites it on each frame the cue covers (`cue_at`)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    size = max(12, height // 18)
    font = ImageFont.truetype(font_path, size)
    rows = text.split("\n")
    boxes = [font.getbbox(r) for r in rows]
    line_h = round(size * 1.25)
    pad = size // 3
    w = min(width, max(b[2] - b[0] for b in boxes) + 2 * pad)
    h = line_h * len(rows) + 2 * pad
    image = Image.new("RGBA", (w, h), (0, 0, 0, 170))
    draw = ImageDraw.Draw(image)
    for k, (row, box) in enumerate(zip(rows, boxes)):
        draw.text(((w - (box[2] - box[0])) // 2 - box[0], pad + k * line_h), row, font=font, fill=(255, 255, 255, 255))
    return CueImage(np.asarray(image), (width - w) // 2, height - round(height * 0.1) - h)


def cue_at(all_cues: Sequence[Cue], seconds: float) -> Optional[Cue]:
    """The cue on screen at `seconds` (cues do not overlap), else None."""
    return next((c for c in all_cues if c.start <= seconds < c.end), None)
