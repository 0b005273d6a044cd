"""Rows of face values from one rate to another by linear interpolation, whole or streaming.

One rule for every place rows change rate (a take replayed at another fps, NeuroSync's
60 fps answers, the learned model's 10 ms states): output row k describes time k / rate_out
and mixes the two input rows around that time.
"""

from __future__ import annotations

import math

import numpy as np

_CHUNK = 4096  # input rows per step in ``resample_rows``: bounded float64 temporaries


class RowResampler:
    """Rows at ``rate_in`` per second in, rows at ``rate_out`` out, streaming.

    Output row k (time k / rate_out) mixes input rows floor(k * step) and the next, with
    step = rate_in / rate_out, and comes out as soon as both are known, so how the input is
    chunked never changes the output. ``width`` is the row width until the first rows
    arrive; theirs counts from then on.
    """

    def __init__(
        self, rate_in: float, rate_out: float, width: int, dtype: type = np.float32
    ) -> None:
        self.step = rate_in / rate_out
        self._rows = np.zeros((0, width), dtype)  # input rows from _base on
        self._base = 0
        self._done = 0  # output rows emitted

    def push(self, rows: np.ndarray, limit: int | None = None) -> np.ndarray:
        """Append input rows; return every output row now known (below ``limit``)."""
        if len(rows):
            rows = np.asarray(rows, self._rows.dtype)
            self._rows = (
                np.concatenate([self._rows, rows]) if self._base + len(self._rows) else rows
            )
        return self._emit(limit, hold=False)

    def finish(self, total: int | None = None) -> np.ndarray:
        """The rest: up to ``total`` output rows in all (past the input's end the last row
        holds), or without ``total`` every row up to the last input row's time."""
        return self._emit(total, hold=True)

    def _emit(self, limit: int | None, hold: bool) -> np.ndarray:
        have = self._base + len(self._rows)  # input rows 0..have-1 known
        stop = math.floor((have - 1) / self.step + 1e-9) + 1 if have else 0
        if limit is not None and have:
            stop = limit if hold else min(stop, limit)
        if stop <= self._done:
            return self._rows[:0]
        t = np.arange(self._done, stop) * self.step
        j = np.floor(t + 1e-9).astype(np.int64)
        frac = (t - j)[:, None]
        a = np.minimum(j, have - 1) - self._base
        b = np.minimum(j + 1, have - 1) - self._base
        out = (self._rows[a] * (1.0 - frac) + self._rows[b] * frac).astype(self._rows.dtype)
        self._done = stop
        keep = max(0, min(math.floor(stop * self.step + 1e-9), have - 1) - self._base)
        self._rows, self._base = self._rows[keep:], self._base + keep
        return out


def resample_rows(rows: np.ndarray, rate: float, fps: float) -> np.ndarray:
    """A whole take's rows at ``rate`` to rows at ``fps``, up to its last row's time."""
    rows = np.asarray(rows, np.float32)
    if abs(rate - fps) < 1e-6 or len(rows) < 2:
        return rows
    resampler = RowResampler(rate, fps, rows.shape[1])
    parts = [resampler.push(rows[i : i + _CHUNK]) for i in range(0, len(rows), _CHUNK)]
    return np.concatenate([*parts, resampler.finish()])
