"""SGB1 framing: CRC-16/CCITT-FALSE, COBS, and an incremental splitter of bytes into payloads.

On the wire a frame is ``COBS(payload ‖ CRC16-LE(payload)) ‖ 0x00`` (firmware_bridge/PROTOCOL.md).
This module knows nothing of frame types: it turns payloads into wire bytes and wire bytes back
into payloads whose CRC matched, counting everything it throws away.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass

#: Largest payload (header included, CRC excluded) a frame may carry, in bytes.
MAX_PAYLOAD = 1024

#: Largest COBS block of a frame body (payload + CRC) before the 0x00 delimiter, in bytes.
MAX_ENCODED = MAX_PAYLOAD + 2 + (MAX_PAYLOAD + 2) // 254 + 1

#: Smallest payload: the 4-byte header.
MIN_PAYLOAD = 4


def crc16(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0) of ``data``."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def cobs_encode(data: bytes | bytearray) -> bytes:
    """COBS-encode ``data``: the result has no 0x00 byte and is at most ``len + len//254 + 1``.

    Canonical form (the same as the C library and the usual reference code): a run of 254
    non-zero bytes that ends the input is not followed by an extra ``0x01`` code byte.
    """
    out = bytearray()
    segments = bytes(data).split(b"\x00")
    last = len(segments) - 1
    for k, seg in enumerate(segments):
        pos = 0
        while len(seg) - pos >= 254:
            out.append(0xFF)
            out += seg[pos : pos + 254]
            pos += 254
        rest = seg[pos:]
        if k == last and pos > 0 and not rest:
            break
        out.append(len(rest) + 1)
        out += rest
    return bytes(out)


def cobs_decode(block: bytes | bytearray | memoryview) -> bytes | None:
    """Decode one COBS block (without its 0x00 delimiter); ``None`` when it is malformed.

    Malformed: empty, a 0x00 inside, or a code byte that points past the end.
    """
    n = len(block)
    if n == 0:
        return None
    out = bytearray()
    i = 0
    while i < n:
        code = block[i]
        if code == 0 or i + code > n:
            return None
        run = block[i + 1 : i + code]
        if 0 in run:
            return None
        out += run
        i += code
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_payload(payload: bytes | bytearray) -> bytes:
    """Wire bytes of one frame: ``COBS(payload ‖ CRC16-LE) ‖ 0x00``.

    Raises
    ------
    ValueError
        If the payload is shorter than the header or longer than :data:`MAX_PAYLOAD`.
    """
    if not MIN_PAYLOAD <= len(payload) <= MAX_PAYLOAD:
        raise ValueError(
            f"SGB1 payload must be {MIN_PAYLOAD}..{MAX_PAYLOAD} bytes, got {len(payload)}"
        )
    crc = crc16(payload)
    return cobs_encode(bytes(payload) + bytes((crc & 0xFF, crc >> 8))) + b"\x00"


def check_block(block: bytes | bytearray | memoryview) -> tuple[bytes | None, str]:
    """Decode one delimited block into its payload.

    Returns
    -------
    (payload, why) : payload bytes and ``""`` when the block is a good frame, else ``None`` and
        the reason: ``"cobs"`` (malformed COBS or too short) or ``"crc"`` (CRC mismatch).
    """
    raw = cobs_decode(block)
    if raw is None or len(raw) < MIN_PAYLOAD + 2:
        return None, "cobs"
    if len(raw) > MAX_PAYLOAD + 2:
        return None, "cobs"
    payload, tail = raw[:-2], raw[-2:]
    if crc16(payload) != tail[0] | (tail[1] << 8):
        return None, "crc"
    return payload, ""


@dataclass
class FramingStats:
    """What the :class:`Deframer` saw, as running totals.

    Attributes
    ----------
    frames : blocks that decoded to a payload with a good CRC
    crc_errors : blocks whose COBS was valid but whose CRC did not match
    malformed : blocks with invalid COBS or shorter than header + CRC
    oversize : runs of more than :data:`MAX_ENCODED` bytes without a 0x00 (each run once)
    bytes_discarded : every byte not part of a good frame (delimiters of bad blocks included;
        empty blocks, i.e. repeated 0x00, count their one byte)
    """

    frames: int = 0
    crc_errors: int = 0
    malformed: int = 0
    oversize: int = 0
    bytes_discarded: int = 0


class Deframer:
    """Incremental splitter: bytes split anywhere in, good payloads out.

    Holds at most :data:`MAX_ENCODED` bytes: a stream with no 0x00 is discarded as it arrives
    (counted once per run in ``stats.oversize``) until the next 0x00, where it resynchronises.
    Never raises on any input bytes.
    """

    def __init__(self) -> None:
        self.stats = FramingStats()
        self._buf = bytearray()
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes of a partial block held (at most :data:`MAX_ENCODED`)."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget a partial block (after a reconnect); the totals are kept."""
        self.stats.bytes_discarded += len(self._buf)
        self._buf.clear()
        self._skipping = False

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[bytes, int]]:
        """Consume ``data``; return ``(payload, wire_bytes)`` of each good frame it completed.

        ``wire_bytes`` is the frame's size on the wire, delimiter included, so that a caller who
        rejects the payload for its content can add it to ``stats.bytes_discarded``.
        """
        out: list[tuple[bytes, int]] = []
        data = bytes(data)
        stats = self.stats
        start = 0
        n = len(data)
        while start < n:
            end = data.find(b"\x00", start)
            if end < 0:
                self._append(data[start:])
                break
            self._append(data[start:end])
            if self._skipping or not self._buf:
                stats.bytes_discarded += 1
                self._skipping = False
            else:
                payload, why = check_block(self._buf)
                if payload is None:
                    stats.bytes_discarded += len(self._buf) + 1
                    if why == "crc":
                        stats.crc_errors += 1
                    else:
                        stats.malformed += 1
                else:
                    stats.frames += 1
                    out.append((payload, len(self._buf) + 1))
            self._buf.clear()
            start = end + 1
        return out

    def _append(self, part: bytes) -> None:
        if self._skipping:
            self.stats.bytes_discarded += len(part)
            return
        if len(self._buf) + len(part) > MAX_ENCODED:
            self.stats.oversize += 1
            self.stats.bytes_discarded += len(self._buf) + len(part)
            self._buf.clear()
            self._skipping = True
            return
        self._buf += part
