"""The engine on a NullSink driven by a fake clock: deterministic timing logic, real packets.

Performers speak from tracks whose frames are heard when the sink plays their samples; the
conductor sends them through an inline pacer to a real UDP receiver on loopback.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from conftest import SteppingClock

from livelink import FrameTime, read_csv
from livelink.names import EYE_BLINK_LEFT, N_VALUES
from nsplayer.animation.idle import IdleSettings
from nsplayer.audio.sinks import NullSink
from nsplayer.engine import Conductor, Look, Performer, Recording

SR = 16000
FPS = 60
P = 1.0 / FPS


class FakeClock(SteppingClock):
    """A stepping clock that can stall once: the next sleep past ``stall_at`` takes 5 periods."""

    stall_at: float | None = None

    def sleep(self, dt: float) -> None:
        super().sleep(dt)
        if self.stall_at is not None and self.t >= self.stall_at:
            self.t += 5 * P  # the process was descheduled for 5 frame periods
            self.stall_at = None


class SinkTrack:
    """Speech frames of the sink's samples from ``first`` on: frame i heard with sample
    first + i * SR / FPS; ``frames`` in all."""

    def __init__(self, sink: NullSink, frames: int, first: int = 0) -> None:
        self.sink, self.frames, self.first = sink, frames, first
        self.rows = np.zeros((frames, 61), np.float32)
        self.rows[:, 17] = np.linspace(0.1, 0.9, frames)  # JawOpen marks the frame

    def due(self, index: int) -> float | None:
        return self.sink.dac_time(self.first + round(index * SR / FPS))

    def row(self, index: int) -> np.ndarray | None:
        return self.rows[index]

    def done(self, index: int) -> bool:
        return index >= self.frames


@pytest.fixture
def make(capture):
    """A conductor on a fake clock whose inline pacer sends real packets to ``receiver``."""
    made = []

    def build(latency: float = 0.05, offset_ms: float = 0.0, **sink_kwargs):
        clock = FakeClock()
        sink = NullSink(SR, 1, clock=clock.now, latency=latency, capacity_s=10.0, **sink_kwargs)
        conductor = Conductor(
            sink.now,
            FPS,
            (capture.target,),
            av_offset_ms=offset_ms,
            detailed=True,
            sleep=clock.sleep,
            process=False,
        )
        made.append(conductor)
        return clock, sink, conductor

    yield build
    for conductor in made:
        conductor.close()


def audio(seconds: float) -> np.ndarray:
    return np.zeros((round(SR * seconds), 1), np.float32)


def speak(conductor: Conductor, performer: Performer, track: SinkTrack) -> None:
    performer.speak(track)
    conductor.run(lambda: not performer.speaking)


def sent(conductor: Conductor, performer: Performer):
    """(speech index or -1, due, sent) arrays of what the performer sent."""
    stats = conductor.outlet.stats(performer.stream)
    return np.asarray(stats.index), np.asarray(stats.due), np.asarray(stats.sent)


def test_idle_ticks_then_speech_locked_to_dac_time(make):
    _, sink, conductor = make()
    anna = conductor.add("anna")
    sink.write(audio(1.0))
    sink.end()
    speak(conductor, anna, SinkTrack(sink, FPS))
    index, due, when = sent(conductor, anna)
    assert index[0] == -1  # idle while the audio is not heard yet
    speech = index >= 0
    assert list(index[speech]) == list(range(FPS))
    for i, d in zip(index[speech], due[speech], strict=True):
        assert d == pytest.approx(sink.dac_time(round(i * SR / FPS)), abs=1e-9)
    err = when[speech] - due[speech]
    assert err.min() >= 0 and err.max() < 1e-4
    intervals = np.diff(when)
    assert intervals.min() > 0.74 * P and intervals.max() < 1.26 * P  # glided onto the audio
    assert conductor.outcome(anna).dropped == 0


def test_av_offset_shifts_due_times(make):
    _, sink, conductor = make(offset_ms=30.0)
    anna = conductor.add("anna")
    sink.write(audio(0.5))
    sink.end()
    speak(conductor, anna, SinkTrack(sink, 20))
    index, due, _ = sent(conductor, anna)
    for i, d in zip(index[index >= 0], due[index >= 0], strict=True):
        assert d == pytest.approx(sink.dac_time(round(i * SR / FPS)) + 0.030)


def test_stall_drops_late_frames_without_a_burst(make, capture):
    clock, sink, conductor = make()
    anna = conductor.add("anna")
    sink.write(audio(1.0))
    sink.end()
    track = SinkTrack(sink, FPS)
    clock.stall_at = track.due(0) + 20 * P  # while frame 20 waits for its time
    speak(conductor, anna, track)
    index, due, when = sent(conductor, anna)
    dropped = conductor.outcome(anna).dropped
    speech = [i for i in index if i >= 0]
    assert 3 <= dropped <= 6
    assert speech == sorted(set(speech))
    assert len(speech) + dropped == FPS
    assert np.diff(when).min() >= 0.5 * P - 1e-4  # no burst after the stall
    assert np.abs(when[-30:] - due[-30:]).max() < 1e-4  # back on the audio clock
    frames = [frame.time.frame for frame in capture.stop()]
    assert len(frames) == anna.sent - len(conductor.outlet.lost(anna.stream)) == len(when)
    assert np.all(np.diff(frames) == 1)  # the timecode stays consecutive across the drops


def test_gap_sends_idle_ticks_and_resumes_in_sync(make):
    clock, sink, conductor = make(underrun="silence")
    anna = conductor.add("anna")
    sink.write(audio(0.5))
    track = SinkTrack(sink, 60)
    anna.speak(track)
    conductor.run(lambda: anna.index >= 30)  # all of the first half second
    gap_start = clock.t
    conductor.run(lambda: clock.t >= gap_start + 0.3)  # producer silent for 300 ms
    assert anna.index == 30  # nothing to say in the gap: idle ticks only
    assert sink.underruns == 1
    sink.write(audio(0.5))
    sink.end()
    conductor.run(lambda: not anna.speaking)
    index, due, when = sent(conductor, anna)
    assert list(index[index >= 0]) == list(range(60))
    for i, d in zip(index[index >= 30], due[index >= 30], strict=True):
        assert d == pytest.approx(sink.dac_time(round(i * SR / FPS)), abs=1e-9)
    intervals = np.diff(when)
    assert intervals.min() > 0.74 * P and intervals.max() < 1.26 * P  # smooth in and out
    assert conductor.outcome(anna).dropped == 0


def test_no_speech_means_steady_idle_ticks(make):
    _, _, conductor = make()
    anna = conductor.add("anna")
    conductor.run(lambda: anna.sent >= 120)
    index, _, when = sent(conductor, anna)
    assert np.allclose(np.diff(when), P, atol=1e-4)
    assert (index >= 0).sum() == 0
    assert conductor.stats_report(anna)["summary"]["speech_frames"] == 0


def test_two_performers_share_one_clock_and_one_output(make, capture):
    """Two subjects speak from one sink (their audio at different places in it): each gets
    its own frames on its own audio's time, consecutive frame numbers, idle in between."""
    _, sink, conductor = make()
    anna, ben = conductor.add("anna"), conductor.add("ben")
    sink.write(audio(2.0))
    sink.end()
    anna.speak(SinkTrack(sink, 30))  # the first half second
    ben.speak(SinkTrack(sink, 30, first=SR))  # from 1 s on
    conductor.run(lambda: not anna.speaking and not ben.speaking)
    conductor.ease_out()
    for performer, first in ((anna, 0), (ben, SR)):
        index, due, when = sent(conductor, performer)
        assert list(index[index >= 0]) == list(range(30))
        for i, d in zip(index[index >= 0], due[index >= 0], strict=True):
            assert d == pytest.approx(sink.dac_time(first + round(i * SR / FPS)), abs=1e-9)
        assert np.abs(when - due)[index >= 0].max() < 1e-4
        assert np.diff(when).min() > 0.74 * P  # each subject at its own steady pace
    ben_index = sent(conductor, ben)[0]
    assert (ben_index[: np.argmax(ben_index >= 0)] == -1).sum() >= 50  # idle while anna spoke
    frames = defaultdict(list)
    jaw = defaultdict(list)
    devices = defaultdict(set)
    for frame in capture.stop():
        devices[frame.subject].add(frame.device_id)
        frames[frame.subject].append(frame.time.frame)
        jaw[frame.subject].append(float(frame.values[17]))
    assert set(frames) == {"anna", "ben"}
    for subject in ("anna", "ben"):
        assert np.all(np.diff(frames[subject]) == 1)
        assert max(jaw[subject]) > 0.5 and jaw[subject][-1] < 0.05  # spoke, then eased out
    assert len(devices["anna"]) == len(devices["ben"]) == 1  # UE keys subjects by device id
    assert devices["anna"] != devices["ben"]


def test_silence_eases_the_mouth_to_rest_and_the_stale_slot_is_not_spoken(make):
    clock, sink, conductor = make()
    anna = conductor.add("anna")
    sink.write(audio(2.0))
    sink.end()
    track = SinkTrack(sink, 120)
    anna.speak(track)
    conductor.run(lambda: anna.index >= 60)
    anna.silence()
    stop = clock.t
    conductor.run(lambda: anna.animator.mouth_weight == 0.0)
    assert clock.t - stop <= 0.15  # the mouth at rest within 150 ms
    assert not anna.speaking
    index = sent(conductor, anna)[0]
    assert index.max() < 62


def test_recording_spills_blocks_and_writes_every_kept_frame_in_order(tmp_path):
    """A long recording holds one block in memory; the CSV has each frame not lost, once,
    in order, across block boundaries, stamped on from the first frame's time."""
    path = tmp_path / "take.csv"
    rec = Recording(path)
    n = 2 * Recording._BLOCK + 123
    rows = np.random.default_rng(3).random((n, N_VALUES), dtype=np.float32)
    start = FrameTime(3600 * 60 + 5, 0.0, 60)
    for i, row in enumerate(rows):
        rec.add(row, start if i == 0 else FrameTime(0, 0.0, 60))
    lost = [0, Recording._BLOCK - 1, Recording._BLOCK, n - 1]
    rec.write(lost, 60)
    take = read_csv(path)
    np.testing.assert_array_equal(take.values, np.delete(rows, lost, axis=0))
    assert take.frames[0] == start.frame
    assert np.all(np.diff(take.frames) == 1)


def test_ease_out_does_not_leave_an_eye_shut(make, capture):
    """UE holds the last frame it gets: a stop inside a blink ends after the blink."""
    _, _, conductor = make()
    anna = conductor.add("anna", Look(idle=IdleSettings(blink_rate=60.0), seed=3))
    conductor.run(lambda: anna.sent >= 20 and not anna.animator.eyes_open)
    conductor.ease_out()
    blinks = [float(f.values[EYE_BLINK_LEFT]) for f in capture.stop()]
    assert max(blinks) > 0.5  # it stopped inside a blink
    assert blinks[-1] < 0.05
