"""Idle layer: the small involuntary motion that keeps a face alive when nobody is talking.

A perfectly still MetaHuman reads as a mannequin. People blink 12–20 times a minute at
irregular intervals (fast lid close, slower open, now and then a double blink), their eyes
jump between fixation points and drift a little in between, the head sways slightly and
breathing moves the jaw and head. All of it is generated here frame by frame from a seeded
generator, so a run with ``--seed`` is reproducible, and none of it needs more than a few
scalar operations per frame.

Rotation channels (52–60) are normalized like the protocol: degrees / 180. Positive yaw means
the gaze (or head) turns toward the character's left, positive pitch means up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from livelink import names

# ARKit eye-look shapes reach 1.0 at roughly this eye rotation; keeps shapes and angles consistent.
EYE_LOOK_FULL_DEG = 40.0

DOUBLE_BLINK_P = 0.1
MIN_BLINK_GAP_S = 0.4  # no two separate blink episodes closer than this (start to start)
BLINK_INTERVAL_SHAPE = 2.5  # gamma shape: intervals vary (CV ~0.6) like real inter-blink times

GAZE_YAW_SD, GAZE_PITCH_SD = 0.015, 0.008  # fixation targets, normalized (0.015 = 2.7°)
GAZE_YAW_MAX, GAZE_PITCH_MAX = 0.035, 0.02
SACCADE_TAU_S = 0.012  # saccades take a few tens of ms
SACCADE_MEAN_S = 1.6  # mean time between fixation changes

HEAD_AMP = (0.015, 0.010, 0.006)  # yaw, pitch, roll peak sway at head_sway=1 (≈2.7°, 1.8°, 1.1°)
RELAXED_JAW = 0.02
BREATH_JAW = 0.012
BREATH_PITCH = 0.003
BROW_BASE, BROW_AMP = 0.02, 0.02


@dataclass(frozen=True)
class IdleSettings:
    """How much idle motion to add; every part can be scaled down or switched off."""

    enabled: bool = True
    blink_rate: float = 16.0  # blinks per minute; 0 disables blinking
    saccades: bool = True  # eye fixation jumps and gaze drift
    head_sway: float = 1.0  # scale of the slow head sway; 0 disables
    breathing: float = 1.0  # scale of the breathing motion (jaw, head pitch); 0 disables


class _Wobble:
    """A smooth, aperiodic signal in [-1, 1]: a sum of slow sines with random frequencies."""

    def __init__(self, rng: np.random.Generator, lo_hz: float, hi_hz: float, n: int = 3) -> None:
        weights = rng.uniform(0.5, 1.0, n)
        self._terms = [
            (2 * math.pi * float(f), float(p), float(w / weights.sum()))
            for f, p, w in zip(
                rng.uniform(lo_hz, hi_hz, n), rng.uniform(0, 2 * math.pi, n), weights, strict=True
            )
        ]

    def __call__(self, t: float) -> float:
        return sum(a * math.sin(f * t + p) for f, p, a in self._terms)


class _Blinker:
    """Blink episodes at gamma-distributed intervals; each blink closes fast and opens slower."""

    def __init__(self, rng: np.random.Generator, rate_per_min: float, fps: int) -> None:
        self._rng = rng
        self._min_hold = 1.0 / fps  # at least one frame fully closed, or UE never sees a blink
        self._on = rate_per_min > 0
        # Double blinks count as two blinks, so episodes are a little rarer than blinks.
        mean = 60.0 / (rate_per_min / (1 + DOUBLE_BLINK_P)) if self._on else math.inf
        self._scale = max(mean - MIN_BLINK_GAP_S, 0.05) / BLINK_INTERVAL_SHAPE
        self._start = rng.uniform(0.3, min(mean, 4.0)) if self._on else math.inf
        self._episode_start = self._start
        self._shape = self._draw_shape()

    def _draw_shape(self) -> tuple[float, float, float, float]:
        rng = self._rng
        close, hold, reopen = (
            rng.uniform(0.05, 0.08),
            rng.uniform(self._min_hold, max(self._min_hold, 0.035)),  # below 29 fps: 1 frame
            rng.uniform(0.07, 0.13),
        )
        return close, hold, reopen, rng.uniform(0.9, 1.0)

    def _schedule_next(self, end: float) -> None:
        if self._start == self._episode_start and self._rng.random() < DOUBLE_BLINK_P:
            self._start = end + self._rng.uniform(0.05, 0.12)
        else:
            gap = MIN_BLINK_GAP_S + self._rng.gamma(BLINK_INTERVAL_SHAPE, self._scale)
            self._episode_start = self._start = max(self._episode_start + gap, end + 0.1)
        self._shape = self._draw_shape()

    def __call__(self, t: float) -> float:
        dt = t - self._start
        if dt < 0:
            return 0.0
        close, hold, reopen, peak = self._shape
        if dt < close:
            return peak * math.sin(0.5 * math.pi * dt / close)
        if dt < close + hold:
            return peak
        if dt < close + hold + reopen:
            x = (dt - close - hold) / reopen
            return peak * (1.0 - x) ** 2  # quick first half of the opening, slow tail
        self._schedule_next(self._start + close + hold + reopen)
        return self(t)


class IdleGenerator:
    """Produces one idle frame (61 values, protocol order) per ``step()`` at ``fps``."""

    def __init__(
        self, fps: int = 60, settings: IdleSettings | None = None, seed: int | None = None
    ):
        self.fps = fps
        self.settings = settings or IdleSettings()
        rng = np.random.default_rng(seed)
        self._rng = rng
        self._frame = 0
        self._blink = _Blinker(rng, self.settings.blink_rate, fps)
        self._head = [_Wobble(rng, 0.04, 0.25) for _ in HEAD_AMP]
        self._drift = [_Wobble(rng, 0.05, 0.3) for _ in range(2)]
        self._brow = _Wobble(rng, 0.03, 0.15)
        self._breath_hz = rng.uniform(12, 16) / 60.0
        self._breath_phase = rng.uniform(0, 2 * math.pi)
        self._gaze = [0.0, 0.0]
        self._gaze_target = [0.0, 0.0]
        self._next_saccade = rng.uniform(0.2, SACCADE_MEAN_S)
        self._saccade_alpha = 1.0 - math.exp(-1.0 / (fps * SACCADE_TAU_S))

    def step(self, out: np.ndarray | None = None) -> np.ndarray:
        """Advance one frame; write the idle face into ``out`` (float32[61]) or a new array."""
        if out is None:
            out = np.zeros(names.N_VALUES, np.float32)
        else:
            out.fill(0.0)
        t = self._frame / self.fps
        self._frame += 1
        s = self.settings
        if not s.enabled:
            return out
        blink = self._blink(t)
        out[names.EYE_BLINK_LEFT] = out[names.EYE_BLINK_RIGHT] = blink
        if s.saccades:
            self._write_gaze(out, *self._gaze_at(t))
        self._write_head_and_breath(out, t)
        out[names.BROW_INNER_UP] = BROW_BASE + BROW_AMP * self._brow(t)
        return out

    def _gaze_at(self, t: float) -> tuple[float, float]:
        if t >= self._next_saccade:
            rng = self._rng
            self._gaze_target = [
                float(np.clip(rng.normal(0, GAZE_YAW_SD), -GAZE_YAW_MAX, GAZE_YAW_MAX)),
                float(np.clip(rng.normal(0, GAZE_PITCH_SD), -GAZE_PITCH_MAX, GAZE_PITCH_MAX)),
            ]
            self._next_saccade = t + 0.25 + rng.gamma(2.0, (SACCADE_MEAN_S - 0.25) / 2.0)
        a = self._saccade_alpha
        for k in (0, 1):
            self._gaze[k] += a * (self._gaze_target[k] - self._gaze[k])
        return self._gaze[0] + 0.004 * self._drift[0](t), self._gaze[1] + 0.003 * self._drift[1](t)

    @staticmethod
    def _write_gaze(out: np.ndarray, yaw: float, pitch: float) -> None:
        """Eye rotations plus the EyeLook shapes that agree with them (both eyes move together)."""
        h = yaw * 180.0 / EYE_LOOK_FULL_DEG
        v = pitch * 180.0 / EYE_LOOK_FULL_DEG
        # Looking to the character's left: the left eye looks out, the right eye looks in.
        out[names.EYE_LOOK_OUT_LEFT] = out[names.EYE_LOOK_IN_RIGHT] = max(h, 0.0)
        out[names.EYE_LOOK_IN_LEFT] = out[names.EYE_LOOK_OUT_RIGHT] = max(-h, 0.0)
        out[names.EYE_LOOK_UP_LEFT] = out[names.EYE_LOOK_UP_RIGHT] = max(v, 0.0)
        out[names.EYE_LOOK_DOWN_LEFT] = out[names.EYE_LOOK_DOWN_RIGHT] = max(-v, 0.0)
        out[names.LEFT_EYE_YAW] = out[names.RIGHT_EYE_YAW] = yaw
        out[names.LEFT_EYE_PITCH] = out[names.RIGHT_EYE_PITCH] = pitch

    def _write_head_and_breath(self, out: np.ndarray, t: float) -> None:
        s = self.settings
        sway = s.head_sway
        yaw, pitch, roll = (a * sway * w(t) for a, w in zip(HEAD_AMP, self._head, strict=True))
        breath = 0.5 - 0.5 * math.cos(2 * math.pi * self._breath_hz * t + self._breath_phase)
        jaw = RELAXED_JAW + BREATH_JAW * s.breathing * breath
        out[names.JAW_OPEN] = jaw
        out[names.MOUTH_CLOSE] = 0.8 * jaw  # lips stay together while the jaw rests slightly open
        out[names.HEAD_YAW] = yaw
        out[names.HEAD_PITCH] = pitch + BREATH_PITCH * s.breathing * breath
        out[names.HEAD_ROLL] = roll
