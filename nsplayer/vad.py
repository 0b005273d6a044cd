"""Voice activity for live input: is someone speaking, or is it room noise, a click, a breath?

A live microphone hears everything. The model's own noise gate keeps the mouth still in
steady noise, but transients (keyboard clicks, a chair) and breathing are loud enough to
pass an energy gate and make the mouth flap. ``VoiceGate`` opens only on *voiced* sound
(a pitch period in the autocorrelation) well above an adaptive noise floor, and closes
after a hangover once the level falls back towards the floor, so unvoiced consonants
inside words keep it open while clicks and breaths (no pitch) never open it. Whispering
is not animated. It decides every 5 ms so that it adds no latency to a causal model
whose look-ahead is longer than that.
"""

from __future__ import annotations

import collections
import math

import numpy as np

STEP_S = 0.005  # decision interval
VOICING_WINDOW_S = 0.032  # holds two periods of a 70 Hz voice
MIN_LAG_S, MAX_LAG_S = 1 / 400, 1 / 70  # pitch range searched for voicing
FLOOR_CHUNK_S = 0.1  # granularity of the sliding minimum that tracks the noise floor


class VoiceGate:
    """Streaming speech/no-speech decisions on an audio timeline starting at sample 0.

    Feed every input sample once, in order, with ``push``; ask ``active_at(t)`` for the
    decision at audio time ``t`` seconds (the newest decision at or before ``t``). Memory is
    bounded: only the last ``history_s`` seconds of decisions are kept.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        open_db: float = 15.0,
        close_db: float = 9.0,
        voicing: float = 0.5,
        hang_s: float = 0.2,
        floor_window_s: float = 3.0,
        min_level_db: float = -65.0,
        history_s: float = 10.0,
    ) -> None:
        self.sample_rate = sample_rate
        self._step = max(1, round(sample_rate * STEP_S))
        self._window = max(2 * self._step, round(sample_rate * VOICING_WINDOW_S))
        self._lags = (max(1, int(sample_rate * MIN_LAG_S)), int(sample_rate * MAX_LAG_S))
        self._nfft = 1 << (2 * self._window - 1).bit_length()
        self._open, self._close, self._voicing = open_db, close_db, voicing
        self._hang_steps = math.ceil(hang_s / STEP_S)
        # Noise floor: minimum level over the last floor_window_s, kept as per-chunk minima.
        self._chunk_steps = math.ceil(FLOOR_CHUNK_S / STEP_S)
        self._chunk_minima: collections.deque[float] = collections.deque(
            maxlen=max(1, math.ceil(floor_window_s / FLOOR_CHUNK_S))
        )
        self._chunk_min = math.inf
        self._min_level = min_level_db
        self._pending = np.zeros(0, np.float32)  # samples not yet in a whole step
        self._recent = np.zeros(self._window, np.float32)  # last window, for voicing
        self._steps = 0
        self._hang = 0
        self.active = False
        self._history: collections.deque[bool] = collections.deque(
            maxlen=max(1, round(history_s / STEP_S))
        )

    @property
    def noise_floor_db(self) -> float:
        """Current background level estimate, dBFS (power of the signal minus its DC)."""
        return min(self._chunk_min, *self._chunk_minima, math.inf)

    def push(self, pcm: np.ndarray) -> None:
        """Consume mono samples; decides once per completed 5 ms step."""
        data = np.concatenate([self._pending, np.asarray(pcm, np.float32).reshape(-1)])
        whole = len(data) // self._step * self._step
        for start in range(0, whole, self._step):
            self._decide(data[start : start + self._step])
        self._pending = data[whole:]

    def active_at(self, t: float) -> bool:
        """Decision for audio time ``t`` (s): the newest step that ended at or before it."""
        index = math.floor(t * self.sample_rate / self._step + 1e-9) - 1  # step ending <= t
        if index < 0 or not self._history:
            return False
        oldest = self._steps - len(self._history)
        return self._history[min(max(index, oldest), self._steps - 1) - oldest]

    def _decide(self, step: np.ndarray) -> None:
        self._recent = np.concatenate([self._recent[len(step) :], step])
        level = 10.0 * math.log10(float(np.var(step)) + 1e-12)  # var: ignores DC offset
        self._track_floor(level)
        snr = level - self.noise_floor_db if level >= self._min_level else 0.0
        self.active = self._next_state(snr)
        self._history.append(self.active)
        self._steps += 1

    def _track_floor(self, level: float) -> None:
        """Sliding minimum: follows pauses at once, forgets a quieter past after the window."""
        self._chunk_min = min(self._chunk_min, level)
        if (self._steps + 1) % self._chunk_steps == 0:
            self._chunk_minima.append(self._chunk_min)
            self._chunk_min = math.inf

    def _next_state(self, snr: float) -> bool:
        if self.active:
            self._hang = self._hang_steps if snr > self._close else self._hang - 1
            return self._hang > 0
        opens = snr > self._open and self._voiced()
        if opens:
            self._hang = self._hang_steps
        return opens

    def _voiced(self) -> bool:
        """Normalized autocorrelation peak in the pitch range, corrected for window overlap.

        Computed on the first difference, so a DC step or rumble is not mistaken for a pitch.
        """
        x = np.diff(self._recent)
        spectrum = np.fft.rfft(x, self._nfft)
        corr = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, self._nfft)
        if corr[0] <= 0.0:
            return False
        lo, hi = self._lags
        lags = np.arange(lo, hi + 1)
        norm = corr[lo : hi + 1] / corr[0] * (len(x) / (len(x) - lags))
        return float(norm.max()) > self._voicing
