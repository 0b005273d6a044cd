"""Streaming sample-rate conversion with libsoxr (python-soxr), for devices and the mixer.

A sound card or a mixer that runs at another rate than the speech (a 22.05 or 24 kHz TTS
voice on a 48 kHz device: the usual case with WASAPI shared mode) needs a converter that
does not alias audibly and keeps state across blocks, so any block size gives the same
sound. Linear interpolation does neither well; soxr's "HQ" filter does both, in C.
"""

from __future__ import annotations

import numpy as np
import soxr


class Resampler:
    """Blocks of ``(n, channels)`` float32 at ``rate_in`` in, the same at ``rate_out`` out."""

    def __init__(self, rate_in: int, rate_out: int, channels: int = 1) -> None:
        self.rate_in, self.rate_out = rate_in, rate_out
        self._stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        """The output for ``block``; ``last`` flushes the filter's delay at the end."""
        data = np.ascontiguousarray(block, np.float32)
        return self._stream.resample_chunk(data, last=last)
