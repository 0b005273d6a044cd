"""Mixer: voices summed into one sink, each voice's samples mapped to when they are heard."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import CaptureSink, ManualClock

from nsplayer.audio.mixer import Mixer
from nsplayer.audio.sinks import NullSink

SR = 8000


def setup(latency: float = 0.0) -> tuple[ManualClock, CaptureSink, Mixer]:
    clock = ManualClock()
    sink = CaptureSink(SR, clock=clock.now, latency=latency, buffer_ms=5, block=40)
    return clock, sink, Mixer(sink, block_s=0.01, lead_s=0.03)


def run(clock: ManualClock, mixer: Mixer, seconds: float) -> None:
    for _ in range(round(seconds / 0.005)):
        clock.t += 0.005
        while mixer.step():
            pass


def clicks(n: int, every: int, value: float) -> np.ndarray:
    pcm = np.zeros(n, np.float32)
    pcm[::every] = value
    return pcm


def test_each_voice_sample_is_heard_at_its_dac_time():
    clock, sink, mixer = setup(latency=0.05)
    run(clock, mixer, 0.1)
    anna = mixer.voice(SR, cushion_s=0.06)
    anna.push(clicks(1600, 100, 0.5))
    run(clock, mixer, 0.037)
    bob = mixer.voice(SR, cushion_s=0.06)
    bob.push(clicks(1600, 100, -0.25) * (np.arange(1600) % 100 == 0))
    run(clock, mixer, 0.5)
    for voice, value in ((anna, 0.5), (bob, -0.25)):
        for i in (0, 100, 800, 1500):
            assert sink.at(voice.dac_time(i)) == pytest.approx(value)
    assert anna.dac_time(1) is not None and sink.at(anna.dac_time(1)) == 0.0


def test_a_voice_starts_a_cushion_after_its_first_audio_and_is_done_when_played():
    clock, _, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(SR, cushion_s=0.08)
    pushed = clock.t
    voice.push(np.full(800, 0.1, np.float32))
    assert voice.dac_time(0) == pytest.approx(pushed + 0.08)  # planned before it is mixed
    voice.end()
    run(clock, mixer, 0.3)
    assert voice.dac_time(0) == pytest.approx(pushed + 0.08, abs=1 / SR)
    assert voice.done and voice.heard() == 800 and voice.underruns == 0
    assert voice.last_heard() == pytest.approx(pushed + 0.08 + 799 / SR, abs=1 / SR)


def test_underrun_stops_the_timeline_and_resumes_after_a_cushion():
    clock, sink, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(SR, cushion_s=0.05)
    voice.push(clicks(800, 200, 0.5))
    run(clock, mixer, 0.25)
    assert voice.underrun and voice.underruns == 1
    assert voice.dac_time(900) is None  # not received: nobody knows when
    resumed = clock.t
    voice.push(clicks(800, 200, 0.5))
    assert voice.dac_time(900) == pytest.approx(resumed + 0.05 + 100 / SR)  # a cushion later
    voice.end()
    run(clock, mixer, 0.3)
    assert voice.done and voice.underruns == 1
    assert voice.dac_time(800) == pytest.approx(resumed + 0.05, abs=1 / SR)
    for i in (0, 600, 800, 1000, 1400):
        assert sink.at(voice.dac_time(i)) == pytest.approx(0.5)


def test_fade_ramps_to_silence_without_a_click_and_says_each_sample_s_gain():
    clock, sink, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(SR, cushion_s=0.05)
    voice.push(np.full(SR, 0.8, np.float32))
    run(clock, mixer, 0.3)
    assert voice.gain(0) == 1.0 and voice.fade_end() is None
    heard = voice.fade(0.1)
    assert heard == pytest.approx((clock.t - voice.dac_time(0)) * SR, abs=2)
    run(clock, mixer, 0.3)
    assert voice.done
    out = np.concatenate(sink.played)
    out = out[np.argmax(out > 0) :]  # from the start of the voice (itself a step)
    assert np.max(np.abs(np.diff(out))) < 0.8 / (0.1 * SR) + 1e-6  # a ramp, never a step...
    assert out[-1] == 0.0 and np.count_nonzero(out) < (0.3 + 0.03 + 0.1 + 0.05) * SR  # ...to 0
    end = voice.fade_end()
    assert end == pytest.approx(heard + 0.1 * SR, abs=0.04 * SR)  # heard + the mixer's lead
    for i in range(end - 1200, end, 37):  # what the face scales its speech by
        assert sink.at(voice.dac_time(i)) == pytest.approx(0.8 * voice.gain(i), abs=1e-6)
    assert voice.gain(end - 1200) == 1.0 and 0.0 < voice.gain(end - 400) < 1.0
    assert voice.gain(end) == 0.0 and voice.dac_time(end) is None


def test_fade_before_the_start_cuts_at_once():
    clock, _, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(SR, cushion_s=0.1)
    voice.push(np.full(800, 0.5, np.float32))
    assert voice.fade(0.15) == 0
    assert voice.done and voice.dac_time(0) is None


def test_voices_at_other_rates_are_resampled_and_mapped():
    clock, sink, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(2 * SR, cushion_s=0.05)
    voice.push(np.full(2 * SR, 0.5, np.float32))
    voice.end()  # the resampler's tail comes at the end
    run(clock, mixer, 0.2)
    assert voice.samples == 2 * SR
    assert voice.dac_time(2000) - voice.dac_time(0) == pytest.approx(2000 / (2 * SR), abs=1 / SR)
    assert sink.at(voice.dac_time(2000)) == pytest.approx(0.5)


def test_the_cushion_counts_from_the_first_audio_even_if_the_resampler_holds_it():
    clock, _, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(2 * SR, cushion_s=0.05)
    arrived = clock.t
    voice.push(np.full(64, 0.5, np.float32))  # less than the resampler's delay
    clock.t += 0.02
    voice.push(np.full(2 * SR, 0.5, np.float32))
    assert voice.dac_time(0) == pytest.approx(arrived + 0.05)


def test_room_shrinks_as_audio_queues_and_comes_back_as_it_plays():
    clock, _, mixer = setup()
    voice = mixer.voice(SR, cushion_s=0.05, capacity_s=1.0)
    voice.push(np.zeros(SR, np.float32))
    assert voice.room_s() == 0.0
    run(clock, mixer, 0.5)
    assert voice.room_s() == pytest.approx(0.45, abs=0.05)


def test_the_thread_keeps_the_null_sink_playing_in_real_time():
    mixer = Mixer(NullSink(SR, buffer_ms=5))
    mixer.start()
    try:
        voice = mixer.voice(SR, cushion_s=0.02)
        voice.push(np.full(400, 0.5, np.float32))
        voice.end()
        deadline = time.monotonic() + 5
        while not voice.done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert voice.done and voice.heard() <= 400
    finally:
        mixer.close()


def test_a_fading_voice_that_runs_dry_is_over():
    """An interrupted stream has only its cushion queued: the fade cannot run its length, and
    nothing more will come, so the voice ends (and leaves the mixer) instead of waiting."""
    clock, _, mixer = setup()
    run(clock, mixer, 0.05)
    voice = mixer.voice(SR, cushion_s=0.05)
    voice.push(np.full(800, 0.5, np.float32))
    run(clock, mixer, 0.08)
    voice.fade(1.0)
    run(clock, mixer, 0.3)
    assert voice.done and voice.cut and voice.underruns == 0
    assert voice not in mixer._voices
