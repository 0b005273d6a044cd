"""Idle layer statistics over simulated minutes: blink rate and shape, saccades, sway, seeds."""

from functools import lru_cache

import numpy as np
import pytest

from nsplayer.animation import Animator, IdleGenerator, IdleSettings
from nsplayer.animation.idle import EYE_LOOK_FULL_DEG

FPS = 60
BLINK_L, LOOK_OUT_L, LOOK_IN_L, LOOK_UP_L, LOOK_DOWN_L = 0, 3, 2, 4, 1
BLINK_R, JAW_OPEN = 7, 17
HEAD = slice(52, 55)
LEFT_EYE_YAW, LEFT_EYE_PITCH, RIGHT_EYE_YAW = 55, 56, 58


@lru_cache(maxsize=16)
def run(seconds: float, seed: int = 0, settings: IdleSettings | None = None) -> np.ndarray:
    """Frames of a simulated run (cached: several tests look at the same minutes)."""
    gen = IdleGenerator(FPS, settings, seed=seed)
    return np.array([gen.step() for _ in range(int(seconds * FPS))])


def blinks(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start frames and durations (frames with the lid moving or closed) of each blink."""
    closed = np.concatenate([[False], frames[:, BLINK_L] > 0.0, [False]])
    edges = np.flatnonzero(np.diff(closed.astype(int)))
    starts, ends = edges[::2], edges[1::2]
    return starts, ends - starts


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_blink_rate_is_natural_over_several_minutes(seed):
    frames = run(300, seed)
    starts, _ = blinks(frames)
    assert 12 <= len(starts) / 5 <= 20


@pytest.mark.parametrize("seed", [0, 7])
def test_blink_durations_and_shape(seed):
    frames = run(300, seed)
    starts, durations = blinks(frames)
    ms = durations * 1000 / FPS
    assert ms.min() >= 100 and ms.max() <= 250 + 1000 / FPS
    for start, n in zip(starts, durations, strict=True):
        lid = frames[start : start + n, BLINK_L]
        high = np.flatnonzero(lid >= 0.5 * lid.max())
        assert lid.max() >= 0.9
        assert high[0] <= n - 1 - high[-1]  # closes at least as fast as it opens
    assert np.array_equal(frames[:, BLINK_L], frames[:, BLINK_R])


def test_intervals_vary_and_double_blinks_happen():
    starts, _ = blinks(run(600, seed=5))
    gaps = np.diff(starts) / FPS
    assert gaps.std() / gaps.mean() > 0.3  # irregular, not a metronome
    assert (gaps < 0.5).any()  # a double blink: second blink right after the first


def test_blink_rate_setting_scales_and_zero_disables():
    slow, _ = blinks(run(300, 1, IdleSettings(blink_rate=8)))
    fast, _ = blinks(run(300, 1, IdleSettings(blink_rate=30)))
    assert len(slow) < len(fast)
    assert 6 <= len(slow) / 5 <= 10 and 25 <= len(fast) / 5 <= 35
    assert not run(60, 1, IdleSettings(blink_rate=0))[:, BLINK_L].any()


def test_same_seed_same_motion_different_seed_different_motion():
    assert np.array_equal(run(20, seed=42), run(20, seed=42))
    assert not np.array_equal(run(20, seed=42), run(20, seed=43))


def test_values_in_range_and_small():
    frames = run(300, seed=3)
    assert np.isfinite(frames).all() and frames.dtype == np.float32
    assert frames[:, :52].min() >= 0 and frames[:, :52].max() <= 1
    assert np.abs(frames[:, HEAD]).max() <= 0.05
    assert np.abs(frames[:, 55:61]).max() <= 0.05
    assert frames[:, JAW_OPEN].min() > 0 and frames[:, JAW_OPEN].max() < 0.05  # relaxed mouth
    assert frames[:, 18:52].max() < 0.05  # no smiles, frowns or puffs at rest


def test_saccades_jump_and_eye_shapes_agree_with_rotations():
    frames = run(120, seed=9)
    yaw = frames[:, LEFT_EYE_YAW]
    steps = np.abs(np.diff(yaw))
    assert (steps > 0.004).sum() >= 20  # fixation jumps
    assert np.median(steps) < 0.001  # still in between
    assert np.array_equal(yaw, frames[:, RIGHT_EYE_YAW])
    look = frames[:, LOOK_OUT_L] - frames[:, LOOK_IN_L]
    np.testing.assert_allclose(look, yaw * 180 / EYE_LOOK_FULL_DEG, atol=1e-6)
    vertical = frames[:, LOOK_UP_L] - frames[:, LOOK_DOWN_L]
    np.testing.assert_allclose(
        vertical, frames[:, LEFT_EYE_PITCH] * 180 / EYE_LOOK_FULL_DEG, atol=1e-6
    )


def test_switches_turn_parts_off():
    still = run(30, 2, IdleSettings(saccades=False, head_sway=0, breathing=0))
    assert not still[:, 55:61].any() and not still[:, 1:5].any()
    assert np.ptp(still[:, JAW_OPEN]) == 0
    assert np.abs(still[:, HEAD]).max() == 0
    assert not run(10, 2, IdleSettings(enabled=False)).any()


def test_head_sway_scales():
    half = run(60, 4, IdleSettings(head_sway=0.5))[:, 52]
    full = run(60, 4)[:, 52]
    np.testing.assert_allclose(half, full * 0.5, atol=1e-6)


def test_step_writes_into_given_buffer():
    gen = IdleGenerator(FPS, seed=1)
    buf = np.full(61, 7.0, np.float32)
    assert gen.step(buf) is buf and buf.max() <= 1.0


@pytest.mark.parametrize("fps", [1, 24, 25, 30, 50, 60, 120, 240])
def test_any_frame_rate_blinks_and_animates(fps):
    """Below 29 fps the minimum hold (one frame) is longer than a natural hold: no crash, and
    every blink still shows a fully closed frame."""
    gen = IdleGenerator(fps, seed=fps)
    frames = np.array([gen.step() for _ in range(60 * fps)])
    assert np.isfinite(frames).all() and frames[:, :52].max() <= 1
    starts, _ = blinks(frames)
    assert len(starts) >= 4
    assert (frames[:, BLINK_L] >= 0.9).sum() >= len(starts)
    animator = Animator(fps, seed=fps)
    speech = np.full(61, 0.3, np.float32)
    rows = np.array(
        [animator.step(speech if 2 * fps <= i < 4 * fps else None) for i in range(6 * fps)]
    )
    assert np.isfinite(rows).all() and rows[:, JAW_OPEN].max() > 0.2
