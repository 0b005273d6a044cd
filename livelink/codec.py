"""Live Link Face packet (version 6) encode/decode, byte-exact, big-endian, struct-based.

Layout: uint8 version=6 | int32 len + UTF-8 device id | int32 len + UTF-8 subject |
int32 frame | float32 subframe | int32 rate num | int32 rate den | uint8 count=61 |
61 x float32. No terminators. UE accepts datagrams of 267..1286 bytes.
"""

from __future__ import annotations

import math
import struct
from functools import lru_cache

import numpy as np

from livelink.frame import FaceFrame
from livelink.frametime import FrameTime
from livelink.names import N_VALUES

VERSION = 6
MAX_DATAGRAM = 1286  # UE drops anything longer
FIXED_SIZE = 1 + 4 + 4 + 16 + 1 + 4 * N_VALUES  # 270: everything but the two strings

_LEN = struct.Struct(">i")
_TIME = struct.Struct(">ifii")  # frame, subframe, rate num, rate den
TAIL = struct.Struct(">ifiiB")  # frame time + count
_VALUES_BE = np.dtype(">f4")
_TIME_SIZE = _TIME.size  # 16
_VALUES_SIZE = 4 * N_VALUES  # 244
FRAME_FROM_END = TAIL.size + _VALUES_SIZE  # the int32 frame number starts this far from the end


class PacketError(ValueError):
    """The bytes are not a valid Live Link Face face packet."""


@lru_cache(maxsize=1024)
def packet_header(device_id: str, subject: str) -> bytes:
    """Version byte and the two length-prefixed names, checked once per (device id, subject)."""
    dev = device_id.encode("utf-8")
    sub = subject.encode("utf-8")
    if not dev or not sub:
        raise ValueError("device id and subject must be non-empty (UE needs both)")
    size = FIXED_SIZE + len(dev) + len(sub)
    if size > MAX_DATAGRAM:
        raise ValueError(
            f"device id + subject make a {size}-byte packet; UE drops packets over "
            f"{MAX_DATAGRAM} bytes — use names of at most {MAX_DATAGRAM - FIXED_SIZE} bytes in all"
        )
    return bytes([VERSION]) + _LEN.pack(len(dev)) + dev + _LEN.pack(len(sub)) + sub


_SCALE = np.full(N_VALUES, 2.0**-10, np.float32)  # small enough that the dot cannot overflow


def all_finite(values: np.ndarray) -> bool:
    """True if no NaN/inf among 61 float32 values (one dot product: NaN/inf propagate)."""
    return math.isfinite(values.dot(_SCALE))


def check_values(values: np.ndarray) -> None:
    """ValueError unless ``values`` is 61 finite float32 values."""
    if values.shape != (N_VALUES,):
        raise ValueError(f"need {N_VALUES} values, got shape {values.shape}")
    if not all_finite(values):
        raise ValueError("values contain NaN or infinity; UE would show a broken face")


def encode(frame: FaceFrame) -> bytes:
    """Packet bytes for ``frame``. ValueError for empty/oversized names or non-finite values."""
    values = np.asarray(frame.values, dtype=np.float32)
    check_values(values)
    t = frame.time
    return b"".join(
        (
            packet_header(frame.device_id, frame.subject),
            TAIL.pack(t.frame, t.subframe, t.rate_num, t.rate_den, N_VALUES),
            values.astype(_VALUES_BE).tobytes(),
        )
    )


def _read_string(data: bytes, offset: int, what: str) -> tuple[str, int]:
    if len(data) < offset + 4:
        raise PacketError(f"truncated before the {what} length")
    (length,) = _LEN.unpack_from(data, offset)
    offset += 4
    if length <= 0 or length > len(data) - offset:
        raise PacketError(f"bad {what} length {length} (packet has {len(data)} bytes)")
    try:
        text = data[offset : offset + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PacketError(f"{what} is not valid UTF-8: {exc.reason}") from None
    return text, offset + length


def decode(data: bytes) -> FaceFrame:
    """FaceFrame from packet bytes; raises only PacketError, and only for bytes ``encode``
    would not produce (header-only packets, wrong version/count/size, bad UTF-8, NaN...)."""
    if not isinstance(data, bytes):
        try:
            data = bytes(data)
        except TypeError as exc:
            raise PacketError(f"not bytes: {type(data).__name__}") from exc
    size = len(data)
    if size == 0 or data[0] != VERSION:
        raise PacketError(f"not a version {VERSION} packet")
    if size > MAX_DATAGRAM:
        raise PacketError(f"{size}-byte datagram is longer than {MAX_DATAGRAM}")
    device_id, offset = _read_string(data, 1, "device id")
    subject, offset = _read_string(data, offset, "subject")
    rest = size - offset
    if rest == _TIME_SIZE:
        raise PacketError("header-only packet (the app lost the face): no values")
    if rest != TAIL.size + _VALUES_SIZE:
        raise PacketError(f"expected {TAIL.size + _VALUES_SIZE} bytes after names, got {rest}")
    frame, subframe, num, den, count = TAIL.unpack_from(data, offset)
    if count != N_VALUES:
        raise PacketError(f"blendshape count {count}, expected {N_VALUES}")
    try:
        time = FrameTime.from_wire(frame, subframe, num, den)
    except ValueError as exc:
        raise PacketError(f"bad frame time: {exc}") from None
    values = np.frombuffer(data, _VALUES_BE, N_VALUES, offset + TAIL.size).astype(np.float32)
    if not all_finite(values):
        raise PacketError("values contain NaN or infinity")
    return FaceFrame(values, subject, device_id, time)
