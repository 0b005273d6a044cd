"""When each played sample is heard: the DAC-time map a sink builds from its callbacks."""

from __future__ import annotations

import bisect
import math
from collections import deque

HISTORY = 4096  # callbacks remembered: tens of seconds, far more than any output latency
SMOOTHING = 0.1  # share of each DAC-time surprise taken (see DacClock.callback)
JUMP = 0.010  # a DAC time this far from the prediction is a real jump, taken whole


class DacClock:
    """Maps played sample indices to the DAC times they are heard at; plans (re)starts.

    Every callback that plays real samples records where its first one went (PortAudio's
    ``outputBufferDacTime``); a sample is heard at its callback's time plus its offset at the
    sample rate, so the map stays exact through gaps of silence. The last ``history``
    callbacks are kept; older samples are extrapolated from the oldest record.

    A (re)start is announced at least ``start_lead`` before it is heard, counting the output
    latency and rounded up to whole callbacks, so whoever learns of it has time to prepare
    (the scheduler, its first frames).
    """

    def __init__(self, rate: int, start_lead: float, history: int = HISTORY) -> None:
        self.rate = rate
        self.start_lead = start_lead
        self.next_dac: float | None = None  # predicted DAC time of the next callback
        self.period = 0.0  # the last callback's length, in seconds
        self._play_from: float | None = None  # announced DAC time of the next (re)start
        self._starts: deque[int] = deque(maxlen=history)
        self._dacs: deque[float] = deque(maxlen=history)

    def callback(self, dac: float, period: float) -> float:
        """A callback of ``period`` seconds whose first sample the device hears at ``dac``:
        returns that time without the driver's jitter, and predicts the next callback's.

        Some drivers (ALSA's PulseAudio plugin) report DAC times that wander by a few ms
        from one callback to the next, while the samples play at a steady rate. Each time is
        predicted from the last plus one buffer and corrected by a tenth of the surprise:
        jitter averages out, drift is followed within microseconds, and a real jump (a stall,
        a restart) of more than JUMP is taken at once.
        """
        predicted = self.next_dac
        if predicted is not None and abs(dac - predicted) <= JUMP:
            dac = predicted + SMOOTHING * (dac - predicted)
        self.next_dac = dac + period
        self.period = period
        return dac

    def record(self, first: int, dac: float) -> None:
        """Sample ``first`` (and the callback's samples after it) is heard at ``dac``."""
        self._starts.append(first)
        self._dacs.append(dac)

    def heard(self, sample: int) -> float:
        """When a played sample is heard (at least one callback must be recorded)."""
        k = max(bisect.bisect_right(self._starts, sample) - 1, 0)
        return self._dacs[k] + (sample - self._starts[k]) / self.rate

    def starts(self, dac: float, period: float, ahead: float) -> bool:
        """Whether a (re)start plays from the callback heard at ``dac``; the first callback
        that asks announces it (``ahead``: the output latency, which counts towards it)."""
        if self._play_from is None:
            self._play_from = dac + self.lead(period, ahead)
        if dac >= self._play_from - 0.5 * period:
            self._play_from = None
            return True
        return False

    def next_start(self, now: float, latency: float, ahead: float) -> float:
        """When a (re)start asked for at ``now`` is heard: the one announced, else a lead
        after the next callback; never in the past (``latency``: before any callback)."""
        base = max(now + latency if self.next_dac is None else self.next_dac, now)
        if self._play_from is not None:
            return max(self._play_from, base)
        return base + self.lead(self.period, ahead)

    def lead(self, period: float, ahead: float) -> float:
        """How long callbacks of ``period`` hold a (re)start: its samples are heard
        ``ahead`` after their callback, so the rest of start_lead, in whole callbacks."""
        need = max(0.0, self.start_lead - ahead)
        return need if period <= 0 else period * math.ceil(need / period - 1e-9)
