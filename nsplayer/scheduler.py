"""The frame scheduler: when to send each of one performer's frames, on the engine's clock.

Speech frame i describes the face at audio time i / fps, so it is due when the track says
its audio is heard (for a sink: ``sink.dac_time(i * sr / fps)``), plus ``--av-offset``.
The audio device clock is the master. The conductor hands each planned packet to the
pacer ``lead`` seconds before it is due; the pacer sends it on time.

When no speech frame is due (before the audio starts, in stdin gaps, after the end),
idle ticks keep packets flowing at exactly one per frame period, so the face never
freezes; speech frames lock back on to the audio clock as soon as it is known. A
frame late by more than one period is dropped and counted, never sent in a burst.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

REFRESH_S = 0.003  # re-read a speech frame's due time this long before handing it over


class Timeline(Protocol):
    """When speech frame ``index`` is heard on the engine's clock, or None while unknown."""

    def due(self, index: int) -> float | None: ...


@dataclass(frozen=True)
class Slot:
    """The next packet to send: speech frame ``index`` (None = idle tick) at ``due``."""

    index: int | None
    due: float
    next_index: int | None  # the speech frame to ask for after this one
    not_before: float = -float("inf")  # half a period after the previous packet

    @property
    def at(self) -> float:
        """When the packet is to be sent."""
        return max(self.due, self.not_before)


class FrameScheduler:
    """Plans one packet per frame period for one performer, locked to its timeline.

    Use: ``slot = plan(index, timeline)``; ``handed(slot)`` once its packet went to the
    pacer. ``clock`` is the engine's (a sink's ``now``, or time.monotonic). ``patience``:
    frames computed as input arrives (live) come about a period apart with some jitter;
    waiting 1.5 periods for the next one keeps idle ticks from slipping in between.
    """

    def __init__(
        self, clock: Callable[[], float], fps: int, av_offset_ms: float = 0.0, lead: float = 0.0
    ) -> None:
        self.clock = clock
        self.fps = fps
        self.period = 1.0 / fps
        self.av_offset = av_offset_ms / 1000.0
        self.lead = lead
        self.skipped = 0  # speech frames planning passed over (too late)
        self.patience = 1.0  # periods to wait for the next speech frame before an idle tick
        self._speaking = False  # the last packet handed over was a speech frame
        self._last: float | None = None  # due time of the last planned slot
        self._last_release = -float("inf")  # when the last packet is to be sent

    def due(self, timeline: Timeline | None, index: int) -> float | None:
        """When speech frame ``index`` should be sent, or None while its audio is unknown."""
        heard = None if timeline is None else timeline.due(index)
        return None if heard is None else heard + self.av_offset

    def plan(self, index: int | None, timeline: Timeline | None) -> Slot:
        """The next slot: speech frame ``index`` (or a later one, if late) or an idle tick.

        A speech frame is taken if it is due within 1.5 periods of the last slot. Packets
        go out at least half a period apart (never a burst), so a frame is released at its
        due time or that bound; one that would then be more than a period late is dropped.
        Once the next speech frame's time is known, idle ticks glide onto its phase
        (intervals within a quarter period of nominal instead of a jump of up to half).
        """
        now = self.clock()
        if self._last is None:
            self._last = now + self.lead - self.period
        earliest = max(self._last_release + 0.5 * self.period, now)  # now: after a stall
        wait = self.patience if self._speaking else 1.0
        idle_due = max(self._last + wait * self.period, earliest)
        while index is not None:
            due = self.due(timeline, index)
            if due is None:
                break
            if due > idle_due + 0.5 * self.period:
                steps = round((due - self._last) / self.period)
                idle_due = max(self._last + (due - self._last) / steps, earliest)
                break
            if earliest - due > self.period:
                self.skipped += 1
                index += 1
                continue
            return Slot(index, due, index + 1, earliest)
        return Slot(None, idle_due, index, earliest)

    def handed(self, slot: Slot) -> None:
        """The slot's packet went to the pacer: the next one follows it. (A planned slot
        that is never handed over, e.g. an idle tick replanned because speech arrived,
        leaves no trace.)"""
        self._last = slot.due
        self._last_release = slot.at
        self._speaking = slot.index is not None
