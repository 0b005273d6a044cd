"""Sinks: the ring, the DAC-time mapping, underruns; the device sink on PulseAudio's null sink."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import CaptureSink, ManualClock, needs_pulse

from nsplayer.audio.devices import resolve_device
from nsplayer.audio.resample import Resampler
from nsplayer.audio.sinks import NullSink, open_sink
from nsplayer.errors import NsplayerError

SR = 8000


def ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n, dtype=np.float32) / 1e5)[:, None]


def test_plays_in_order_through_ring_wraparound_and_maps_dac_times():
    clock = ManualClock(50.0)
    sink = CaptureSink(SR, clock=clock.now, latency=0.1, buffer_ms=0, capacity_s=0.08)
    written = 0
    for _ in range(20):  # 20 x 30 ms through an 80 ms ring
        sink.write(ramp(written, 240))
        written += 240
        clock.t += 0.03
    sink.end()
    clock.t += 0.1
    first = sink.dac_time(0)  # any call lets the null sink run its due callbacks
    played = np.concatenate(sink.played)
    assert np.array_equal(played[played > 0], ramp(1, written - 1)[:, 0])
    for i in (1, 500, 4799):
        assert sink.dac_time(i) == pytest.approx(first + i / SR)
    assert sink.underruns == 0


def test_an_adopted_source_format_is_converted_and_heard_on_time():
    """A sink opened for a guessed format (stereo, 16 kHz) takes mono 8 kHz blocks once it
    adopts them: the sound is resampled, copied to both channels, and source sample i is
    heard at dac_time(i)."""
    clock = ManualClock(50.0)
    sink = CaptureSink(16000, 2, clock=clock.now, latency=0.05, buffer_ms=0, capacity_s=2.0)
    sink.adopt(8000, 1)
    tone = _tone(4000, 8000, 200.0) * 0.5
    for i in range(0, 4000, 160):  # 20 ms blocks
        sink.write(tone[i : i + 160])
    sink.end()
    clock.t += 1.0
    assert sink.written == 4000 and sink.underruns == 0
    for i in range(400, 3600, 250):
        assert sink.at(sink.dac_time(i)) == pytest.approx(tone[i, 0], abs=0.01)
    with pytest.raises(ValueError):
        sink.adopt(22050, 1)  # samples are queued at the adopted rate already


def test_jitter_buffer_holds_playback_until_filled_or_ended():
    clock = ManualClock(50.0)
    sink = NullSink(SR, clock=clock.now, buffer_ms=100)
    sink.write(np.zeros((400, 1), np.float32))  # 50 ms < 100 ms
    clock.t += 0.5
    assert sink.dac_time(0) is None  # nobody knows when it will be heard
    sink.end()
    assert sink.dac_time(0) is not None
    clock.t += 0.1
    assert sink.dac_time(399) < clock.t + sink.latency


def test_underrun_silence_resumes_at_once_and_keeps_mapping_exact():
    clock = ManualClock(50.0)
    sink = NullSink(SR, clock=clock.now, latency=0.0, buffer_ms=50, underrun="silence")
    sink.write(np.zeros((800, 1), np.float32))  # 100 ms
    clock.t += 0.3  # producer stalls: 200 ms of silence
    assert sink.dac_time(0) is not None and sink.underruns == 1
    resumed_at = clock.t
    sink.write(np.zeros((80, 1), np.float32))  # 10 ms, less than the buffer
    announced = sink.dac_time(800)  # the restart is announced start_lead ahead...
    clock.t += 0.1
    dac = sink.dac_time(800)
    assert dac == pytest.approx(announced, abs=1e-9)  # ...and happens exactly then
    assert resumed_at + sink.start_lead <= dac <= resumed_at + sink.start_lead + 0.011
    assert sink.dac_time(799) < resumed_at - 0.15  # before the gap: unchanged


def test_underrun_pause_waits_for_the_buffer_again():
    clock = ManualClock(50.0)
    sink = NullSink(SR, clock=clock.now, latency=0.0, buffer_ms=50, underrun="pause")
    sink.write(np.zeros((800, 1), np.float32))
    clock.t += 0.3
    assert sink.dac_time(0) is not None and sink.underruns == 1
    sink.write(np.zeros((80, 1), np.float32))
    clock.t += 0.05
    assert sink.dac_time(800) is None  # 10 ms queued < 50 ms buffer: still paused
    sink.write(np.zeros((400, 1), np.float32))
    clock.t += 0.05
    assert sink.dac_time(800) is not None


def test_write_blocks_when_full_and_close_releases_it():
    sink = NullSink(SR, buffer_ms=10, capacity_s=0.02, clock=lambda: 0.0)  # time stands still
    result = []
    writer = threading.Thread(target=lambda: result.append(sink.write(np.zeros((4000, 1)))))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive()  # backpressure: the ring is full and nothing plays
    sink.close()
    writer.join(2)
    assert result == [False]


def test_bad_underrun_mode():
    with pytest.raises(NsplayerError, match="--underrun"):
        NullSink(SR, underrun="skip")


def _tone(n: int, rate: int, hz: float) -> np.ndarray:
    return np.sin(np.arange(n) * 2 * np.pi * hz / rate).astype(np.float32)[:, None]


def _flushed(r: Resampler, blocks: list[np.ndarray]) -> np.ndarray:
    out = [r.process(b) for b in blocks]
    return np.concatenate([*out, r.process(np.zeros((0, 1), np.float32), last=True)])


def test_resampler_streams_like_one_shot_and_keeps_a_tone_clean():
    x = _tone(44100, 44100, 441.0)
    whole = _flushed(Resampler(44100, 48000), [x])
    parts = _flushed(Resampler(44100, 48000), [x[i : i + 137] for i in range(0, len(x), 137)])
    assert np.allclose(parts, whole, atol=1e-6)  # block size never changes the sound
    assert len(whole) == 48000
    reference = _tone(48000, 48000, 441.0)
    assert np.abs(whole[100:-100] - reference[100:-100]).max() < 1e-3


def test_resampler_does_not_alias_like_linear_interpolation():
    """A 10 kHz tone from 24 kHz to 48 kHz: linear interpolation leaves an image at 14 kHz
    about -20 dB down; the converter's filter keeps it below -60 dB."""
    out = _flushed(Resampler(24000, 48000), [_tone(24000, 24000, 10000.0)])[2000:-2000, 0]
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / 48000)
    tone = spectrum[np.abs(freqs - 10000) < 50].max()
    image = spectrum[np.abs(freqs - 14000) < 50].max()
    assert 20 * np.log10(image / tone) < -60


def wait_played(sink, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not sink.played():
        assert time.monotonic() < deadline, "the sink never played its samples out"
        time.sleep(0.005)


@needs_pulse
def test_device_sink_on_pulseaudio_null_sink():
    sink = open_sink(22050, 1, device="pulse", buffer_ms=20)
    assert sink.kind == "device"
    try:
        opened = sink.now()
        sink.write(np.zeros((4410, 1), np.float32))  # 200 ms
        sink.end()
        wait_played(sink)
        first, last = sink.dac_time(0), sink.dac_time(4409)
        assert opened < first < opened + 5  # same clock as now(), not monotonic
        assert last - first == pytest.approx(4409 / 22050, abs=0.02)
        assert sink.now() >= last - 0.05
    finally:
        sink.close()


@needs_pulse
def test_resolve_device_by_name_and_index():
    index = resolve_device("pulse")
    assert resolve_device(index) == index == resolve_device(str(index))
    with pytest.raises(NsplayerError, match="nsplayer devices"):
        resolve_device("no such device 42")
    with pytest.raises(NsplayerError, match="nsplayer devices"):
        resolve_device(999)


def test_null_sink_clock_is_monotonic_by_default():
    sink = NullSink(SR)
    assert abs(sink.now() - time.monotonic()) < 1.0


@needs_pulse
def test_device_sink_resamples_a_rate_the_device_refuses():
    sink = open_sink(400_000, 1, device="pulse", buffer_ms=20)  # PortAudio refuses 400 kHz
    try:
        assert sink.sample_rate != 400_000 and sink.kind == "device"
        sink.write(np.zeros((80_000, 1), np.float32))  # 200 ms at the source rate
        sink.end()
        wait_played(sink)
        assert abs(sink.written - 80_000) <= 10  # counted in source samples
        span = sink.dac_time(79_999) - sink.dac_time(0)
        assert span == pytest.approx(0.2, abs=0.02)
    finally:
        sink.close()


def test_gate_holds_queued_audio_until_opened():
    clock = ManualClock(50.0)
    sink = NullSink(SR, clock=clock.now, buffer_ms=10)
    sink.gate(True)  # e.g. the model's first frames are not ready yet
    sink.write(np.zeros((800, 1), np.float32))
    clock.t += 1.0
    assert sink.dac_time(0) is None and sink.consumed == 0
    sink.gate(False)
    announced = sink.dac_time(0)
    clock.t += 0.2
    assert sink.dac_time(0) == pytest.approx(announced) and sink.consumed == 800


def test_jittery_dac_times_are_smoothed_and_real_jumps_taken_whole():
    clock = ManualClock(50.0)  # stands still: the callbacks below are driven by hand
    sink = NullSink(SR, clock=clock.now, buffer_ms=0, capacity_s=10.0, start_lead=0.0)
    sink.write(np.zeros((SR * 4, 1), np.float32))
    out = np.zeros((80, 1), np.float32)  # 10 ms buffers
    jitter = np.random.default_rng(1).uniform(-0.002, 0.002, 300)
    for k in range(300):
        jump = 0.05 if k >= 200 else 0.0  # a real 50 ms stall after 2 s
        sink._consume(out, 100.0 + k * 0.01 + jump + jitter[k])
    for k in range(50, 200, 10):  # settled: within a fraction of the +-2 ms jitter
        assert abs(sink.dac_time(k * 80) - (100.0 + k * 0.01)) < 0.0008
    assert sink.dac_time(250 * 80) == pytest.approx(100.0 + 2.5 + 0.05, abs=0.0015)


@pytest.mark.parametrize(("latency", "heard_after"), [(0.05, 0.05), (0.01, 0.04), (0.0, 0.04)])
def test_a_start_is_announced_start_lead_ahead_counting_the_output_latency(latency, heard_after):
    """A device whose latency already exceeds start_lead starts at once; a faster one waits
    for the rest, in whole callbacks (10 ms here)."""
    clock = ManualClock(50.0)
    sink = NullSink(SR, clock=clock.now, latency=latency, buffer_ms=0, start_lead=0.04)
    sink.write(np.zeros((800, 1), np.float32))
    sink.end()
    clock.t += 0.01  # the virtual callback at 50.01 runs and announces the start
    assert sink.dac_time(0) == pytest.approx(50.01 + heard_after)


def test_a_device_underflow_mid_stream_is_an_underrun_counted_once():
    """The device's own output_underflow flag (its callback came late) is a gap heard, like
    the ring running dry; both in one callback are one gap; before playback or after the end
    it is silence that nobody hears."""
    clock = ManualClock(50.0)  # stands still: the callbacks below are driven by hand
    sink = NullSink(SR, clock=clock.now, buffer_ms=0, start_lead=0.0, underrun="pause")
    out = np.zeros((80, 1), np.float32)
    sink._consume(out, 1.0, underflow=True)  # nothing plays yet
    sink.write(np.zeros((200, 1), np.float32))
    sink._consume(out, 1.01)
    sink._consume(out, 1.02, underflow=True)  # late, while playing
    assert sink.underruns == 1
    assert sink.dac_time(160) is not None  # a late device is no reason to pause
    sink._consume(out, 1.03, underflow=True)  # late and the ring ran dry: one gap
    assert sink.underruns == 2
    sink.write(np.zeros((80, 1), np.float32))
    sink.end()
    sink._consume(out, 1.04)
    sink._consume(out, 1.05, underflow=True)  # after the end: nothing left to hear
    assert sink.underruns == 2
