"""The DSP model (`--model dsp`) on real speech from espeak-ng (its phoneme events)."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livelink import names as N
from nsplayer import espeak
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.dsp import DspModel

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="no libespeak-ng")
MOUTH = slice(N.JAW_OPEN, N.MOUTH_UPPER_UP_RIGHT + 1)


def run(audio: np.ndarray, sr: int, chunk: int = 1024, causal: bool = False) -> np.ndarray:
    model = DspModel(sr, 60, causal=causal)
    rows = [model.feed(audio[i : i + chunk]) for i in range(0, len(audio), chunk)]
    return np.concatenate([*rows, model.flush()])


def padded(text: str, voice: str = "en-us", rate: int = 150) -> espeak.Utterance:
    u = espeak.synthesize(text, voice, rate)
    pad = np.zeros(u.sample_rate // 2, np.float32)
    phones = tuple(espeak.Phoneme(p.name, p.start + 0.5) for p in u.phonemes)
    return espeak.Utterance(np.concatenate([pad, u.audio, pad]), u.sample_rate, phones)


def at(rows: np.ndarray, t: float) -> np.ndarray:
    return rows[min(len(rows) - 1, round(t * 60))]


def mid_times(u: espeak.Utterance, name: str) -> list[float]:
    ph = u.phonemes
    return [(p.start + q.start) / 2 for p, q in itertools.pairwise(ph) if p.name == name]


@pytest.fixture(scope="module")
def sentence() -> espeak.Utterance:
    if not espeak.available():
        pytest.skip("no libespeak-ng")
    return padded("Please move the blue boat, and feed five sheep by the pool.")


def test_silence_rests_and_length() -> None:
    rows = run(np.zeros(16000 * 2 + 123, np.float32), 16000)
    assert len(rows) == math.ceil((32000 + 123) / 16000 * 60)
    assert np.abs(rows).max() == 0.0


@needs_espeak
def test_vowel_sweep_moves_jaw_spread_round_in_order() -> None:
    u = padded("ah, ee, oo", rate=120)
    rows = run(u.audio, u.sample_rate)
    a, i, o = (np.mean([at(rows, t) for t in mid_times(u, p)], axis=0) for p in ("A:", "i:", "u:"))
    spread = lambda r: r[N.MOUTH_STRETCH_LEFT] + r[N.MOUTH_SMILE_LEFT]  # noqa: E731
    rnd = lambda r: r[N.MOUTH_FUNNEL] + r[N.MOUTH_PUCKER]  # noqa: E731
    assert a[N.JAW_OPEN] > i[N.JAW_OPEN] + 0.1 and a[N.JAW_OPEN] > o[N.JAW_OPEN] + 0.1
    assert spread(i) > spread(a) + 0.05 and spread(i) > spread(o) + 0.05
    assert rnd(o) > rnd(i) + 0.1 and rnd(o) > rnd(a) + 0.05


@needs_espeak
def test_lips_close_between_vowels() -> None:
    u = padded("papa, baba, mama", rate=130)
    rows = run(u.audio, u.sample_rate)
    ph = u.phonemes
    opened = [at(rows, t)[N.JAW_OPEN] for t in mid_times(u, "a") + mid_times(u, "A:")]
    assert min(opened) > 0.15
    for k, p in enumerate(ph):
        if p.name in ("p", "b"):
            window = rows[round((p.start - 0.045) * 60) : round(p.start * 60) + 1]
        elif p.name == "m":
            window = rows[round(p.start * 60) : round(ph[k + 1].start * 60) + 1]
        else:
            continue
        assert window[:, N.JAW_OPEN].min() < 0.1, (p, window[:, N.JAW_OPEN])


@needs_espeak
def test_labiodental_and_silence_in_a_sentence(sentence: espeak.Utterance) -> None:
    rows = run(sentence.audio, sentence.sample_rate)
    for t in mid_times(sentence, "f"):
        assert at(rows, t)[N.MOUTH_ROLL_LOWER] > 0.15
    assert np.abs(rows[:18, MOUTH]).max() < 0.05  # leading silence (0.3 s) at rest
    assert np.abs(rows[-18:, MOUTH]).max() < 0.05


@needs_espeak
@pytest.mark.parametrize("causal", [True, False])
def test_chunk_size_does_not_change_output(sentence: espeak.Utterance, causal) -> None:
    ref = run(sentence.audio, sentence.sample_rate, chunk=len(sentence.audio), causal=causal)
    for chunk in (1, 97, 4096):
        audio = sentence.audio if chunk > 1 else sentence.audio[: sentence.sample_rate // 2]
        out = run(audio, sentence.sample_rate, chunk=chunk, causal=causal)
        n = len(out)
        assert n == math.ceil(len(audio) * 60 / sentence.sample_rate)
        if chunk > 1:
            np.testing.assert_allclose(out, ref, atol=1e-4)


@needs_espeak
def test_causal_latency_is_declared_and_small(sentence: espeak.Utterance) -> None:
    model = DspModel(sentence.sample_rate, 60, causal=True)
    assert model.lookahead_s <= 0.030
    need = round((10 / 60 + model.lookahead_s) * sentence.sample_rate) + 1
    assert len(model.feed(sentence.audio[:need])) >= 11  # frames 0..10 are out


def resample(x: np.ndarray, sr: int, new: int) -> np.ndarray:
    t = np.arange(round(len(x) * new / sr)) * sr / new
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


@needs_espeak
@pytest.mark.parametrize("case", ["8k", "48k", "clipped", "dc", "quiet", "noise", "stereo-ish"])
def test_robust_inputs(sentence: espeak.Utterance, case: str) -> None:
    x, sr = sentence.audio, sentence.sample_rate
    if case == "8k":
        x, sr = resample(x, sr, 8000), 8000
    elif case == "48k":
        x, sr = resample(x, sr, 48000), 48000
    elif case == "clipped":
        x = np.clip(x * 20, -1, 1)
    elif case == "dc":
        x = x + 0.3
    elif case == "quiet":
        x = x * 10 ** (-50 / 20)
    elif case == "noise":
        x = x + np.random.default_rng(1).normal(0, 0.003, len(x)).astype(np.float32)
    else:
        x = x.copy()
        x[::7] = np.nan  # corrupt samples must not poison the state
    rows = run(x, sr)
    assert len(rows) == math.ceil(len(x) * 60 / sr)
    assert np.isfinite(rows).all()
    assert rows[:, :52].min() >= 0.0 and rows[:, :52].max() <= 1.0
    assert np.abs(rows[:, 52:]).max() <= 0.1
    jaw = rows[:, N.JAW_OPEN]
    assert jaw.max() > 0.2  # it talks
    assert np.abs(rows[-12:, MOUTH]).max() < 0.05  # and comes back to rest
    if case != "stereo-ish":
        assert jaw[round(mid_times(sentence, "u:")[0] * 60) :].min() < 0.05  # no stuck mouth


def test_factory() -> None:
    model = create_model("embedded", 22050, 30, causal=False)
    assert model.fps == 30 and model.sample_rate == 22050
    assert model.feed(np.zeros(22050, np.float32)).shape[1] == 61
    with pytest.raises(NsplayerError, match="unknown model"):
        create_model("nope", 16000)
    with pytest.raises(NsplayerError):
        create_model("embedded", 1000)


@needs_espeak
@pytest.mark.parametrize("fps", [30, 50])
def test_other_frame_rates(sentence: espeak.Utterance, fps: int) -> None:
    model = create_model("dsp", sentence.sample_rate, fps, causal=True)
    assert model.lookahead_s <= 0.030
    rows = np.concatenate([model.feed(sentence.audio), model.flush()])
    assert len(rows) == math.ceil(len(sentence.audio) * fps / sentence.sample_rate)
    ref = run(sentence.audio, sentence.sample_rate, causal=True)  # 60 fps
    jaw_ref = ref[np.round(np.arange(len(rows)) * 60 / fps).astype(int).clip(0, len(ref) - 1)]
    corr = np.corrcoef(rows[:, N.JAW_OPEN], jaw_ref[:, N.JAW_OPEN])[0, 1]
    assert corr > 0.8  # the same animation, sampled at another rate


@pytest.mark.parametrize("colour", ["white", "brown"])
def test_steady_noise_keeps_the_mouth_at_rest(colour: str) -> None:
    n = 16000 * 3
    spec = np.fft.rfft(np.random.default_rng(3).normal(0, 1, n))
    if colour == "brown":  # power falling like 1/f^2 above 20 Hz: rumble, fans
        spec /= np.maximum(np.fft.rfftfreq(n, 1 / 16000), 20.0)
    noise = np.fft.irfft(spec, n)
    noise = (noise / noise.std() * 10 ** (-40 / 20)).astype(np.float32)
    rows = run(noise, 16000, causal=True)
    assert np.abs(rows[6:, MOUTH]).max() < 0.05  # after the first 0.1 s


@needs_espeak
@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_any_chunking_gives_the_same_frames(chunks: list[int]) -> None:
    u = _short_speech()
    ref = run(u.audio, u.sample_rate, chunk=len(u.audio), causal=True)
    model, out, pos = DspModel(u.sample_rate, 60, causal=True), [], 0
    for n in chunks:
        out.append(model.feed(u.audio[pos : pos + n]))
        pos += n
    out += [model.feed(u.audio[pos:]), model.flush()]
    np.testing.assert_allclose(np.concatenate(out), ref, atol=1e-4)


@functools.cache
def _short_speech() -> espeak.Utterance:
    return espeak.synthesize("Bob moved.", "en-us", 170)
