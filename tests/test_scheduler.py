"""FrameScheduler on a NullSink driven by a fake clock: deterministic timing logic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from livelink import FaceFrame, FrameTime, LiveLinkReceiver, LiveLinkSender, encode
from nsplayer.audio.sinks import NullSink
from nsplayer.clock import FrameScheduler
from nsplayer.sending import InlinePacer

SR = 16000
FPS = 60
P = 1.0 / FPS


class FakeClock:
    """Time moves when someone sleeps, and by 1 us per reading (so spinning ends)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        self.t += 1e-6
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(dt, 1e-5)


@pytest.fixture
def receiver():
    with LiveLinkReceiver(port=0, timeout=0.5) as rx:
        yield rx


@pytest.fixture
def make(receiver):
    """A scheduler on a fake clock whose inline pacer sends real packets to ``receiver``."""
    senders = []

    def build(latency: float = 0.05, offset_ms: float = 0.0, **sink_kwargs):
        clock = FakeClock()
        sink = NullSink(SR, 1, clock=clock.now, latency=latency, capacity_s=10.0, **sink_kwargs)
        sender = LiveLinkSender([f"127.0.0.1:{receiver.port}"])
        senders.append(sender)
        pacer = InlinePacer(sender, clock.now, FPS, clock.sleep)
        return clock, sink, FrameScheduler(sink, FPS, SR, offset_ms, pacer=pacer, sleep=clock.sleep)

    yield build
    for sender in senders:
        sender.close()


_frames = itertools.count(1000)


def release(sched: FrameScheduler, slot) -> None:
    """Hand over a real packet; frame numbers count up by one per packet, like the player's."""
    time = FrameTime(next(_frames), 0.0, FPS, 1)
    sched.release(slot, encode(FaceFrame(np.zeros(61, np.float32), "s", "d", time)))


def run(sched: FrameScheduler, clock: FakeClock, until_index: int, stall=None, limit=2000):
    """Plan/release until speech frame ``until_index`` is passed; returns the slots."""
    slots, index = [], 0
    for _ in range(limit):
        slot = sched.plan(index)
        if stall:
            stall(slot, clock)
        release(sched, slot)
        slots.append(slot)
        index = slot.next_index
        if index >= until_index:
            return slots
    raise AssertionError("speech never finished")


def audio(seconds: float) -> np.ndarray:
    return np.zeros((round(SR * seconds), 1), np.float32)


def test_idle_ticks_then_speech_locked_to_dac_time(make):
    clock, sink, sched = make()
    sink.write(audio(1.0))
    sink.end()
    slots = run(sched, clock, FPS)
    speech = [s for s in slots if s.index is not None]
    assert [s.index for s in speech] == list(range(FPS))
    assert slots[0].index is None  # idle while the audio is not heard yet
    for s in speech:
        assert s.due == pytest.approx(sink.dac_time(round(s.index * SR / FPS)), abs=1e-9)
    err = np.asarray(sched.stats.sent) - np.asarray(sched.stats.due)
    assert err.min() >= 0 and err.max() < 1e-4
    intervals = np.diff(sched.stats.sent)
    assert intervals.min() > 0.74 * P and intervals.max() < 1.26 * P  # glided onto the audio
    assert sched.dropped == 0


def test_av_offset_shifts_due_times(make):
    clock, sink, sched = make(offset_ms=30.0)
    sink.write(audio(0.5))
    sink.end()
    speech = [s for s in run(sched, clock, 20) if s.index is not None]
    for s in speech:
        assert s.due == pytest.approx(sink.dac_time(round(s.index * SR / FPS)) + 0.030)


def test_stall_drops_late_frames_without_a_burst(make, receiver):
    clock, sink, sched = make()
    sink.write(audio(1.0))
    sink.end()

    def stall(slot, clock):
        if slot.index == 20:
            clock.t += 5 * P  # the process was descheduled for 5 frame periods

    slots = run(sched, clock, FPS, stall=stall)
    sent_speech = [i for i in sched.stats.index if i >= 0]
    assert 3 <= sched.dropped <= 6
    assert sent_speech == sorted(set(sent_speech))
    assert len(sent_speech) + sched.dropped == FPS
    intervals = np.diff(sched.stats.sent)
    assert intervals.min() >= 0.5 * P - 1e-4  # no burst after the stall
    later = np.asarray(sched.stats.sent)[-30:] - np.asarray(sched.stats.due)[-30:]
    assert np.abs(later).max() < 1e-4  # back on the audio clock, no permanent offset
    frames = [frame.time.frame for frame, _, _ in receiver]
    assert len(frames) == len(slots) - sched.pacer.dropped == len(sched.stats.sent)
    assert np.all(np.diff(frames) == 1)  # the timecode stays consecutive across the drops


def test_gap_sends_idle_ticks_and_resumes_in_sync(make):
    clock, sink, sched = make(underrun="silence")
    sink.write(audio(0.5))
    index, slots = 0, []
    while index < 30:  # all of the first half second
        slot = sched.plan(index)
        release(sched, slot)
        slots.append(slot)
        index = slot.next_index
    gap_start = clock.t
    while clock.t < gap_start + 0.3:  # producer silent for 300 ms
        slot = sched.plan(index)
        assert slot.index is None
        release(sched, slot)
        slots.append(slot)
    assert sink.underruns == 1
    sink.write(audio(0.5))
    sink.end()
    resumed = run_from(sched, index, 60)
    assert [s.index for s in resumed if s.index is not None] == list(range(30, 60))
    for s in resumed:
        if s.index is not None:
            assert s.due == pytest.approx(sink.dac_time(round(s.index * SR / FPS)), abs=1e-9)
    intervals = np.diff(sched.stats.sent)
    assert intervals.min() > 0.74 * P and intervals.max() < 1.26 * P  # smooth in and out
    assert sched.dropped == 0


def run_from(sched: FrameScheduler, index: int, until: int):
    slots = []
    while index < until:
        slot = sched.plan(index)
        release(sched, slot)
        slots.append(slot)
        index = slot.next_index
    return slots


def test_no_speech_means_steady_idle_ticks(make):
    _, _, sched = make()
    for _ in range(120):
        release(sched, sched.plan(None))
    intervals = np.diff(sched.stats.sent)
    assert np.allclose(intervals, P, atol=1e-4)
    assert sched.report()["summary"]["speech_frames"] == 0
