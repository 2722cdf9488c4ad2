"""A watermark in the pixels: the layer left when a re-encode drops the Content Credentials.

Payload, 48 bits: node (16 bits of SHA-256 of the node's name), slot id (its low 16 bits), and a
CRC-16/CCITT over those 4 bytes (the check bits: a read is "found" only when they match).

Embedding (spread spectrum on a coarse grid, numpy + OpenCV only): the frame is divided into a
GRID x GRID lattice of cells, relative to its size, so a rescaled copy keeps the same cells. Each
cell carries one payload bit (12 cells a bit, a fixed public permutation) times a pseudo-random
chip of +-1; the cell values, bilinearly spread over the frame, are added to the luma (R, G, B
alike: no colour shift) with amplitude ALPHA. The sign of the whole pattern flips every WINDOW
frames: the reader sums the high-passed cell means with the same signs, so the picture itself (the
same in a + and a - window) cancels and only the mark adds up.

Reading: decode, cell means (INTER_AREA to GRID x GRID), minus their 3x3 local mean and minus the
mean of the 12 frames around, signed sum over windows, then each bit's chips correlated; a copy cut
from the middle of a slot is read at each of the PERIOD alignments of the windows (`read_frames`). Public: anyone can read it; no key is secret.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np

from ..media import SWS_THREADS

GRID = 24  # 576 cells: 12 per bit; a cell is 21 px of a 512-px frame, 15 px of 360
BITS = 48
ALPHA = 3.0  # luma levels (of 255) at a cell's centre: see docs/provenance.md for PSNR and BER
WINDOW = 6  # frames per sign of the pattern (0.25 s at 24 fps)
# read_frames' one-bit correction, only where the margin (median |score| / std) is a marked copy's:
# marked 6 s slots read 0.82-1.05 after CRF 30 / 640x360 / cuts, unmarked ones 0.04-0.34 at any
# alignment, and scores of pure Gaussian noise 0.67
FLIP_WEAKEST, FLIP_MIN_MARGIN = 3, 0.75
PERIOD = 2 * WINDOW  # the pattern's sign repeats every 12 frames: a cut copy is read at one of 12 alignments
_SEED = int.from_bytes(hashlib.sha256(b"vortex-watermark-v1").digest()[:8], "little")


def _layout() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_SEED)
    bit_of = rng.permutation(np.arange(GRID * GRID) % BITS).reshape(GRID, GRID)
    chip = rng.choice(np.array([-1.0, 1.0], np.float32), size=(GRID, GRID))
    return bit_of, chip


_BIT_OF, _CHIP = _layout()


def node_tag(node: str) -> int:
    return int.from_bytes(hashlib.sha256(node.encode()).digest()[:2], "big")


def insert_watermark_id(insert_id: str) -> int:
    """The 16-bit slot id a live insert's frames carry: the last 4 hex digits of its id (`live-1a2b3c4d`)."""
    try:
        return int(insert_id[-4:], 16)
    except ValueError:
        return int.from_bytes(hashlib.sha256(insert_id.encode()).digest()[:2], "big")


def payload_bits(node: str, slot_id: int) -> np.ndarray:
    body = struct.pack(">HH", node_tag(node), int(slot_id) & 0xFFFF)
    word = body + struct.pack(">H", binascii.crc_hqx(body, 0xFFFF))
    return np.unpackbits(np.frombuffer(word, np.uint8)).astype(np.float32)


def _decode_bits(bits: np.ndarray) -> Optional[dict[str, Any]]:
    word = np.packbits(bits.astype(np.uint8)).tobytes()
    body, crc = word[:4], struct.unpack(">H", word[4:6])[0]
    if binascii.crc_hqx(body, 0xFFFF) != crc:
        return None
    node, slot = struct.unpack(">HH", body)
    return {"node_tag": f"{node:04x}", "slot_id_low16": slot}


def sign_at(index: int) -> float:
    return 1.0 if (index // WINDOW) % 2 == 0 else -1.0


class Marker:
    """Adds the mark to each frame of one slot: `mark(index, frame) -> frame` (a new array)."""

    def __init__(self, node: str, slot_id: int, height: int, width: int, alpha: float = ALPHA):
        bits = payload_bits(node, slot_id) * 2.0 - 1.0
        self._cells = (alpha * _CHIP * bits[_BIT_OF]).astype(np.float32)
        self.node, self.slot_id = node, slot_id
        self._sized(height, width)

    def _sized(self, height: int, width: int) -> None:
        self.field = cv2.resize(self._cells, (width, height), interpolation=cv2.INTER_LINEAR)[..., None]
        # Each sign's field rounded to whole levels once, floor(s * field + 0.5), and split into what it
        # adds and what it takes away as uint8: an RGB frame then costs two saturating adds (OpenCV),
        # 0.06 ms a 512² frame against 6.3 ms for the same sum in float32 (0.15 core-s a content second).
        self._levels, self._parts = {}, {}
        for sign in (1.0, -1.0):
            levels = self._levels[sign] = np.floor(sign * self.field + 0.5)
            self._parts[sign] = tuple(np.repeat(np.clip(v, 0, 255).astype(np.uint8), 3, axis=2) for v in (levels, -levels))

    def __call__(self, index: int, frame: np.ndarray) -> np.ndarray:
        if frame.shape[:2] != self.field.shape[:2]:  # the program picture (1280x720) around a 512² slot
            self._sized(*frame.shape[:2])
        if frame.dtype != np.uint8 or frame.shape[2:] != (3,):
            return np.clip(np.rint(frame.astype(np.float32)) + self._levels[sign_at(index)], 0, 255).astype(np.uint8)
        up, down = self._parts[sign_at(index)]
        return cv2.subtract(cv2.add(np.ascontiguousarray(frame), up), down)


class LumaMarker:
    """The same mark on the luma plane of a yuv420p ``av.VideoFrame``, in place: what the channel's
    encoder takes (its spooled slots are yuv already, so there is no RGB frame to mark). The field is
    the RGB one times 219/255 (BT.709 limited range: R = G = B + d moves Y by d x 219/255), rounded to
    whole levels once, split into its positive and negative parts as uint8 so that a frame costs two
    saturating adds (OpenCV) and a copy back."""

    def __init__(self, node: str, slot_id: int, height: int, width: int, alpha: float = ALPHA):
        luma = np.rint(Marker(node, slot_id, height, width, alpha).field[..., 0] * (219.0 / 255.0))
        self._pos, self._neg = np.clip(luma, 0, 255).astype(np.uint8), np.clip(-luma, 0, 255).astype(np.uint8)
        self.node, self.slot_id, self.size = node, slot_id, (height, width)

    def __call__(self, index: int, frame: Any, *, copy: bool = False) -> Any:
        """Frame ``index`` marked: ``frame`` itself, or with ``copy`` a new frame (``frame`` is left as it
        is: a filler hands the same frame over again, and must not collect the mark twice)."""
        if copy:
            import av

            frame = av.VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]
        if y.shape != self._pos.shape:
            raise ValueError(f"frame {index}: luma {y.shape[1]}x{y.shape[0]}, the mark was made for "
                             f"{self.size[1]}x{self.size[0]}")
        up, down = (self._pos, self._neg) if sign_at(index) > 0 else (self._neg, self._pos)
        y[...] = cv2.subtract(cv2.add(y, up), down)
        return frame


def _cells(frame_rgb: np.ndarray) -> np.ndarray:
    f = frame_rgb.astype(np.float32)
    luma = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    means = cv2.resize(luma, (GRID, GRID), interpolation=cv2.INTER_AREA)
    return means - cv2.blur(means, (3, 3), borderType=cv2.BORDER_REFLECT)


def read_frames(frames) -> dict[str, Any]:
    """The payload from an iterable of RGB frames (any size): {found, bits, margin, offset, ...}.

    The copy may start anywhere in the slot (a clip cut from its middle): each frame's cells first
    lose the mean of the PERIOD frames around it (a temporal high-pass: the pattern's square wave has
    zero mean over a period, the picture's slow changes and the surplus frames of one sign a cut
    leaves do not), then each of the PERIOD alignments of the signs is tried; `offset` is the one
    that read (the copy's first frame was frame `offset` mod PERIOD of the slot, give or take one).
    Of the alignments whose CRC holds, the strongest (mean |score|) wins. Trying all 12 raises
    the false-positive rate on an unmarked clip from 2^-16 (one CRC-16) to at most 12 x 2^-16 = 1.8e-4
    (at most 48 x 2^-16 = 7.3e-4 with the one-bit correction below, which is tried only where the
    margin is a marked copy's)."""
    cells = [_cells(frame) for frame in frames]
    n = len(cells)
    if n <= WINDOW:
        return {"found": False, "frames": n, "why": f"needs at least {WINDOW + 1} frames"}
    c = np.stack(cells).astype(np.float64)
    half = PERIOD // 2  # frame i minus the mean of frames i-6 .. i+5 (the edge frames repeated)
    padded = np.concatenate([np.repeat(c[:1], half, 0), c, np.repeat(c[-1:], half - 1, 0)])
    run = np.concatenate([np.zeros((1, GRID, GRID)), np.cumsum(padded, axis=0)])
    c -= (run[PERIOD:] - run[:-PERIOD]) / PERIOD
    sums = np.stack([c[k::PERIOD].sum(0) for k in range(PERIOD)])
    reads = []
    for offset in range(PERIOD):
        signs = np.array([sign_at(k + offset) for k in range(PERIOD)])
        acc = np.tensordot(signs, sums, axes=1)
        scores = np.zeros(BITS)
        np.add.at(scores, _BIT_OF.reshape(-1), (acc * _CHIP).reshape(-1))
        margin = float(np.median(np.abs(scores)) / (np.std(scores) + 1e-9))
        reads.append((margin, offset, scores))
    # the strongest alignment first (the mean |score| peaks at the true one; the margin, scale-free,
    # is flat within a frame or two of it)
    reads.sort(key=lambda r: -float(np.abs(r[2]).mean()))
    out: dict[str, Any] = {}
    for margin, offset, scores in reads:
        bits = (scores > 0).astype(np.uint8)
        decoded = _decode_bits(bits)
        if not out or decoded is not None:
            out = {"found": decoded is not None, "frames": n, "bits": "".join(map(str, bits)),
                   "margin": round(margin, 3), "offset": offset, **(decoded or {})}
        if decoded is not None:
            return out
    # One bit wrong at the weakest scores (a short or heavily re-encoded clip): flip each of the 3
    # weakest alone, at the alignments whose margin only a marked copy reaches: at most 36 more CRC tries.
    for margin, offset, scores in reads:
        if margin < FLIP_MIN_MARGIN:
            continue
        raw = (scores > 0).astype(np.uint8)
        for k in np.argsort(np.abs(scores))[:FLIP_WEAKEST]:
            bits = raw.copy()
            bits[k] ^= 1
            decoded = _decode_bits(bits)
            if decoded is not None:  # `bits` stay the ones read: the bit error rate counts the corrected one
                return {"found": True, "frames": n, "bits": "".join(map(str, raw)), "margin": round(margin, 3),
                        "offset": offset, "corrected_bit": int(k), **decoded}
    return out


def read_watermark_mp4(path: Path | str, max_frames: int = 480) -> dict[str, Any]:
    """Read the mark from the first `max_frames` frames of an MP4 (20 s at 24 fps)."""
    import av

    def frames():
        with av.open(str(path)) as c:
            for i, frame in enumerate(c.decode(c.streams.video[0])):
                if i >= max_frames:
                    return
                yield frame.to_ndarray(format="rgb24", threads=SWS_THREADS)

    try:
        return read_frames(frames())
    except Exception as exc:  # noqa: BLE001 - an undecodable file: no mark read, with why
        return {"found": False, "frames": 0, "why": f"cannot decode: {type(exc).__name__}"}


def bit_errors(read: dict[str, Any], node: str, slot_id: int) -> int:
    want = "".join(str(int(b)) for b in payload_bits(node, slot_id))
    got = read.get("bits") or ""
    return sum(a != b for a, b in zip(want, got)) + abs(len(want) - len(got))
