"""An EXT-X-DATERANGE reader of the tests, written from RFC 8216bis §4.2's attribute-list grammar and
§4.4.5.1 (not the project's parser), and SCTE-35 decoded with threefive."""

from __future__ import annotations

import re

from streams import FPS

_NAME = re.compile(r"[A-Z0-9-]+")
_HEX = re.compile(r"0[xX][0-9A-F]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def attribute_list(text: str) -> dict[str, object]:
    """name=value pairs: quoted-string → str, hexadecimal-sequence → bytes, decimal → float,
    anything else an enumerated-string (str). Raises on a malformed list or a repeated name."""
    out, i = {}, 0
    while i < len(text):
        name = _NAME.match(text, i)
        assert name and text[name.end()] == "=", f"attribute name expected at {i}: {text[i:i + 30]!r}"
        i = name.end() + 1
        if text[i] == '"':
            end = text.index('"', i + 1)
            value: object = text[i + 1:end]
            assert "\n" not in value and "\r" not in value
            i = end + 1
        else:
            end = text.find(",", i)
            end = len(text) if end < 0 else end
            raw = text[i:end]
            if raw[:2] in ("0x", "0X"):
                assert _HEX.fullmatch(raw), f"not a hexadecimal-sequence: {raw!r}"
                value = bytes.fromhex(raw[2:])
            elif _DECIMAL.fullmatch(raw):
                value = float(raw)
            else:
                assert raw and "," not in raw and '"' not in raw and " " not in raw
                value = raw
            i = end
        assert name.group() not in out, f"attribute {name.group()} repeated"
        out[name.group()] = value
        if i < len(text):
            assert text[i] == ",", f"',' expected at {i}: {text[i:i + 30]!r}"
            i += 1
    return out


def read_ranges(text: str) -> list[dict]:
    """Every EXT-X-DATERANGE in order, with the PROGRAM-DATE-TIME of the segment that follows it
    (None: after the last one) and the frames the playlist lists before that segment."""
    ranges, frames, pending = [], 0, []
    for line in text.splitlines():
        if line.startswith("#EXT-X-DATERANGE:"):
            pending.append({"line": line, **attribute_list(line.split(":", 1)[1])})
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            for r in pending:
                r["next_pdt"], r["frame"] = line.split(":", 1)[1], frames
            ranges += pending
            pending = []
        elif line.startswith("#EXTINF:"):
            frames += round(float(line.split(":", 1)[1].rstrip(",")) * FPS)
    return ranges + [dict(r, next_pdt=None, frame=frames) for r in pending]


def by_id(ranges: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in ranges:
        out.setdefault(r["ID"], []).append(r)
    return out


def scte35(blob: bytes):
    import threefive

    cue = threefive.Cue("0x" + blob.hex())
    cue.decode()
    return cue
