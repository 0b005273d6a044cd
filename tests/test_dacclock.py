"""DacClock on plain numbers: the sample -> DAC time map, smoothing, start-lead rounding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsplayer.audio.dacclock import JUMP, DacClock

SR = 8000


def test_samples_map_through_gaps_to_their_own_callback():
    clock = DacClock(SR, start_lead=0.0)
    clock.record(0, 10.0)
    clock.record(80, 10.01)
    clock.record(160, 10.5)  # a 480 ms gap of silence before sample 160
    assert clock.heard(0) == 10.0
    assert clock.heard(79) == pytest.approx(10.0 + 79 / SR)
    assert clock.heard(100) == pytest.approx(10.01 + 20 / SR)
    assert clock.heard(200) == pytest.approx(10.5 + 40 / SR)


def test_history_is_bounded_and_older_samples_extrapolate_from_the_oldest_record():
    clock = DacClock(SR, start_lead=0.0, history=3)
    for k in range(10):
        clock.record(k * 80, 10.0 + k * 0.02)  # 10 ms of samples every 20 ms
    assert len(clock._starts) == 3
    assert clock.heard(7 * 80) == pytest.approx(10.14)
    assert clock.heard(80) == pytest.approx(10.14 - 6 * 80 / SR)  # from record 7 on


@given(st.lists(st.floats(-0.002, 0.002), min_size=100, max_size=100))
def test_jitter_within_jump_is_smoothed_and_never_wanders(jitter):
    clock = DacClock(SR, start_lead=0.0)
    smoothed = [clock.callback(5.0 + k * 0.01 + e, 0.01) for k, e in enumerate(jitter)]
    error = np.array(smoothed) - (5.0 + np.arange(100) * 0.01)
    assert np.abs(error).max() <= 0.002 + 1e-12  # never further than the raw jitter
    assert clock.next_dac == pytest.approx(smoothed[-1] + 0.01)


def test_a_steady_offset_is_followed_and_a_jump_taken_whole():
    clock = DacClock(SR, start_lead=0.0)
    for k in range(100):  # the device reports 1 ms later than predicted, every time
        dac = clock.callback(5.0 + k * 0.01 + (0.001 if k else 0.0), 0.01)
    assert dac == pytest.approx(5.0 + 99 * 0.01 + 0.001, abs=1e-6)
    jump = 1.0 + 2 * JUMP
    assert clock.callback(dac + 0.01 + jump, 0.01) == pytest.approx(dac + 0.01 + jump)


@pytest.mark.parametrize(
    ("period", "ahead", "lead"),
    [
        (0.01, 0.0, 0.04),  # 4 whole callbacks, not 5 for a rounding error
        (0.01, 0.015, 0.03),  # 25 ms to go: rounded up to 3 callbacks
        (0.015, 0.0, 0.045),
        (0.01, 0.05, 0.0),  # the output latency alone covers it
        (0.0, 0.01, 0.03),  # no callback yet: exactly the rest
    ],
)
def test_lead_is_the_rest_of_start_lead_in_whole_callbacks(period, ahead, lead):
    assert DacClock(SR, start_lead=0.04).lead(period, ahead) == pytest.approx(lead)


def test_a_start_is_announced_once_and_plays_from_the_callback_it_named():
    clock = DacClock(SR, start_lead=0.03)
    assert not clock.starts(10.0, 0.01, 0.0)  # announced for 10.03
    assert clock.next_start(now=9.0, latency=0.0, ahead=0.0) == pytest.approx(10.03)
    assert not clock.starts(10.01, 0.01, 0.0)
    assert not clock.starts(10.02, 0.01, 0.0)
    assert clock.starts(10.0301, 0.01, 0.0)  # within half a callback of the announced time
    assert not clock.starts(11.0, 0.01, 0.0)  # the next start is announced anew


def test_next_start_before_any_callback_and_never_in_the_past():
    clock = DacClock(SR, start_lead=0.04)
    assert clock.next_start(now=3.0, latency=0.01, ahead=0.01) == pytest.approx(3.04)
    clock.callback(2.0, 0.01)  # the last callback long ago: count from now
    assert clock.next_start(now=3.0, latency=0.01, ahead=0.01) == pytest.approx(3.03)
