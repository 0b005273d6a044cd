"""The learned embedded model's numpy inference (the shipped weights; nothing trains here)."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livelink import names as N
from nsplayer import espeak
from nsplayer.models import MODEL_NAMES, create_model
from nsplayer.models.features import MEL_BANDS, MEL_HOP_S, MelAnalyzer
from nsplayer.models.learned import (
    ONSET_FRAMES,
    ONSET_GAINS,
    PAUSE_FRAMES,
    QUIET_GAINS,
    QUIET_POSTERIOR,
    SPEECH_GAINS,
    VISEMES,
    WEIGHTS,
    WEIGHTS_DIR,
    LearnedModel,
    _Net,
    _Nets,
    load_weights,
)

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="no libespeak-ng")
MOUTH = slice(N.JAW_OPEN, N.MOUTH_UPPER_UP_RIGHT + 1)


def run(audio: np.ndarray, sr: int, chunk: int = 1024, causal: bool = True, fps: int = 60):
    model = LearnedModel(sr, fps, causal=causal)
    rows = [model.feed(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    return np.concatenate([*rows, model.flush()])


@functools.cache
def speech() -> espeak.Utterance:
    u = espeak.synthesize("Bob moved the map, papa.", "en-us", 160)
    pad = np.zeros(u.sample_rate // 2, np.float32)
    phones = tuple(espeak.Phoneme(p.name, p.start + 0.5) for p in u.phonemes)
    return espeak.Utterance(np.concatenate([pad, u.audio, pad]), u.sample_rate, phones)


def resample(x: np.ndarray, sr: int, new: int) -> np.ndarray:
    t = np.arange(round(len(x) * new / sr)) * sr / new
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def test_weights_are_small_plain_arrays() -> None:
    path = WEIGHTS_DIR / WEIGHTS
    assert path.stat().st_size <= 5 * 1024 * 1024
    with np.load(path, allow_pickle=False) as npz:  # no pickled objects in a shipped file
        assert {"causal/out.weight", "offline/out.weight"} <= set(npz.files)
    w = load_weights()
    assert w["causal/out.weight"].shape[0] == len(VISEMES)
    assert int(w["causal/lookahead"]) < int(w["offline/lookahead"])


def test_a_modes_members_are_averaged() -> None:
    w = load_weights()
    offline, causal = _Nets(w, "offline"), _Nets(w, "causal")
    heads = ["offline/"] + [f"offline.{k}/" for k in range(1, len(offline.members))]
    assert len(offline.members) >= 2 and len(causal.members) == 1
    x = np.random.default_rng(1).normal(-30, 15, (50, 2 * MEL_BANDS + 1)).astype(np.float32)
    each = [_Net(w, head).run(x) for head in heads]
    np.testing.assert_allclose(offline.run(x), np.mean(each, axis=0), rtol=1e-6)
    assert np.abs(each[0] - each[1]).max() > 0.05  # two networks, not one twice
    later = {**w, "offline.1/lookahead": np.array(int(w["offline/lookahead"]) + 1)}
    with pytest.raises(ValueError, match="look-ahead"):
        _Nets(later, "offline")


def test_factory_names() -> None:
    assert {"embedded", "neurosync", "dsp", "learned"} <= set(MODEL_NAMES)
    model = create_model("learned", 16000, 60, causal=True)
    assert isinstance(model, LearnedModel)
    assert model.lookahead_s <= 0.030 + 1e-9
    assert create_model("learned", 16000, 60, causal=False).lookahead_s > model.lookahead_s


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
@pytest.mark.parametrize("causal", [True, False])
def test_frame_count_and_silence_at_rest(rate: int, causal: bool) -> None:
    n = 2 * rate + 123
    rows = run(np.zeros(n, np.float32), rate, causal=causal)
    assert rows.shape == (math.ceil(n * 60 / rate), 61)
    assert np.abs(rows[:, MOUTH]).max() < 0.05


@pytest.mark.parametrize("fps", [25, 30, 50, 60])
def test_any_frame_rate_gives_ceil_duration_frames(fps: int) -> None:
    x = np.random.default_rng(2).normal(0, 0.05, 16000 + 77).astype(np.float32)
    assert len(run(x, 16000, chunk=333, fps=fps)) == math.ceil((16000 + 77) * fps / 16000)


@needs_espeak
@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_talks_at_every_rate(rate: int) -> None:
    u = speech()
    x = u.audio if rate == u.sample_rate else resample(u.audio, u.sample_rate, rate)
    rows = run(x, rate)
    assert len(rows) == math.ceil(len(x) * 60 / rate)
    assert np.isfinite(rows).all()
    assert rows[:, :52].min() >= 0.0 and rows[:, :52].max() <= 1.0
    assert rows[:, N.JAW_OPEN].max() > 0.2  # it talks
    assert np.abs(rows[:12, MOUTH]).max() < 0.05  # and rests before and after
    assert np.abs(rows[-12:, MOUTH]).max() < 0.05


@needs_espeak
def test_lips_close_on_bilabials() -> None:
    u = speech()
    rows = run(u.audio, u.sample_rate, causal=False)
    aperture = np.maximum(0, rows[:, N.JAW_OPEN] - rows[:, N.MOUTH_CLOSE])
    marks = [p.start for p in u.phonemes if p.name in ("p", "b")]
    closed = [aperture[round((t - 0.045) * 60) : round(t * 60) + 1].min() < 0.1 for t in marks]
    assert np.mean(closed) >= 0.75, closed


def frame_gains(model: LearnedModel, silence: list[float]) -> np.ndarray:
    post = np.zeros((len(silence), len(VISEMES)))
    post[:, 0] = silence
    post[:, 3] = 1.0 - post[:, 0]
    return model._frame_gains(post)


@pytest.mark.parametrize("causal", [True, False])
def test_lips_get_smaller_gains_where_it_may_be_silence(causal: bool) -> None:
    speech, quiet = SPEECH_GAINS, QUIET_GAINS
    assert speech[1] > quiet[1] and speech[4] > quiet[4]  # closures and labiodentals
    model = LearnedModel(16000, causal=causal)
    frame_gains(model, [0.0] * ONSET_FRAMES)  # past the first sounds (see below)
    got = frame_gains(model, [0.0, QUIET_POSTERIOR, 0.3, 1.0, 0.0])
    np.testing.assert_array_equal(got, [speech, speech, quiet, quiet, speech])


def test_causal_lips_get_smaller_gains_as_sound_begins_after_a_pause() -> None:
    speech = SPEECH_GAINS
    assert ONSET_GAINS[1] < QUIET_GAINS[1] < speech[1]  # closures least of all
    model, onset = LearnedModel(16000, causal=True), [ONSET_GAINS] * ONSET_FRAMES + [speech]
    # at the start, as after a long pause, the first frames of sound are an onset
    np.testing.assert_array_equal(frame_gains(model, [0.0] * len(onset)), onset)
    # a stop's closure inside speech is no pause; PAUSE_FRAMES are, across blocks of audio
    frame_gains(model, [1.0] * (PAUSE_FRAMES - 1))
    np.testing.assert_array_equal(frame_gains(model, [0.0]), [speech])
    frame_gains(model, [1.0] * PAUSE_FRAMES)
    np.testing.assert_array_equal(frame_gains(model, [0.0] * len(onset)), onset)
    offline = LearnedModel(16000, causal=False)  # reads ahead: no onset to fear
    np.testing.assert_array_equal(frame_gains(offline, [0.0]), [speech])


@needs_espeak
@pytest.mark.parametrize("causal", [True, False])
def test_deterministic(causal: bool) -> None:
    u = speech()
    a = run(u.audio, u.sample_rate, causal=causal)
    b = run(u.audio, u.sample_rate, causal=causal)
    np.testing.assert_array_equal(a, b)


@needs_espeak
@settings(max_examples=12, deadline=None)
@given(st.lists(st.integers(1, 4000), min_size=1, max_size=30), st.booleans())
def test_any_chunking_gives_the_same_frames(chunks: list[int], causal: bool) -> None:
    u = speech()
    ref = run(u.audio, u.sample_rate, chunk=len(u.audio), causal=causal)
    model, out, pos = LearnedModel(u.sample_rate, 60, causal=causal), [], 0
    for n in chunks:
        out.append(model.feed(u.audio[pos : pos + n]))
        pos += n
    out += [model.feed(u.audio[pos:]), model.flush()]
    np.testing.assert_allclose(np.concatenate(out), ref, atol=1e-4)


@needs_espeak
def test_causal_frames_come_out_within_the_declared_lookahead() -> None:
    u = speech()
    model = LearnedModel(u.sample_rate, 60, causal=True)
    emitted, sr = 0, u.sample_rate
    for i in range(0, sr, 37):
        emitted += len(model.feed(u.audio[i : i + 37]))
        known = (i + 37) / sr  # audio fed so far, in seconds
        # every frame whose time plus the look-ahead is known has been returned
        assert emitted >= math.floor((known - model.lookahead_s) * 60 + 1e-9) + 1


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 48000])
def test_click_train_lands_on_the_frame_of_its_time(rate: int) -> None:
    """Frame j of the features describes audio time j * 10 ms exactly: a click at that time
    is loudest in frame j, whatever the sample rate."""
    times = np.arange(0.1, 1.0, 0.07)
    x = np.zeros(rate, np.float32)
    x[np.round(times * rate).astype(int)] = 1.0
    rows = MelAnalyzer(rate).push(np.concatenate([x, np.zeros(rate // 10, np.float32)]))
    energy = np.log10(np.sum(10 ** (rows[:, :MEL_BANDS] / 10), axis=1))
    for t in times:
        j = round(t / MEL_HOP_S)
        assert energy[j] > energy[j - 1] and energy[j] > energy[j + 1], t


@needs_espeak
@pytest.mark.parametrize("causal", [True, False])
def test_delayed_audio_gives_the_same_frames_later(causal: bool) -> None:
    """Audio delayed by k frame periods comes out exactly k frames later: no frame is
    tied to the chunking or to the phase of the analysis grid."""
    u = speech()
    x = resample(u.audio, u.sample_rate, 16000)  # whole samples per hop: no rounding
    k = 3  # 50 ms: 5 hops
    a = run(x, 16000, causal=causal)
    b = run(np.concatenate([np.zeros(800, np.float32), x]), 16000, causal=causal)
    np.testing.assert_allclose(b[k : k + len(a) - 10], a[:-10], atol=1e-4)


def test_holds_blas_to_one_thread() -> None:
    """Its small products every few ms would otherwise wake BLAS threads that spin between
    calls (4.6 s of CPU for 10 s of play, instead of 1.3)."""
    from threadpoolctl import threadpool_info

    create_model("learned", 16000, 60)
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def vowel_bursts(sr: int, count: int = 12) -> tuple[np.ndarray, list[float]]:
    """Silence, then /a/-like vowels with a 2 ms attack (a sharp onset, like a p release),
    their onsets spread over the 10 ms frame grid; returns the audio and the onset times."""
    t = np.arange(int(0.3 * sr)) / sr
    harmonics = np.arange(1, 33) * 120.0
    level = 0.05 + sum(
        g * np.exp(-(((harmonics - f) / b) ** 2))
        for f, b, g in ((700, 200, 1.0), (1200, 250, 0.6), (2500, 300, 0.2))
    )
    vowel = (level[:, None] * np.sin(2 * np.pi * harmonics[:, None] * t)).sum(axis=0)
    vowel *= 0.5 / np.abs(vowel).max() * np.minimum(1.0, t / 0.002)
    parts, onsets, pos = [np.zeros(sr, np.float32)], [], sr
    for k in range(count):
        gap = np.zeros(int(sr * (0.6 + 0.01 * ((k * 0.618) % 1))), np.float32)
        onsets.append(pos / sr)
        parts += [vowel.astype(np.float32), gap]
        pos += len(vowel) + len(gap)
    return np.concatenate(parts), onsets


def test_causal_jaw_opens_at_once_on_a_sharp_vowel_onset() -> None:
    """The causal network hears such an onset as a p/b release at first; the jaw must not
    wait for it to change its mind (`live`'s latency): open within a frame, mostly sooner."""
    audio, onsets = vowel_bursts(16000)
    jaw = run(audio, 16000, causal=True)[:, N.JAW_OPEN]
    late = []
    for t in onsets:
        first = int(np.floor(t * 60))
        late.append(first + int(np.argmax(jaw[first:] > 0.08)) - t * 60)  # in frames
    assert max(late) <= 1.05 and np.mean(late) <= 0.45, late
