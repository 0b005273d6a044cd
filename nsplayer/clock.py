"""The frame scheduler: when to send each frame, on the audio sink's clock.

Speech frame i describes the face at audio time i / fps, so it is due when sample
i * sr / fps is heard: ``sink.dac_time(...) + av_offset``. The device clock is the
master; sleeps only serve to wake up ~3 ms early, then a short fine wait (sleeps that
halve the rest, a spin for the last few hundred microseconds) releases the frame on
time without a busy core.

When no speech frame is due (before the audio starts, in stdin gaps, after the end),
idle ticks keep packets flowing at exactly one per frame period, so the face never
freezes; speech frames lock back on to the audio clock as soon as it is known. A
frame late by more than one period is dropped and counted, never sent in a burst.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nsplayer.audio.sinks import Sink

_COARSE_MARGIN = 0.003  # wake this long before the due time, then wait finely
_SPIN = 0.0003  # below this, spin instead of sleeping (sleep overshoots ~50-100 us)
_AFTER_RELEASE = 0.001  # other threads' heavy work resumes this long after a release


@dataclass(frozen=True)
class Slot:
    """The next packet to send: speech frame ``index`` (None = idle tick) at ``due``."""

    index: int | None
    due: float
    next_index: int | None  # the speech frame to ask for after this one
    not_before: float = -float("inf")  # half a period after the previous packet


class SendStats:
    """Per sent packet: speech frame index (-1 idle), audio time, due and send time."""

    def __init__(self) -> None:
        self.index = array("q")
        self.audio_time = array("d")
        self.due = array("d")
        self.sent = array("d")

    def add(self, index: int | None, audio_time: float, due: float, sent: float) -> None:
        self.index.append(-1 if index is None else index)
        self.audio_time.append(audio_time)
        self.due.append(due)
        self.sent.append(sent)

    def summary(self) -> dict[str, float | int | None]:
        """Send error of speech frames (sent - due) and the spread of send intervals, in ms."""
        speech = np.frombuffer(self.index, np.int64) >= 0
        error = (np.asarray(self.sent) - np.asarray(self.due))[speech] * 1000.0
        intervals = np.diff(np.asarray(self.sent)) * 1000.0
        return {
            "frames_sent": len(self.index),
            "speech_frames": int(speech.sum()),
            "error_ms_p50": _pct(np.abs(error), 50),
            "error_ms_p99": _pct(np.abs(error), 99),
            "error_ms_max": _pct(np.abs(error), 100),
            "error_ms_mean": float(error.mean()) if len(error) else None,
            "interval_ms_p50": _pct(intervals, 50),
            "interval_ms_min": _pct(intervals, 0),
            "interval_ms_max": _pct(intervals, 100),
        }

    def frames(self) -> list[dict[str, float | int | None]]:
        return [
            {
                "index": None if i < 0 else i,
                "audio_time": None if i < 0 else a,
                "due": d,
                "sent": s,
            }
            for i, a, d, s in zip(self.index, self.audio_time, self.due, self.sent, strict=True)
        ]


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


class FrameScheduler:
    """Plans and releases one packet per frame period, locked to the sink's DAC clock.

    Use: ``slot = plan(next_speech_index)``, compute the frame, ``release(slot)``, send.
    ``sleep`` is injectable so tests run on a fake clock shared with a NullSink.
    """

    def __init__(
        self,
        sink: Sink,
        fps: int,
        sample_rate: int,
        av_offset_ms: float = 0.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sink = sink
        self.fps = fps
        self.period = 1.0 / fps
        self.sample_rate = sample_rate
        self.av_offset = av_offset_ms / 1000.0
        self.dropped = 0
        self.stats = SendStats()
        self._sleep = sleep
        self._last: float | None = None  # due time of the last planned slot
        self._last_sent = -float("inf")
        self._release_at = 0.0  # time.monotonic() of the next planned release

    def due(self, index: int) -> float | None:
        """When speech frame ``index`` should be sent, or None while its audio is unknown."""
        heard = self.sink.dac_time(round(index * self.sample_rate / self.fps))
        return None if heard is None else heard + self.av_offset

    def plan(self, index: int | None) -> Slot:
        """The next slot: speech frame ``index`` (or a later one, if late) or an idle tick.

        A speech frame is taken if it is due within 1.5 periods of the last slot. Packets
        go out at least half a period apart (never a burst), so a frame is released at its
        due time or that bound; one that would then be more than a period late is dropped.
        Once the next speech frame's time is known, idle ticks glide onto its phase
        (intervals within a quarter period of nominal instead of a jump of up to half).
        """
        now = self.sink.now()
        if self._last is None:
            self._last = now - self.period
        earliest = self._last_sent + 0.5 * self.period
        idle_due = max(self._last + self.period, earliest)
        while index is not None:
            due = self.due(index)
            if due is None:
                break
            if due > idle_due + 0.5 * self.period:
                steps = round((due - self._last) / self.period)
                idle_due = max(self._last + (due - self._last) / steps, earliest)
                break
            if max(now, earliest) - due > self.period:
                self.dropped += 1
                index += 1
                continue
            return self._planned(Slot(index, due, index + 1, earliest))
        return self._planned(Slot(None, idle_due, index))

    def _planned(self, slot: Slot) -> Slot:
        self._last = slot.due
        self._release_at = time.monotonic() + (slot.due - self.sink.now())
        return slot

    def wait_for_quiet(self, work: float) -> None:
        """Called by another thread before ``work`` seconds of GIL-bound work (the model):
        wait until that work cannot overlap the next release.

        CPython runs one thread at a time; a model step that holds the interpreter when a
        frame is due makes the frame late by up to its length, so it yields to the release.
        """
        now, release = time.monotonic(), self._release_at
        if release - _COARSE_MARGIN - work < now < release + _AFTER_RELEASE:
            time.sleep(release + _AFTER_RELEASE - now)

    def release(self, slot: Slot) -> float:
        """Wait until the slot is due on the sink clock; record and return the release time.

        A speech frame's due time is read again on waking (~3 ms before it), when the
        sink may have turned an estimate into an exact DAC time. The recorded due time is
        the frame's own, so a release held back by ``not_before`` counts as late.
        """
        due, fresh = slot.due, slot.index is None
        while True:
            left = max(due, slot.not_before) - self.sink.now()
            if left <= 0:
                break
            if left > _COARSE_MARGIN + _SPIN:
                self._sleep(left - _COARSE_MARGIN)
            elif not fresh:
                fresh = True
                due = self.due(slot.index) or due  # type: ignore[arg-type]
            else:  # halve the rest: a late wake-up costs little; spin (yielding) at the end
                self._sleep(left / 2 if left > _SPIN else 0.0)
        sent = self._last_sent = self.sink.now()
        audio_time = 0.0 if slot.index is None else slot.index / self.fps
        self.stats.add(slot.index, audio_time, due, sent)
        return sent

    def report(self) -> dict[str, object]:
        """The --stats JSON: sink, latency, drops, summary and every sent packet."""
        return {
            "sink": self.sink.kind,
            "output_latency_s": self.sink.latency,
            "measured_latency_s": self.sink.measured_latency,
            "fps": self.fps,
            "av_offset_ms": self.av_offset * 1000.0,
            "dropped": self.dropped,
            "underruns": self.sink.underruns,
            "device_status_errors": self.sink.status_errors,
            "summary": self.stats.summary(),
            "frames": self.stats.frames(),
        }
