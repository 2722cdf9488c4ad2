"""The words a script and a transcript are compared by, and the word error rate between them.

Both sides go through the same `normalize_words`, so a difference in the score is a difference in
what was said, not in how it was written. Whisper writes numbers as digits ("$45", "2026",
"3.5") and a script may spell them, so numbers are brought to *digits* on both sides: "forty
five" → "45", "three point five" → "3.5", "twenty twenty six" / "two thousand twenty six" →
"2026". Spelled letters ("A. E. I. O. U.", "A-E-I-O-U", "ay ee eye oh you") become one
single-letter token each; a word that the other side spells ("AEIOU", "FBI") is split into
letters only when the two are scored (`join_compounds`), since capitals alone mark no acronym
("our SPONSOR" is emphasis). Case and punctuation go; apostrophes inside words stay ("don't");
hyphens split words; contractions are left as written.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Sequence

__all__ = ["normalize_words", "normalize_text", "join_compounds", "join_compounds_labelled", "word_errors", "wer"]

# ---- number words ---------------------------------------------------------------------------
_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14,
    "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
    "twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
    "seventieth": 70, "eightieth": 80, "ninetieth": 90, "hundredth": 100, "thousandth": 1000,
}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"hundred"}

# ---- letters --------------------------------------------------------------------------------
# Names of letters that are no other common word: one of them (or a single letter other than
# "a"/"i") marks a run of letter-like tokens as spelling.
_LETTER_NAMES_STRONG = {
    "ay": "a", "bee": "b", "cee": "c", "dee": "d", "ee": "e", "eff": "f", "ef": "f", "gee": "g",
    "aitch": "h", "jay": "j", "kay": "k", "el": "l", "em": "m", "en": "n", "pee": "p", "cue": "q",
    "ess": "s", "tee": "t", "vee": "v", "ex": "x", "zed": "z", "zee": "z",
}
# Letter names that are also words: read as letters only inside a run marked as spelling.
_LETTER_NAMES_WEAK = {
    "eye": "i", "oh": "o", "you": "u", "are": "r", "see": "c", "sea": "c", "why": "y", "be": "b",
    "tea": "t", "pea": "p", "queue": "q", "owe": "o",
}
_MIN_SPELLED_RUN = 3  # "a b" is too often two words; three letter-like tokens in a row are spelling

# ---- written forms --------------------------------------------------------------------------
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "vs": "versus", "ok": "okay"}
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at ", "=": " equals "}
_CURRENCY = re.compile(r"([$€£])\s?(\d[\d,]*(?:\.\d+)?)(\s?(?:thousand|million|billion)\b)?")
_CURRENCY_WORDS = {"$": "dollars", "€": "euros", "£": "pounds"}
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'"})
_DASHES = str.maketrans({"‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-"})
_DIGIT_GROUPS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DIGIT_OF = {w: str(n) for w, n in _UNITS.items() if n < 10}
_SPLIT_DECIMAL = re.compile(r"(?<![\w.])(\d|" + "|".join(_DIGIT_OF) + r")\. (\d)\b(?!\.\d)")
_LETTER_DIGIT = re.compile(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])")
_ORDINAL_DIGITS = re.compile(r"^(\d+)(st|nd|rd|th)$")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:st|nd|rd|th)?|[a-z]+(?:'[a-z]+)*")


def normalize_words(text: str) -> list[str]:
    """The tokens `text` is scored by (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).translate(_DASHES)
    text = _CURRENCY.sub(_spell_currency, text)
    text = _DIGIT_GROUPS.sub("", text).lower()
    # Whisper sometimes writes "3.5" as "3. 5" or "three. 5": one digit each side (a year before a
    # dot is a sentence end).
    text = _SPLIT_DECIMAL.sub(lambda m: f"{_DIGIT_OF.get(m.group(1), m.group(1))}.{m.group(2)}", text)
    for symbol, word in _SYMBOLS.items():
        text = text.replace(symbol, word)
    text = _LETTER_DIGIT.sub(" ", text)
    # Ordinal suffixes were split from their digits by the line above: join them again.
    text = re.sub(r"(\d) (st|nd|rd|th)\b", r"\1\2", text)
    tokens = [_ABBREVIATIONS.get(t, t) for t in _TOKEN.findall(text)]
    return _spelled_letters(_numbers_to_digits(tokens))


def normalize_text(text: str) -> str:
    return " ".join(normalize_words(text))


def _spell_currency(match: re.Match) -> str:
    symbol, amount, scale = match.group(1), match.group(2), match.group(3) or ""
    return f" {amount}{scale} {_CURRENCY_WORDS[symbol]} "


# ---- numbers: words to digits ----------------------------------------------------------------
def _numbers_to_digits(tokens: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        match = _ORDINAL_DIGITS.match(token)
        if match:  # "21st" → the same "21st" a spelled "twenty first" becomes
            out.append(f"{int(match.group(1))}{_suffix(int(match.group(1)))}")
            i += 1
            continue
        if token in _NUMBER_WORDS or token in _ORDINALS or (token == "point" and out and out[-1].isdigit()):
            consumed, numbers = _read_number_words(tokens, i, out)
            if consumed:
                out.extend(numbers)
                i += consumed
                continue
        if token.isdigit() or re.fullmatch(r"\d+\.\d+", token):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
            if nxt in _SCALES:  # "45 million" → the "45000000" that "forty five million" becomes
                out.append(_scaled(token, _SCALES[nxt]))
                i += 2
                continue
            out.append(_canonical_digits(token))
        else:
            out.append(token)
        i += 1
    return _join_years(out)


def _canonical_digits(token: str) -> str:
    if "." in token:
        whole, frac = token.split(".")
        return f"{int(whole)}.{frac}"
    return str(int(token))


def _scaled(token: str, scale: int) -> str:
    whole, _, frac = token.partition(".")
    value = int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    return str(value)


def _suffix(n: int) -> str:
    if n % 100 in (11, 12, 13):
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _read_number_words(tokens: list[str], start: int, out: list[str]) -> tuple[int, list[str]]:
    """Read a run of number words from tokens[start]; return (tokens consumed, digit tokens).

    A run may hold several numbers: "twenty twenty six" is 20 then 26 (joined into a year later),
    "one two three" is 1, 2, 3. "point" after a number reads the digits after it: "three point
    five" → "3.5"; "and" is part of a number only after "hundred"/"thousand" ("one hundred and
    five"); "oh" is a zero only after a number ("nineteen oh five")."""
    if tokens[start] == "point":  # "3 point 5": a digit token before, words after
        digits = _read_decimal_digits(tokens, start + 1)
        if digits:
            out[-1] = f"{out[-1]}.{digits[1]}"
            return digits[0] + 1, []
        return 0, []
    numbers: list[str] = []
    total, current, last_kind, have = 0, 0, "", False
    i = start

    def flush() -> None:
        nonlocal total, current, have, last_kind
        if have:
            numbers.append(str(total + current))
        total, current, have, last_kind = 0, 0, False, ""

    while i < len(tokens):
        t = tokens[i]
        if t in _UNITS:
            value = _UNITS[t]
            # a unit after a unit or a teen, or a teen after tens, starts a new number
            if have and (last_kind in ("unit", "teen") or (last_kind == "tens" and value >= 10)):
                flush()
            current += value
            last_kind, have = ("teen" if value >= 10 else "unit"), True
        elif t in _TENS:
            if have and last_kind in ("unit", "teen", "tens"):
                flush()
            current += _TENS[t]
            last_kind, have = "tens", True
        elif t == "hundred":
            if last_kind == "hundred":
                break
            current = (current or 1) * 100
            last_kind, have = "hundred", True
        elif t in _SCALES:
            if last_kind == "scale":
                break
            total += (current or 1) * _SCALES[t]
            current, last_kind, have = 0, "scale", True
        elif t in _ORDINALS:
            value = _ORDINALS[t]
            if value >= 100:
                current = (current or 1) * value
            elif have and (last_kind in ("unit", "teen") or (last_kind == "tens" and value >= 10)):
                flush()
                current = value
            else:
                current += value
            n = total + current
            numbers.append(f"{n}{_suffix(n)}")
            total, current, have, last_kind = 0, 0, False, ""
            i += 1
            break  # an ordinal ends its number
        elif t == "and" and last_kind in ("hundred", "scale") and i + 1 < len(tokens) and (
                tokens[i + 1] in _UNITS or tokens[i + 1] in _TENS or tokens[i + 1] in _ORDINALS):
            pass
        elif t == "oh" and have and i + 1 < len(tokens) and tokens[i + 1] in _UNITS and _UNITS[tokens[i + 1]] < 10:
            flush()
            numbers.append("0")  # "nineteen oh five": joined into 1905 by _join_years
        elif t == "point" and have and i + 1 < len(tokens):
            decimal = _read_decimal_digits(tokens, i + 1)
            if not decimal:
                break
            numbers.append(f"{total + current}.{decimal[1]}")
            total, current, have, last_kind = 0, 0, False, ""
            i += 1 + decimal[0]
            break
        else:
            break
        i += 1
    flush()
    if not numbers:
        return 0, []
    return i - start, numbers


def _read_decimal_digits(tokens: list[str], start: int) -> tuple[int, str] | None:
    """The digits spoken after "point": "five" → "5", "one four" → "14", "25" → "25"."""
    digits, i = "", start
    while i < len(tokens):
        t = tokens[i]
        if t in _UNITS and _UNITS[t] < 10:
            digits += str(_UNITS[t])
        elif t == "oh":
            digits += "0"
        elif t.isdigit() and not digits:
            digits = t
            i += 1
            break
        else:
            break
        i += 1
    return (i - start, digits) if digits else None


def _join_years(tokens: list[str]) -> list[str]:
    """"20 26" → "2026", "19 0 5" → "1905": a spoken year is two numbers, the first 10-99."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.isdigit() and 10 <= int(t) <= 99 and i + 1 < len(tokens):
            nxt = tokens[i + 1]
            if nxt.isdigit() and 10 <= int(nxt) <= 99:
                out.append(f"{t}{nxt}")
                i += 2
                continue
            if nxt == "0" and i + 2 < len(tokens) and tokens[i + 2].isdigit() and int(tokens[i + 2]) < 10:
                out.append(f"{t}0{tokens[i + 2]}")
                i += 3
                continue
        out.append(t)
        i += 1
    return out


# ---- spelled letters ------------------------------------------------------------------------
def _letter(token: str) -> str | None:
    if len(token) == 1 and token.isalpha():
        return token
    return _LETTER_NAMES_STRONG.get(token) or _LETTER_NAMES_WEAK.get(token)


def _is_strong(token: str) -> bool:
    return (len(token) == 1 and token.isalpha() and token not in ("a", "i")) or token in _LETTER_NAMES_STRONG


def _is_spelling(run: list[str]) -> bool:
    return len(run) >= _MIN_SPELLED_RUN and any(_is_strong(t) for t in run)


def _spelled_letters(tokens: list[str]) -> list[str]:
    """Runs of >= 3 letter-like tokens that hold a sure letter become single letters."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and _letter(tokens[j]) is not None:
            j += 1
        run = tokens[i:j]
        # A leading letter-word belongs to the sentence, not the spelling: "the vowels ARE a e i o u"
        while run and run[0] in _LETTER_NAMES_WEAK and _is_spelling(run[1:]):
            out.append(run.pop(0))
            i += 1
        if _is_spelling(run):
            out.extend(_letter(t) for t in run)
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return out


# ---- word error rate ------------------------------------------------------------------------
def word_errors(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Substitutions + deletions + insertions: the word-level Levenshtein distance."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, start=1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


def wer(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """Word error rate of `hypothesis` against `reference`: errors / reference words.

    Strings are normalised first; token lists are used as given. Above 1.0 when the hypothesis
    inserts more words than the reference has (a looping transcript)."""
    ref = normalize_words(reference) if isinstance(reference, str) else list(reference)
    hyp = normalize_words(hypothesis) if isinstance(hypothesis, str) else list(hypothesis)
    if not ref:
        raise ValueError("wer: the reference has no words to score against")
    ref, hyp = join_compounds(ref, hyp)
    return word_errors(ref, hyp) / len(ref)


def join_compounds(reference: Sequence[str], hypothesis: Sequence[str]) -> tuple[list[str], list[str]]:
    """Write a compound the same way on both sides, so a split hyphen or a spelling choice counts
    no error: a word one side spells letter by letter is split into letters on the other ("fbi" /
    "f b i", "aeiou" / "a e i o u"); two adjacent words of one side that make a word of the other
    are joined ("inter dimensional" / "interdimensional", "every one" / "everyone")."""
    ref, _, hyp = join_compounds_labelled(reference, [0] * len(reference), hypothesis)
    return ref, hyp


def join_compounds_labelled(reference: Sequence[str], labels: Sequence[int],
                            hypothesis: Sequence[str]) -> tuple[list[str], list[int], list[str]]:
    """`join_compounds`, carrying a label per reference word (its sentence): a split word's letters
    keep its label, a joined pair takes its first word's."""
    ref, ref_labels, hyp = list(reference), list(labels), list(hypothesis)
    ref_runs, hyp_runs = _letter_runs(ref), _letter_runs(hyp)
    ref, ref_labels = _split_spelled(ref, hyp_runs, ref_labels)
    hyp, _ = _split_spelled(hyp, ref_runs, [0] * len(hyp))
    ref_vocabulary, hyp_vocabulary = set(ref), set(hyp)
    ref, ref_labels = _join_pairs(ref, hyp_vocabulary, ref_labels)
    hyp, _ = _join_pairs(hyp, ref_vocabulary, [0] * len(hyp))
    return ref, ref_labels, hyp


def _letter_runs(tokens: list[str]) -> set[str]:
    """Every run of two or more single letters, written as one word: "f b i" → "fb", "fbi", "bi"."""
    runs: set[str] = set()
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and len(tokens[j]) == 1 and tokens[j].isalpha():
            j += 1
        for a in range(i, j):
            for b in range(a + 2, j + 1):
                runs.add("".join(tokens[a:b]))
        i = max(j, i + 1)
    return runs


def _split_spelled(tokens: list[str], runs: set[str], labels: list[int]) -> tuple[list[str], list[int]]:
    out: list[str] = []
    out_labels: list[int] = []
    for token, label in zip(tokens, labels):
        pieces = list(token) if token in runs else [token]
        out.extend(pieces)
        out_labels.extend([label] * len(pieces))
    return out, out_labels


def _join_pairs(tokens: list[str], vocabulary: set[str], labels: list[int]) -> tuple[list[str], list[int]]:
    out: list[str] = []
    out_labels: list[int] = []
    i = 0
    while i < len(tokens):
        out_labels.append(labels[i])
        if i + 1 < len(tokens) and tokens[i] + tokens[i + 1] in vocabulary and tokens[i] not in vocabulary:
            out.append(tokens[i] + tokens[i + 1])
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out, out_labels
