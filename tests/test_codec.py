"""Packet codec: golden vectors written from the spec, round trips, hostile bytes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livelink import BLENDSHAPE_NAMES, FaceFrame, FrameTime, PacketError, decode, encode
from livelink.names import EYE_BLINK_LEFT, HEAD_YAW, JAW_OPEN

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

# version 6 | len 36 | UUID | len 13 | "nsplayer-test" | frame 1095835 | subframe 0.5 |
# 60 / 1 | count 61 | EyeBlinkLeft 1.0, JawOpen 0.5, HeadYaw -0.25, all others 0.0
GOLDEN_UUID = bytes.fromhex(
    "06"
    "00000024" + UUID.encode("ascii").hex() + "0000000d" + "6e73706c617965722d74657374"
    "0010b89b"  # 1095835 = 0x0010B89B
    "3f000000"  # 0.5
    "0000003c" "00000001" "3d"
    "3f800000" + "00000000" * 16 + "3f000000" + "00000000" * 34 + "be800000" + "00000000" * 8
)  # fmt: skip

# version 6 | "d" | "s" | frame 0 | subframe 0.0 | 30000 / 1001 | count 61 | all 0.25
GOLDEN_SHORT = bytes.fromhex(
    "06" "00000001" "64" "00000001" "73" "00000000" "00000000" "00007530" "000003e9" "3d"
    + "3e800000" * 61
)  # fmt: skip


def golden_uuid_frame() -> FaceFrame:
    values = np.zeros(61, np.float32)
    values[EYE_BLINK_LEFT], values[JAW_OPEN], values[HEAD_YAW] = 1.0, 0.5, -0.25
    return FaceFrame(values, "nsplayer-test", UUID, FrameTime(1095835, 0.5, 60, 1))


def test_golden_uuid_packet_is_319_bytes_and_exact() -> None:
    assert len(GOLDEN_UUID) == 319
    assert encode(golden_uuid_frame()) == GOLDEN_UUID
    assert decode(GOLDEN_UUID) == golden_uuid_frame()


def test_golden_short_names_and_ntsc_rate() -> None:
    frame = FaceFrame(np.full(61, 0.25), "s", "d", FrameTime(0, 0.0, 30000, 1001))
    assert len(GOLDEN_SHORT) == 272
    assert encode(frame) == GOLDEN_SHORT
    assert decode(GOLDEN_SHORT) == frame


def test_header_only_packet_is_rejected() -> None:
    header_only = GOLDEN_UUID[: 1 + 4 + 36 + 4 + 13 + 16]
    with pytest.raises(PacketError, match="header-only"):
        decode(header_only)


@pytest.mark.parametrize(
    ("offset", "byte", "match"),
    [(0, 5, "version"), (318 - 244, 60, "count"), (1, 0x80, "length"), (41, 0x7F, "length")],
)
def test_specific_corruptions(offset: int, byte: int, match: str) -> None:
    data = bytearray(GOLDEN_UUID)
    data[offset] = byte
    with pytest.raises(PacketError, match=match):
        decode(bytes(data))


def test_trailing_garbage_and_invalid_utf8() -> None:
    with pytest.raises(PacketError):
        decode(GOLDEN_SHORT + b"\x00")
    bad = bytearray(GOLDEN_SHORT)
    bad[5] = 0xFF  # device id "d" -> invalid UTF-8
    with pytest.raises(PacketError, match="UTF-8"):
        decode(bytes(bad))


@pytest.mark.parametrize(
    ("subject", "device", "values", "match"),
    [
        ("", "d", np.zeros(61), "non-empty"),
        ("s", "", np.zeros(61), "non-empty"),
        ("s" * 1100, "d", np.zeros(61), "1286"),
        ("s", "d", np.r_[np.zeros(60), np.nan], "NaN"),
        ("s", "d", np.r_[np.zeros(60), np.inf], "NaN"),
    ],
)
def test_encode_refuses(subject: str, device: str, values: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode(FaceFrame(values, subject, device, FrameTime(0)))


def test_encode_accepts_the_largest_datagram_and_huge_finite_values() -> None:
    frame = FaceFrame(np.full(61, 3e38), "s" * 500, "d" * 516, FrameTime(0))
    assert len(encode(frame)) == 1286
    assert decode(encode(frame)) == frame


def test_wrong_value_count() -> None:
    with pytest.raises(ValueError, match="61"):
        FaceFrame(np.zeros(60), "s", "d", FrameTime(0))
    frame = FaceFrame(np.zeros(61), "s", "d", FrameTime(0))
    frame.values = np.zeros(62, np.float32)
    with pytest.raises(ValueError, match="61"):
        encode(frame)


names = st.text(min_size=1, max_size=40)
frame_times = st.builds(
    FrameTime,
    frame=st.integers(-(2**31), 2**31 - 1),
    subframe=st.floats(0.0, 1.0, exclude_max=True),
    rate_num=st.integers(1, 2**31 - 1),
    rate_den=st.integers(1, 2**31 - 1),
)
float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(names, names, frame_times, st.lists(float32s, min_size=61, max_size=61))
def test_round_trip(subject: str, device: str, time: FrameTime, values: list[float]) -> None:
    frame = FaceFrame(np.array(values, np.float32), subject, device, time)
    data = encode(frame)
    assert len(data) == 270 + len(subject.encode()) + len(device.encode())
    assert decode(data) == frame
    assert encode(decode(data)) == data


def _decodes_only_to_itself(data: bytes) -> None:
    """decode either raises PacketError or returns the frame that encodes back to ``data``."""
    try:
        frame = decode(data)
    except PacketError:
        return
    assert encode(frame) == data


@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    _decodes_only_to_itself(data)


@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_a_valid_header(tail: bytes) -> None:
    _decodes_only_to_itself(GOLDEN_SHORT[:10] + tail)


def test_every_truncation_is_rejected() -> None:
    for n in range(len(GOLDEN_UUID)):
        with pytest.raises(PacketError):
            decode(GOLDEN_UUID[:n])


@given(st.integers(0, len(GOLDEN_UUID) * 8 - 1), st.integers(0, len(GOLDEN_UUID) * 8 - 1))
def test_bit_flips(bit_a: int, bit_b: int) -> None:
    data = bytearray(GOLDEN_UUID)
    for bit in (bit_a, bit_b):
        data[bit // 8] ^= 1 << (bit % 8)
    _decodes_only_to_itself(bytes(data))


def test_decode_does_not_keep_a_view_of_the_input() -> None:
    data = bytearray(GOLDEN_UUID)
    frame = decode(data)
    data[-4:] = b"\x3f\x80\x00\x00"
    assert frame.values[-1] == 0.0
    assert frame.values.flags.writeable
    assert len(BLENDSHAPE_NAMES) == 61
