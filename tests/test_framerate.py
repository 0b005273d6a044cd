"""Rows between frame rates: streaming equals whole, and both equal plain interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nsplayer.framerate import RowResampler, resample_rows

RATES = st.sampled_from([24.0, 25.0, 29.97, 30.0, 50.0, 59.94, 60.0, 100.0, 120.0])


def _rows(n: int, width: int = 3) -> np.ndarray:
    return np.random.default_rng(n).random((n, width)).astype(np.float32)


def _interp(rows: np.ndarray, rate_in: float, rate_out: float, count: int) -> np.ndarray:
    t_out = np.arange(count) / rate_out
    t_in = np.arange(len(rows)) / rate_in
    return np.stack([np.interp(t_out, t_in, rows[:, j]) for j in range(rows.shape[1])], 1)


@given(st.integers(2, 400), RATES, RATES)
def test_whole_take_matches_interpolation_up_to_its_last_row(n, rate_in, rate_out):
    rows = _rows(n)
    out = resample_rows(rows, rate_in, rate_out)
    count = int((n - 1) / rate_in * rate_out + 1e-9) + 1
    assert out.shape == (count, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, _interp(rows, rate_in, rate_out, count), atol=1e-6)


@given(st.lists(st.integers(0, 50), min_size=1, max_size=20), RATES, RATES, st.integers(0, 40))
def test_chunking_never_changes_the_output_and_the_last_row_holds(chunks, rate_in, rate_out, extra):
    rows = _rows(sum(chunks) + 1)
    whole = RowResampler(rate_in, rate_out, 3)
    total = int(len(rows) / rate_in * rate_out) + extra
    expected = np.concatenate([whole.push(rows), whole.finish(total)])
    streamed, start, parts = RowResampler(rate_in, rate_out, 3), 0, []
    for size in [*chunks, 1]:
        parts.append(streamed.push(rows[start : start + size]))
        start += size
    got = np.concatenate([*parts, streamed.finish(total)])
    np.testing.assert_array_equal(got, expected)
    known = int((len(rows) - 1) / rate_in * rate_out + 1e-9) + 1
    assert len(got) == max(total, known)
    t_last = (np.arange(len(got)) / rate_out) >= (len(rows) - 1) / rate_in
    np.testing.assert_array_equal(got[t_last], np.repeat(rows[-1:], t_last.sum(), axis=0))


def test_push_emits_a_row_only_once_both_neighbours_are_known():
    resampler = RowResampler(100.0, 60.0, 1, np.float64)
    rows = np.arange(10.0)[:, None]
    assert resampler.push(rows[:2]).ravel().tolist() == [0.0]  # t = 1/60 needs row 2
    assert resampler.push(rows[2:3]).ravel() == pytest.approx([5 / 3])
    assert resampler.push(rows[3:], limit=4).ravel() == pytest.approx([10 / 3, 5.0])
    assert len(resampler.finish(4)) == 0
