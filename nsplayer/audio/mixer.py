"""Several voices into one sink, each knowing exactly when its samples are heard.

A mixer thread keeps the sink ``lead_s`` ahead of what it plays: every ``block_s`` it sums
the voices' pending audio into one block and writes it (silence when nobody speaks, so the
output and its clock never stop). Each voice records where its samples landed in the sink
(voice sample -> sink sample, one run per stretch of uninterrupted audio), so
``voice.dac_time(i)`` is the sink's own DAC time of that sample: exact, through underruns
and across voices that start at any moment.

A voice starts ``cushion_s`` after its first audio arrives (a jitter buffer for streams);
when its producer falls behind it stops (an underrun), and it resumes a cushion after the
next audio arrives, later on the timeline but still in sync with its frames. ``fade`` ends it
with a short ramp instead of a click. With a null sink nothing is heard, but the same
timeline runs on the monotonic clock, which is what ``--audio none`` needs.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque

import numpy as np

from nsplayer.audio.resample import Resampler
from nsplayer.audio.sinks import Sink

BLOCK_S = 0.01  # mixing step: a fade or a start lands within this
LEAD_S = 0.03  # how far the mixer writes ahead of playback: the cost of an interrupt


class Voice:
    """One speaker's audio on a mixer: a bounded queue in, a map to the sink's samples.

    Sample indices count the voice's own samples (its ``rate``); the mixer works at its
    own rate and converts.
    """

    def __init__(self, mixer: Mixer, rate: int, cushion_s: float, capacity_s: float) -> None:
        self.rate = rate
        self.underruns = 0
        self._mixer = mixer
        self._ratio = mixer.rate / rate
        self._resampler = None if rate == mixer.rate else Resampler(rate, mixer.rate)
        self._cushion = max(1, round(cushion_s * mixer.rate))
        self._capacity = max(round(capacity_s * mixer.rate), 2 * self._cushion)
        self._pending: deque[np.ndarray] = deque()
        self._queued = 0  # mixer-rate samples in _pending
        self._pushed = 0  # mixer-rate samples received
        self._mixed = 0  # mixer-rate samples written to the sink
        self._runs_voice: list[int] = []  # first voice sample (mixer rate) of each run
        self._runs_sink: list[int] = []  # where that sample went in the sink
        self._start_at: float | None = None  # when the next run is heard: set by a push
        self._playing = False
        self._ended = False
        self._fade: tuple[int, int] | None = None  # (samples faded so far, fade length)
        self._fade_span: tuple[int, int] | None = None  # (first faded sample, fade length)
        self._cut = False  # faded out or cleared: nothing more will play

    # -- producer side -------------------------------------------------------------------------
    def push(self, pcm: np.ndarray) -> None:
        """Queue mono float32 samples (check ``room_s`` first: the queue is not refused)."""
        block = np.asarray(pcm, np.float32).reshape(-1)
        if not len(block):
            return
        if self._resampler is not None:
            block = self._resampler.process(block[:, None])[:, 0]
        self._queue(block)

    def _queue(self, block: np.ndarray) -> None:
        """Queue converted samples; the cushion counts from the first audio's arrival, even
        if the resampler holds it back for a while."""
        with self._mixer.lock:
            if self._cut or self._ended:
                return
            if self._start_at is None:
                self._start_at = self._mixer.now() + self._cushion / self._mixer.rate
            if not len(block):
                return
            self._pending.append(block)
            self._queued += len(block)
            self._pushed += len(block)

    def end(self) -> None:
        """No more audio: play out what is queued (and the resampler's tail)."""
        if self._resampler is not None:
            self._queue(self._resampler.process(np.zeros((0, 1), np.float32), last=True)[:, 0])
        with self._mixer.lock:
            self._ended = True

    def room_s(self) -> float:
        """Seconds of audio the queue takes before the producer should wait."""
        return max(0, self._capacity - self._queued) / self._mixer.rate

    def fade(self, fade_s: float) -> int:
        """Fade out over ``fade_s`` from the next block and stop; returns the voice samples
        heard before the fade began."""
        heard = self.heard()
        with self._mixer.lock:
            if not self._playing or fade_s <= 0:
                self._stop()
            elif self._fade is None:
                self._fade = (0, max(1, round(fade_s * self._mixer.rate)))
                self._fade_span = (self._mixed, self._fade[1])
        return heard

    def gain(self, index: int) -> float:
        """The fade's gain on voice sample ``index``: 1 before a fade, falling linearly to 0
        over it (what the face scales its speech by, so the mouth fades with the voice)."""
        span = self._fade_span
        if span is None:
            return 1.0
        first, length = span
        return min(1.0, max(0.0, 1.0 - (index * self._ratio - first) / length))

    def fade_end(self) -> int | None:
        """The voice sample a fade ends at (None without one): nothing after it is heard."""
        span = self._fade_span
        return None if span is None else math.ceil(sum(span) / self._ratio)

    # -- timeline ------------------------------------------------------------------------------
    def dac_time(self, index: int) -> float | None:
        """When voice sample ``index`` is heard, on the mixer's clock; None while unknown
        (not received yet, waiting for its cushion after an underrun, or never played)."""
        where = int(index * self._ratio)
        with self._mixer.lock:
            if where < self._mixed:
                k = bisect.bisect_right(self._runs_voice, where) - 1
                return self._mixer.heard_at(self._runs_sink[k] + where - self._runs_voice[k])
            if where >= self._pushed or self._cut:
                return None
            if self._playing:  # queued behind the mixed samples, in the same run
                return self._mixer.heard_at(self._runs_sink[-1] + where - self._runs_voice[-1])
            if self._start_at is not None:  # planned: the next run starts at _mixed
                return self._start_at + (where - self._mixed) / self._mixer.rate
        return None

    def heard(self) -> int:
        """Voice samples heard so far."""
        now = self._mixer.now()
        with self._mixer.lock:
            mixed = self._mixed
        lo, hi = 0, mixed
        while lo < hi:  # the first mixed sample not heard yet
            mid = (lo + hi) // 2
            t = self._dac_mixed(mid)
            lo, hi = (mid + 1, hi) if t is not None and t <= now else (lo, mid)
        return int(lo / self._ratio)

    def _dac_mixed(self, where: int) -> float | None:
        with self._mixer.lock:
            k = bisect.bisect_right(self._runs_voice, where) - 1
            return self._mixer.heard_at(self._runs_sink[k] + where - self._runs_voice[k])

    @property
    def samples(self) -> int:
        """Voice samples received so far."""
        return int(self._pushed / self._ratio)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def underrun(self) -> bool:
        """True while it waits for audio after running dry mid-stream."""
        return self._mixed > 0 and not self._playing and not self._done()

    @property
    def cut(self) -> bool:
        """True once faded out or cleared: the rest will never be heard."""
        return self._cut

    @property
    def done(self) -> bool:
        """True once nothing more will be mixed (played out, faded or cleared)."""
        with self._mixer.lock:
            return self._done()

    def _done(self) -> bool:
        return self._cut or (self._ended and not self._queued)

    def last_heard(self) -> float | None:
        """When the last mixed sample is heard (None before any)."""
        with self._mixer.lock:
            if not self._mixed:
                return None
            return self._mixer.heard_at(
                self._runs_sink[-1] + self._mixed - 1 - self._runs_voice[-1]
            )

    # -- mixer side (lock held) ----------------------------------------------------------------
    def _stop(self) -> None:
        self._cut = True
        self._playing = False
        self._pending.clear()
        self._queued = 0

    def _mix_into(self, out: np.ndarray, first: int, heard: float | None) -> None:
        """Add this voice's next samples to ``out``, whose sample 0 is sink sample ``first``
        and is heard at ``heard``."""
        if self._cut or not self._queued:
            if self._fade is not None:  # run dry while fading: over, nothing more is to come
                self._stop()
                return
            if self._playing and not self._ended:
                self.underruns += 1
                self._start_at = None
            self._playing = False
            return
        offset = 0
        if not self._playing:
            if heard is None:
                return
            offset = max(0, round((self._start_at - heard) * self._mixer.rate))
            if offset >= len(out):
                return
            self._runs_voice.append(self._mixed)
            self._runs_sink.append(first + offset)
            self._playing = True
        self._take(out[offset:])

    def _take(self, out: np.ndarray) -> None:
        n = min(len(out), self._queued)
        chunk = np.empty(n, np.float32)
        got = 0
        while got < n:
            head = self._pending[0]
            k = min(n - got, len(head))
            chunk[got : got + k] = head[:k]
            if k == len(head):
                self._pending.popleft()
            else:
                self._pending[0] = head[k:]
            got += k
        self._queued -= n
        if self._fade is not None:
            done, length = self._fade
            chunk *= np.clip(1.0 - (done + np.arange(n)) / length, 0.0, 1.0)
            self._fade = (done + n, length)
            if done + n >= length:
                n = min(n, length - done)
                self._mixed += n
                out[:n] += chunk[:n]
                self._stop()
                return
        out[:n] += chunk
        self._mixed += n


class Mixer:
    """Sums voices into one sink from its own thread; ``now()`` is the sink's clock."""

    def __init__(self, sink: Sink, *, block_s: float = BLOCK_S, lead_s: float = LEAD_S) -> None:
        self.sink = sink
        self.rate = sink.sample_rate
        self.lock = threading.RLock()
        self._block = max(1, round(block_s * self.rate))
        self._lead = max(block_s, lead_s)
        self._voices: list[Voice] = []
        self._last_heard: float | None = None  # DAC time of the last written sample
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nsplayer-mixer", daemon=True)

    def now(self) -> float:
        return self.sink.now()

    def voice(self, rate: int, *, cushion_s: float, capacity_s: float = 2.0) -> Voice:
        """A new voice at ``rate`` Hz, mixed until it is done."""
        voice = Voice(self, rate, cushion_s, capacity_s)
        with self.lock:
            self._voices.append(voice)
        return voice

    def heard_at(self, sink_index: int) -> float | None:
        """When sink sample ``sink_index`` is heard (written ones; extrapolated beyond)."""
        written = self.sink.written
        if sink_index < written:
            return self.sink.dac_time(sink_index)
        if self._last_heard is None:
            return None
        return self._last_heard + (sink_index - written + 1) / self.rate

    def start(self) -> None:
        self._thread.start()

    def step(self) -> bool:
        """Mix and write one block if the sink needs one; False if it is far enough ahead."""
        written = self.sink.written
        self._last_heard = self.sink.dac_time(written - 1) if written else None
        if self._ahead(written) >= self._lead:
            return False
        out = np.zeros(self._block, np.float32)
        heard = None if self._last_heard is None else self._last_heard + 1 / self.rate
        with self.lock:
            for voice in self._voices:
                voice._mix_into(out, written, heard)
            self._voices = [v for v in self._voices if not v._done()]
        np.clip(out, -1.0, 1.0, out=out)
        return self.sink.write(out[:, None])

    def _ahead(self, written: int) -> float:
        """Seconds queued in the sink before the output latency (which is not ours to fill)."""
        if self._last_heard is None:  # not playing yet: count what waits
            return (written - self.sink.consumed) / self.rate
        latency = self.sink.measured_latency
        latency = self.sink.latency if latency is None else latency
        return self._last_heard - self.sink.now() - latency

    def close(self) -> None:
        """Stop mixing and close the sink."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        self.sink.close()

    def _run(self) -> None:
        pause = self._block / self.rate / 2
        while not self._closed.is_set():
            if not self.step():
                time.sleep(pause)
