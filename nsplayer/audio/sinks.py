"""Audio sinks that play PCM and tell when each written sample is heard.

Both sinks keep a bounded ring of samples that a callback drains (``ring.Ring``), and
record for every callback the DAC time of the first sample it took (PortAudio's
``outputBufferDacTime``: when that sample reaches the speaker). From those records
(``dacclock.DacClock``) ``dac_time(i)`` maps any written sample index to the time it is
heard, on the sink's own clock ``now()``. The scheduler uses nothing else, so it follows
the sound card and compensates its output latency. What ``Sink`` itself decides is when
samples may play: the jitter buffer, the gate, the device's warm-up, underruns.

Times from different sinks are on different clocks: PortAudio's (on Debian it is
CLOCK_REALTIME, not ``time.monotonic()``) for the device, an injectable clock for
the null sink. Never mix a sink's times with another clock.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

import numpy as np

from nsplayer.audio import SILENT_S
from nsplayer.audio.dacclock import DacClock
from nsplayer.audio.devices import load_sounddevice, output_settings, resolve_device
from nsplayer.audio.resample import Resampler
from nsplayer.audio.ring import Ring
from nsplayer.errors import NsplayerError

UNDERRUN_MODES = ("silence", "pause")


class Sink:
    """What the device and null sinks share: a ``Ring`` of samples that the callback drains,
    a ``DacClock`` of where they went, and the policy of when samples may play.

    ``buffer_ms`` of audio must be queued before playback starts (a jitter buffer for
    streams). On underrun the callback plays silence; with ``underrun="pause"`` it also
    waits for the buffer to refill before resuming, with ``"silence"`` it resumes as soon
    as data comes. Every (re)start is announced by ``dac_time`` at least ``start_lead``
    before it is heard (the output latency counts towards it), so the first frames are
    not late. ``dac_time`` stays exact through gaps, because each callback records where
    the real samples it played went.

    ``underruns`` counts the gaps a listener hears mid-stream: the ring ran dry before the
    input ended, or the device itself ran out (its callback came late: PortAudio's
    ``output_underflow``), once per callback even if both. ``status_errors`` counts every
    callback the device flagged, warm-up included.
    """

    kind = "sink"

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        buffer_ms: float = 100.0,
        underrun: str = "silence",
        capacity_s: float = 1.0,
        start_lead: float = 0.04,
    ) -> None:
        if underrun not in UNDERRUN_MODES:
            raise NsplayerError(f"--underrun must be silence or pause, not {underrun!r}")
        self.sample_rate = sample_rate
        self.channels = channels
        self.latency = 0.0  # nominal output latency (PortAudio's figure)
        self.measured_latency: float | None = None  # last callback's DAC time - its time
        self.underruns = 0  # gaps heard mid-stream (see above)
        self.status_errors = 0  # callbacks the device flagged (underflow, priming, ...)
        self._pause_on_underrun = underrun == "pause"
        self._prebuffer = max(1, round(sample_rate * buffer_ms / 1000.0))
        self._ring = Ring(max(round(sample_rate * capacity_s), 2 * self._prebuffer), channels)
        self._dac_clock = DacClock(sample_rate, start_lead)
        self._filling = True  # waiting for the jitter buffer before playing
        self._held = False  # device still warming up: play silence, keep samples
        self._gated = False  # the player waits for its first frames: keep samples
        self._flowing = False  # the last callback was all real samples
        self._ended = False
        self._closed = False
        self._cond = threading.Condition()
        self.source_rate = sample_rate  # what write() takes (see adopt)
        self._source_channels = channels
        self._resampler: Resampler | None = None
        self._last_block = False  # end(): the resampler gives back what its filter holds

    # -- clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        """The sink's clock, in seconds (same clock as ``dac_time``)."""
        raise NotImplementedError

    @property
    def failure(self) -> NsplayerError | None:
        """Why the sink can no longer play (the device went away), or None."""
        return None

    @property
    def start_lead(self) -> float:
        """How long before it is heard every (re)start is announced."""
        return self._dac_clock.start_lead

    def dac_time(self, sample_index: int) -> float | None:
        """When sample ``sample_index`` is (or will be) heard, on ``now()``'s clock.

        Exact once a callback took the sample; an estimate while it waits in the ring
        (assuming no underrun before it); None if it is not written yet or playback is
        waiting for the jitter buffer, i.e. nobody knows yet. Counts source samples (see
        ``adopt``).
        """
        if self._resampler is not None:
            sample_index = math.floor(sample_index * self.sample_rate / self.source_rate)
        return self._heard(sample_index)

    def _heard(self, sample_index: int) -> float | None:
        """``dac_time`` of the sink's own sample ``sample_index``."""
        self._advance()
        with self._cond:
            taken = self._ring.taken
            if sample_index < taken:
                return self._dac_clock.heard(sample_index)
            if sample_index >= self._ring.written or self._filling or self._held or self._gated:
                return None
            return self._estimate() + (sample_index - taken) / self.sample_rate

    def _estimate(self) -> float:
        """DAC time of the next sample to play (lock held).

        While playing, the device's own pace (the last callback's DAC time plus its length)
        is the best guess, even if a callback runs late; otherwise the next (re)start.
        """
        clock = self._dac_clock
        if self._flowing and clock.next_dac is not None:
            return clock.next_dac
        return clock.next_start(self.now(), self.latency, self._ahead())

    def _ahead(self) -> float:
        """How long after its callback a sample is heard: measured, else nominal."""
        return self.latency if self.measured_latency is None else self.measured_latency

    @property
    def written(self) -> int:
        """Source samples accepted by ``write`` so far (the ring counts the sink's own)."""
        written = self._ring.written
        if self._resampler is None:
            return written
        return math.floor(written * self.source_rate / self.sample_rate)

    def adopt(self, rate: int, channels: int) -> None:
        """Take blocks of ``rate`` and ``channels`` from now on, converted to the sink's
        own: a stream's format is known only once its header arrives, and a sound device
        opened before then is already playing steadily. Before the first ``write`` only."""
        if self._ring.written:
            raise ValueError("a sink adopts a source format before the first write only")
        self.source_rate, self._source_channels = rate, channels
        self._resampler = (
            None if rate == self.sample_rate else Resampler(rate, self.sample_rate, self.channels)
        )

    # -- producer side -------------------------------------------------------------------------
    def write(self, block: np.ndarray) -> bool:
        """Queue a (n, channels) float32 block, waiting while the ring is full.

        Returns False (and drops the block) once the sink is closed.
        """
        block = self._prepare(block)
        pos = 0
        while pos < len(block):
            self._advance()
            with self._cond:
                if self._closed:
                    return False
                n = self._ring.room(len(block) - pos)
                if not n:  # woken by _consume once a batch fits
                    self._cond.wait(0.05)
                    continue
                self._ring.put(block[pos : pos + n])
                pos += n
                if self._filling and self._ring.count >= self._prebuffer:
                    self._filling = False
                self._cond.notify_all()
        return True

    def end(self) -> None:
        """No more samples: play out what is queued without waiting for a full buffer."""
        if self._resampler is not None and not self._last_block:
            self._last_block = True
            self.write(np.zeros((0, self._source_channels), np.float32))
        with self._cond:
            self._ended = True
            self._filling = False
            self._cond.notify_all()

    def played(self) -> bool:
        """True once the input has ended and every written sample has been heard."""
        self._advance()
        with self._cond:
            if not self._ended or self._ring.taken < self._ring.written:
                return False
            last = self._ring.written - 1
        heard = self._heard(last) if last >= 0 else None
        return heard is None or heard <= self.now()

    def gate(self, closed: bool) -> None:
        """Keep (True) or stop keeping (False) queued samples from playing, e.g. until the
        model's first frames are ready."""
        self._advance()  # callbacks missed so far ran while the gate was as it was
        with self._cond:
            self._gated = closed
            self._cond.notify_all()

    @property
    def consumed(self) -> int:
        """Samples handed to the device so far."""
        return self._ring.taken

    def stop_audio(self) -> None:
        """Play silence from now on and refuse writes; the clock keeps running."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop playing now and release the device; pending writes return False."""
        self.stop_audio()

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------
    def _prepare(self, block: np.ndarray) -> np.ndarray:
        """A source block as the sink plays it: downmixed (or copied to every channel) if
        the channels differ, resampled if the rates do."""
        block = np.asarray(block, np.float32).reshape(-1, self._source_channels)
        if self._source_channels != self.channels:
            block = np.repeat(block.mean(axis=1, keepdims=True), self.channels, axis=1)
        if self._resampler is not None:
            block = self._resampler.process(block, last=self._last_block)
        return block

    def _consume(self, out: np.ndarray, dac: float, underflow: bool = False) -> None:
        """Fill ``out`` from the ring (silence where there is nothing); called per callback.

        ``underflow``: the device says it ran out before this callback (it came late).
        """
        frames = len(out)
        ring = self._ring
        with self._cond:
            period = frames / self.sample_rate
            dac = self._dac_clock.callback(dac, period)
            take = 0
            playable = ring.count and not (
                self._filling or self._closed or self._held or self._gated
            )
            if playable and (self._flowing or self._dac_clock.starts(dac, period, self._ahead())):
                take = min(frames, ring.count)
            if take:
                self._dac_clock.record(ring.taken, dac)
                if ring.take(out, take):  # just made room for a writer's batch
                    self._cond.notify_all()
            if take < frames:
                out[take:] = 0.0
            dry = take < frames and not self._ended  # the producer fell behind
            if self._flowing and (dry or (underflow and take)):  # a gap heard mid-stream
                self.underruns += 1
                self._filling = dry and self._pause_on_underrun
            self._flowing = take == frames

    def _advance(self) -> None:
        """Run any callbacks that are due (only the null sink has to)."""


class NullSink(Sink):
    """Plays nothing, but consumes samples at real time with virtual callbacks.

    Virtual callbacks of ``block`` samples (10 ms by default) run whenever the sink is
    asked anything, so the scheduler path is the same as with a sound card. ``clock``
    (default ``time.monotonic``) can be injected for deterministic tests; ``latency``
    can pretend a device's output latency (default none: heard when consumed).
    """

    kind = "null"

    def __init__(
        self,
        sample_rate: int,
        channels: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        latency: float = 0.0,
        block: int | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(sample_rate, channels, **kwargs)  # type: ignore[arg-type]
        self._clock = clock
        self.latency = latency
        self._block = block or max(1, sample_rate // 100)
        self._next_callback = clock()
        self._out = np.zeros((self._block, channels), np.float32)
        self._advancing = threading.Lock()  # writer and scheduler threads both drive it

    def now(self) -> float:
        return self._clock()

    def _advance(self) -> None:
        with self._advancing:
            self._run_callbacks(self._clock())

    def _run_callbacks(self, now: float) -> None:
        period = self._block / self.sample_rate
        while self._next_callback <= now and not self._closed:
            self._consume(self._out, self._next_callback + self.latency)
            self._next_callback += period
            waiting = not self._ring.count or self._gated or self._filling  # nothing can play:
            if waiting and self._next_callback <= now:  # skip to now, so a start counts from now
                skipped = math.floor((now - self._next_callback) / period)
                self._next_callback += skipped * period
                if skipped:
                    self._dac_clock.next_dac = self._next_callback + self.latency


class DeviceSink(Sink):
    """A sounddevice ``OutputStream``; the callback drains the ring and stamps DAC times.

    The stream runs from construction, playing silence until the jitter buffer fills,
    so a slow-starting device warms up while the model starts. A new PulseAudio stream
    takes its first few buffers in a burst, reports DAC times for them as if they played
    at once, then stalls up to a second: no real sample is handed over until callbacks
    arrive at the device's pace, so every recorded DAC time is a true one. The source rate
    is used if the device takes it, else the device's default rate, resampled (soxr).
    """

    kind = "device"

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        *,
        device: str | int | None = None,
        callback_s: float | None = None,
        **kwargs: object,
    ) -> None:
        sd = load_sounddevice()
        index = resolve_device(device, "output")
        rate, out_channels, extra = output_settings(sd, index, sample_rate, channels)
        super().__init__(rate, out_channels, **kwargs)  # type: ignore[arg-type]
        self.adopt(sample_rate, channels)
        self._held = True
        self._last_callback: float | None = None
        self._callbacks = 0
        self._opened = time.monotonic()
        self._last_now = (0.0, self._opened)  # (stream time, monotonic) of the last reading
        self._heartbeat = self._opened  # time.monotonic() of the last callback
        self._failure: NsplayerError | None = None
        try:
            self._stream = sd.OutputStream(
                samplerate=rate,
                channels=out_channels,
                dtype="float32",
                device=index,
                callback=self._callback,
                blocksize=0 if callback_s is None else round(rate * callback_s),
                extra_settings=extra,
            )
            self.latency = float(self._stream.latency)
            self.device_name = sd.query_devices(self._stream.device)["name"]
            self._stream.start()
        except sd.PortAudioError as exc:
            raise NsplayerError(
                f"cannot open audio output ({exc}) — pick one with --device "
                "(see `nsplayer devices`) or use --no-audio"
            ) from None

    def now(self) -> float:
        """The stream's clock; if the device goes away, its continuation on time.monotonic(),
        so the player can still ease the face out before it reports ``failure``."""
        if self._failure is None:
            try:
                self._last_now = (float(self._stream.time), time.monotonic())
                return self._last_now[0]
            except Exception as exc:  # PortAudioError: the device went away mid-run
                self._failure = NsplayerError(
                    f"the audio device stopped ({exc}) — check it, or use --no-audio"
                )
        stream_time, when = self._last_now
        return stream_time + time.monotonic() - when

    @property
    def failure(self) -> NsplayerError | None:
        """Set when the clock fails, or when callbacks stop for SILENT_S after the warm-up
        (PortAudio's ALSA backend ends its callback thread when the sound server dies)."""
        if self._failure is None and not self._held:
            silent = time.monotonic() - self._heartbeat
            if silent > SILENT_S:
                self._failure = NsplayerError(
                    f"the audio device stopped playing ({silent:.1f} s without a callback) — "
                    "check it (is the sound server running?), or use --no-audio"
                )
        return self._failure

    def close(self) -> None:
        super().close()
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # the device may be gone already; closing is best-effort
            pass

    def _callback(self, outdata: np.ndarray, frames: int, timing, status) -> None:
        self._heartbeat = time.monotonic()
        if status:
            self.status_errors += 1
        current = float(timing.currentTime) or float(self._stream.time)
        if self._held:
            self._warm_up(current, frames)
        # Host APIs without DAC timestamps report 0: fall back to now + nominal latency.
        dac = float(timing.outputBufferDacTime) or current + self.latency
        self.measured_latency = dac - current
        self._consume(outdata, dac, bool(status) and status.output_underflow)

    def _warm_up(self, current: float, frames: int) -> None:
        """Release playback once callbacks come paced by the device, not in a burst."""
        self._callbacks += 1
        paced = self._last_callback is not None and (
            current - self._last_callback >= 0.5 * frames / self.sample_rate
        )
        self._last_callback = current
        if paced or self._callbacks > 50 or time.monotonic() - self._opened > 1.5:
            self._held = False


def open_sink(
    sample_rate: int,
    channels: int,
    *,
    no_audio: bool = False,
    device: str | int | None = None,
    buffer_ms: float = 100.0,
    underrun: str = "silence",
    capacity_s: float = 1.0,
    start_lead: float = 0.04,
    callback_s: float | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> Sink:
    """The device sink, or the null sink with one line on stderr when there is no device.

    ``callback_s`` sets the device callback's length (None: the host's choice, often
    shorter, for the lowest latency). An explicit ``device`` that cannot be opened is an
    error rather than a silent fallback.
    """
    common = {
        "buffer_ms": buffer_ms,
        "underrun": underrun,
        "capacity_s": capacity_s,
        "start_lead": start_lead,
    }
    if no_audio:
        return NullSink(sample_rate, channels, **common)
    try:
        return DeviceSink(sample_rate, channels, device=device, callback_s=callback_s, **common)
    except NsplayerError as exc:
        if device not in (None, ""):
            raise
        reason = str(exc).split(" — ")[0]
        report(
            f"nsplayer: {reason}; playing without sound on the null sink — "
            "list devices with `nsplayer devices` and pick one with --device"
        )
        return NullSink(sample_rate, channels, **common)
