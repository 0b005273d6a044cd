"""VoiceGate on synthetic signals: voice opens it quickly, clicks/breaths/noise never do."""

from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from nsplayer.vad import VoiceGate

SR = 16000
RNG = np.random.default_rng(7)


def vowel(seconds: float, f0: float = 120.0, amp: float = 0.3) -> np.ndarray:
    """An /a/-like vowel: harmonics of f0 shaped by formants at 700, 1200 and 2500 Hz."""
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        gain = (
            np.exp(-(((f - 700) / 200) ** 2))
            + 0.6 * np.exp(-(((f - 1200) / 250) ** 2))
            + 0.2 * np.exp(-(((f - 2500) / 300) ** 2))
            + 0.05
        )
        x += gain * np.sin(2 * np.pi * f * t)
    return (amp * x / np.abs(x).max()).astype(np.float32)


def noise(seconds: float, amp: float = 0.002) -> np.ndarray:
    return (amp * RNG.standard_normal(int(seconds * SR))).astype(np.float32)


def clicks(seconds: float, every: float = 0.12) -> np.ndarray:
    """Keyboard-like clicks: 8 ms bursts decaying in 2 ms, loud, over room noise."""
    x = noise(seconds)
    n = int(0.008 * SR)
    for start in np.arange(0.03, seconds - 0.01, every):
        i = int(start * SR)
        x[i : i + n] += 0.6 * RNG.standard_normal(n) * np.exp(-np.arange(n) / (0.002 * SR))
    return x


def breath(seconds: float) -> np.ndarray:
    """A loud breath: smoothed noise under a slow swell, far above the room noise."""
    x = np.convolve(RNG.standard_normal(int(seconds * SR)), np.ones(8) / 8, "same")
    swell = np.sin(np.pi * np.arange(len(x)) / len(x))
    return (0.2 * swell * x / np.abs(x).max()).astype(np.float32) + noise(seconds)


def decisions(signal: np.ndarray, block: int = 160) -> np.ndarray:
    """Gate decision every 5 ms, fed in 10 ms blocks as from a microphone."""
    gate = VoiceGate(SR)
    for i in range(0, len(signal), block):
        gate.push(signal[i : i + block])
    return np.array([gate.active_at(t) for t in np.arange(0.005, len(signal) / SR, 0.005)])


def test_silence_and_room_noise_stay_closed() -> None:
    signal = np.concatenate([np.zeros(SR // 2, np.float32), noise(1.0), noise(1.0, 0.02)])
    assert not decisions(signal).any()


def test_clicks_and_breaths_do_not_open() -> None:
    signal = np.concatenate([noise(0.5), clicks(1.5), noise(0.3), breath(0.8), noise(0.3)])
    assert not decisions(signal).any()


def test_voice_opens_within_25_ms_and_closes_after_the_hangover() -> None:
    signal = np.concatenate([noise(1.0), vowel(0.5) + noise(0.5), noise(1.0)])
    active = decisions(signal)
    times = np.arange(0.005, len(signal) / SR, 0.005)[: len(active)]
    onset = times[active.argmax()]
    assert 1.0 <= onset <= 1.025
    assert active[(times > 1.05) & (times < 1.5)].all()
    assert not active[times > 1.8].any()


def test_dc_offset_and_level_change_do_not_open() -> None:
    signal = np.concatenate([noise(1.0) + 0.2, noise(1.0, 0.01) - 0.1])
    assert not decisions(signal).any()


def test_memory_is_bounded() -> None:
    gate = VoiceGate(SR, history_s=1.0)
    for _ in range(300):
        gate.push(noise(0.1))
    assert len(gate._history) == 200


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_speech_opens_the_gate_for_most_of_the_sentence() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "Hello there, how are you today?"],
        capture_output=True,
        check=True,
    ).stdout
    speech, rate = sf.read(io.BytesIO(wav), dtype="float32")
    assert rate == 22050
    gate = VoiceGate(rate)
    signal = np.concatenate([np.zeros(rate // 2, np.float32), speech, np.zeros(rate, np.float32)])
    signal += (0.001 * RNG.standard_normal(len(signal))).astype(np.float32)
    gate.push(signal)
    start, end = 0.5, 0.5 + len(speech) / rate
    active = np.array([gate.active_at(t) for t in np.arange(0.005, len(signal) / rate, 0.005)])
    times = np.arange(0.005, len(signal) / rate, 0.005)[: len(active)]
    assert not active[times < start].any()
    assert active[(times > start) & (times < end)].mean() > 0.7
    assert not active[times > end + 0.4].any()
