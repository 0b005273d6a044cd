"""Animator: blend timing in frames, gains, emotion overlay, sanitizing and clamping."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nsplayer.animation import Animator, Gains, IdleGenerator, IdleSettings, parse_emotion
from nsplayer.errors import NsplayerError

FPS = 60
BLINK_L, EYE_SQUINT_L, EYE_WIDE_L, JAW_OPEN, MOUTH_FUNNEL = 0, 5, 6, 17, 19
SMILE_L, SMILE_R, FROWN_L = 23, 24, 25
BROW_DOWN_L, BROW_INNER_UP, BROW_OUTER_UP_L = 41, 43, 44
CHEEK_SQUINT_L, NOSE_SNEER_L, HEAD_YAW, HEAD_PITCH, LEFT_EYE_YAW = 47, 49, 52, 53, 55
STILL = IdleSettings(enabled=False)


def speech_row(**values: float) -> np.ndarray:
    row = np.zeros(61, np.float32)
    for index, value in values.items():
        row[int(index[1:])] = value
    return row


@pytest.mark.parametrize("fps", [30, 60, 120])
def test_mouth_blends_in_fast_and_brows_slow(fps):
    row = speech_row(c17=1.0, c43=1.0)
    anim = Animator(fps, idle=STILL)
    out = np.array([anim.step(row) for _ in range(fps)])
    jaw_frames = int(np.argmax(out[:, JAW_OPEN] >= 0.99)) + 1
    brow_frames = int(np.argmax(out[:, BROW_INNER_UP] >= 0.99)) + 1
    assert 0.08 * fps <= jaw_frames <= 0.12 * fps
    assert 0.25 * fps <= brow_frames <= 0.35 * fps
    assert 0 < out[0, JAW_OPEN] <= 1 / (0.1 * fps) + 1e-6  # a full-range step eases in
    assert np.all(np.diff(out[:, JAW_OPEN]) >= 0)


def test_an_opening_mouth_is_followed_without_delay():
    """Blending in adds no latency: a jaw the model opens gradually shows in the same frame."""
    anim = Animator(FPS, seed=3)
    for _ in range(30):
        anim.step(None)
    ramp = np.linspace(0.0, 0.6, 8)
    out = np.array([anim.step(speech_row(c17=float(v)))[JAW_OPEN] for v in ramp])
    assert np.all(out >= ramp - 1e-6)
    assert np.all(np.diff(out) <= 1 / (0.1 * FPS) + 1e-6)  # no jump beyond the blend rate


@pytest.mark.parametrize("fps", [30, 60, 120])
def test_ease_out_reaches_idle_within_200_ms(fps):
    anim = Animator(fps, seed=1)
    row = speech_row(c17=0.9, c43=0.8, c52=0.1, c5=0.5, c55=0.1)
    for _ in range(fps):
        anim.step(row)
    assert anim.speech_weight > 0.99
    steps = 0
    while anim.speech_weight >= 0.01:
        anim.step(None)
        steps += 1
    assert steps <= 0.2 * fps
    reference = Animator(fps, seed=1)  # the same idle, never any speech
    for _ in range(fps + steps):
        reference.step(None)
    np.testing.assert_allclose(anim.step(None), reference.step(None), atol=0.01)


def test_without_speech_the_animator_is_the_idle_layer():
    anim = Animator(FPS, seed=3)
    gen = IdleGenerator(FPS, seed=3)
    for _ in range(120):
        np.testing.assert_array_equal(anim.step(None), gen.step())
    assert anim.speech_weight == 0


def test_gains_scale_their_regions():
    row = speech_row(c17=0.5, c19=0.4, c41=0.3, c47=0.4, c52=0.1)
    gains = Gains(mouth=2.0, jaw=0.5, brows=0.0, cheeks=1.5, head=0.5)
    anim = Animator(FPS, gains=gains, idle=STILL)
    out = [anim.step(row) for _ in range(30)][-1]
    assert out[JAW_OPEN] == pytest.approx(0.25)
    assert out[MOUTH_FUNNEL] == pytest.approx(0.8)
    assert out[BROW_DOWN_L] == 0
    assert out[CHEEK_SQUINT_L] == pytest.approx(0.6)
    assert out[HEAD_YAW] == pytest.approx(0.05)


def test_emotion_from_fixed_dict_holds_in_idle_and_speech():
    happy = Animator(FPS, idle=STILL, emotion={"happy": 0.4})
    out = happy.step(None)
    assert out[SMILE_L] == out[SMILE_R] > 0.1 and out[CHEEK_SQUINT_L] > 0.05
    assert out[FROWN_L] == 0
    angry = Animator(FPS, idle=STILL, emotion=parse_emotion("angry:1"))
    out = angry.step(None)
    assert out[BROW_DOWN_L] > 0.3 and out[NOSE_SNEER_L] > 0.1
    surprised = Animator(FPS, idle=STILL, emotion={"surprised": 1.0}).step(None)
    assert surprised[BROW_OUTER_UP_L] > 0.3 and surprised[EYE_WIDE_L] > 0.2
    assert surprised[JAW_OPEN] > 0.05
    assert not Animator(FPS, idle=STILL, emotion={"neutral": 1.0}).step(None).any()


def test_emotion_from_68_column_rows_fades_in_and_out_with_speech():
    row = np.zeros(68, np.float32)
    row[61 + 5] = 1.0  # Sad
    anim = Animator(FPS, idle=STILL)
    out = [anim.step(row) for _ in range(60)][-1]
    assert out[FROWN_L] > 0.05 and out[BROW_INNER_UP] > 0.05
    assert out[SMILE_L] == 0
    for _ in range(int(0.2 * FPS)):
        out = anim.step(None)
    assert out[FROWN_L] == 0 and out[BROW_INNER_UP] == 0


def test_fixed_emotion_wins_over_model_scores():
    row = np.zeros(68, np.float32)
    row[61 + 5] = 1.0
    out = [Animator(FPS, idle=STILL, emotion={"happy": 0.5}).step(row) for _ in range(30)][-1]
    assert out[SMILE_L] > 0 and out[FROWN_L] == 0


def test_non_finite_values_are_counted_and_replaced_by_last_good():
    anim = Animator(FPS, idle=STILL)
    good = speech_row(c17=0.6)
    for _ in range(20):
        anim.step(good)
    bad = good.copy()
    bad[[17, 18, 52]] = [np.nan, np.inf, -np.inf]
    out = anim.step(bad)
    assert np.isfinite(out).all()
    assert out[JAW_OPEN] == pytest.approx(0.6)
    assert anim.sanitized == 3
    scores = np.full(68, np.nan, np.float32)
    assert np.isfinite(anim.step(scores)).all()
    assert anim.sanitized == 3 + 68


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=68, max_size=68))
def test_any_row_gives_finite_clamped_output(values):
    anim = Animator(FPS, seed=0, emotion={"surprised": 1.0, "happy": 1.0})
    row = np.array(values, np.float32)
    for _ in range(3):
        out = anim.step(row)
        assert out.shape == (61,) and out.dtype == np.float32
        assert np.isfinite(out).all()
        assert out[:52].min() >= 0 and out[:52].max() <= 1
        assert np.abs(out[52:]).max() <= 0.25


def test_clamps_out_of_range_speech():
    anim = Animator(FPS, idle=STILL, gains=Gains(mouth=3.0))
    out = [anim.step(speech_row(c17=1.7, c19=0.9, c52=0.9, c55=-2.0)) for _ in range(30)][-1]
    assert out[JAW_OPEN] == 1.0 and out[MOUTH_FUNNEL] == 1.0
    assert out[HEAD_YAW] == 0.25 and out[LEFT_EYE_YAW] == -0.25


def test_idle_blinks_survive_speech_with_zero_eye_channels():
    anim = Animator(FPS, seed=5)
    row = speech_row(c17=0.5)
    out = np.array([anim.step(row) for _ in range(FPS * 30)])
    assert (out[:, BLINK_L] > 0.9).any()
    assert np.ptp(out[:, LEFT_EYE_YAW]) > 0.005  # saccades still run
    assert out[-1, JAW_OPEN] == pytest.approx(0.5)


def test_model_eyes_take_over_when_they_carry_signal():
    anim = Animator(FPS, seed=5)
    row = speech_row(c17=0.5, c5=0.4, c55=0.1)
    out = [anim.step(row) for _ in range(FPS)][-1]
    assert out[EYE_SQUINT_L] == pytest.approx(0.4)
    assert out[LEFT_EYE_YAW] == pytest.approx(0.1)


def test_model_head_adds_to_idle_sway():
    anim, reference = Animator(FPS, seed=2), Animator(FPS, seed=2)
    row = speech_row(c53=0.05)
    for _ in range(FPS):
        out, base = anim.step(row), reference.step(None)
    assert out[HEAD_PITCH] == pytest.approx(base[HEAD_PITCH] + 0.05, abs=1e-6)
    assert out[HEAD_YAW] == pytest.approx(base[HEAD_YAW], abs=1e-6)


def test_rejects_rows_of_wrong_width():
    with pytest.raises(ValueError, match="61 or 68"):
        Animator(FPS).step(np.zeros(52, np.float32))


def test_parse_emotion():
    assert parse_emotion("happy:0.4, Sad:0.1") == {"happy": 0.4, "sad": 0.1}
    assert parse_emotion("") == {}
    for bad in ("happy", "happy:lots", "joy:0.3", "happy:1.5", "sad:nan"):
        with pytest.raises(NsplayerError, match="emotion"):
            parse_emotion(bad)
    with pytest.raises(NsplayerError, match=r"unknown emotion 'joy'.*happy"):
        Animator(FPS, emotion={"joy": 0.3})
