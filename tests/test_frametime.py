"""FrameTime: timecode-of-day frames + subframe, float32 subframe, timecode strings."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livelink import FrameTime


def test_from_seconds_splits_frame_and_subframe() -> None:
    t = FrameTime.from_seconds(19 * 3600 + 16 * 60 + 29 + 35.5 / 60)
    assert (t.frame, t.subframe, t.rate_num, t.rate_den) == (4163375, 0.5, 60, 1)
    assert t.to_timecode() == "19:16:29:35.500"


def test_ntsc_rate() -> None:
    t = FrameTime.from_seconds(1001 / 30000 * 10.25, 30000, 1001)
    assert t.frame == 10
    assert t.subframe == pytest.approx(0.25, abs=1e-6)
    assert t.rate == pytest.approx(29.97, abs=0.001)


@given(st.floats(0.0, 86400.0, exclude_max=True), st.sampled_from([24, 25, 30, 50, 60]))
def test_seconds_round_trip(seconds: float, rate: int) -> None:
    t = FrameTime.from_seconds(seconds, rate)
    assert 0.0 <= t.subframe < 1.0
    assert math.isclose(t.to_seconds(), seconds, abs_tol=1e-7 / rate + 1e-9)


def test_subframe_is_float32_and_below_one() -> None:
    assert FrameTime(0, 0.1).subframe == 0.10000000149011612
    assert FrameTime(0, 0.99999999).subframe < 1.0
    assert FrameTime.from_seconds(0.9999999999 / 60).subframe < 1.0


def test_now_is_time_of_day() -> None:
    t = FrameTime.now()
    assert 0 <= t.frame < 86400 * 60


def test_advance_keeps_subframe_and_rate() -> None:
    t = FrameTime(100, 0.25, 50, 1).advance()
    assert t == FrameTime(101, 0.25, 50, 1)
    assert t.advance(-101).frame == 0


@pytest.mark.parametrize(
    "args",
    [
        (0, 1.0),
        (0, -0.1),
        (0, math.nan),
        (2**31, 0.0),
        (1.5, 0.0),
        (0, 0.0, 0, 1),
        (0, 0.0, 60, -1),
    ],
)
def test_invalid(args: tuple) -> None:
    with pytest.raises(ValueError):
        FrameTime(*args)


def test_timecode_round_trip_and_errors() -> None:
    t = FrameTime.from_timecode("19:16:29:35.273")
    assert t.frame == ((19 * 60 + 16) * 60 + 29) * 60 + 35
    assert t.to_timecode() == "19:16:29:35.273"
    assert FrameTime.from_timecode("00:00:01;05", 30).frame == 35
    for bad in ("19:16:29", "aa:bb:cc:dd", "00:00:00:60.0", "00:61:00:00"):
        with pytest.raises(ValueError):
            FrameTime.from_timecode(bad)
