"""The frame scheduler: when to send each frame, on the audio sink's clock.

Speech frame i describes the face at audio time i / fps, so it is due when sample
i * sr / fps is heard: ``sink.dac_time(...) + av_offset``. The device clock is the
master. The scheduler plans each slot and hands its packet to a pacer (``sending.py``)
``pacer.lead`` seconds before it is due; the pacer sends it on time.

When no speech frame is due (before the audio starts, in stdin gaps, after the end),
idle ticks keep packets flowing at exactly one per frame period, so the face never
freezes; speech frames lock back on to the audio clock as soon as it is known. A
frame late by more than one period is dropped and counted, never sent in a burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from nsplayer.audio.sinks import Sink
from nsplayer.sending import InlinePacer, ProcessPacer, SendStats

_REFRESH = 0.003  # re-read a speech frame's due time this long before handing it over


@dataclass(frozen=True)
class Slot:
    """The next packet to send: speech frame ``index`` (None = idle tick) at ``due``."""

    index: int | None
    due: float
    next_index: int | None  # the speech frame to ask for after this one
    not_before: float = -float("inf")  # half a period after the previous packet


class FrameScheduler:
    """Plans one packet per frame period, locked to the sink's DAC clock, and hands each
    to the pacer just before it is due.

    Use: ``slot = plan(next_speech_index)``, compute the frame, ``release(slot, packet)``.
    ``sleep`` is injectable so tests run on a fake clock shared with a NullSink.
    """

    def __init__(
        self,
        sink: Sink,
        fps: int,
        sample_rate: int,
        av_offset_ms: float = 0.0,
        *,
        pacer: InlinePacer | ProcessPacer,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sink = sink
        self.fps = fps
        self.period = 1.0 / fps
        self.sample_rate = sample_rate
        self.av_offset = av_offset_ms / 1000.0
        self.pacer = pacer
        self._skipped = 0  # speech frames planning passed over (too late)
        self._sleep = sleep
        self._last: float | None = None  # due time of the last planned slot
        self._last_release = -float("inf")  # when the last packet is to be sent

    @property
    def dropped(self) -> int:
        """Speech frames skipped by planning, plus packets the pacer found too late."""
        return self._skipped + self.pacer.dropped

    @property
    def stats(self) -> SendStats:
        return self.pacer.stats

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
            self._last = now + self.pacer.lead - self.period
        earliest = max(self._last_release + 0.5 * self.period, now)  # now: after a stall
        idle_due = max(self._last + self.period, earliest)
        while index is not None:
            due = self.due(index)
            if due is None:
                break
            if due > idle_due + 0.5 * self.period:
                steps = round((due - self._last) / self.period)
                idle_due = max(self._last + (due - self._last) / steps, earliest)
                break
            if earliest - due > self.period:
                self._skipped += 1
                index += 1
                continue
            return self._planned(Slot(index, due, index + 1, earliest))
        return self._planned(Slot(None, idle_due, index, earliest))

    def _planned(self, slot: Slot) -> Slot:
        self._last = slot.due
        return slot

    def release(self, slot: Slot, packet: bytes) -> None:
        """Wait until the slot is ``pacer.lead`` from due on the sink clock; hand it over.

        A speech frame's due time is read again ~3 ms before that, when the sink may have
        turned an estimate into an exact DAC time. The recorded due time is the frame's
        own, so a release held back by ``not_before`` counts as late.
        """
        due, fresh = slot.due, slot.index is None
        while True:
            left = max(due, slot.not_before) - self.pacer.lead - self.sink.now()
            if left > _REFRESH:
                self._sleep(left - _REFRESH)
            elif not fresh:
                fresh = True
                due = self.due(slot.index) or due  # type: ignore[arg-type]
            else:
                break
        self._last_release = max(due, slot.not_before)
        audio_time = 0.0 if slot.index is None else slot.index / self.fps
        self.pacer.send(packet, due, slot.index, audio_time)

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
