"""The final face: speech frames blended over the idle layer, scaled, coloured, clamped.

The player calls ``Animator.step`` once per output frame (60 times a second) with the model's
row for that frame, or ``None`` when there is no speech. Everything runs on preallocated
float32 arrays of 61 values so a step costs tens of microseconds.

Why the pieces are shaped this way:

- Speech fades in and out per channel instead of switching: mouth and jaw follow the model
  within ~100 ms (lips must not lag the sound), brows, eyes and head drift in over ~300 ms
  (a sudden brow jump looks mechanical). Every channel is back to idle 200 ms after speech
  stops, so a stopped run never leaves the mouth open in UE.
- Many models write zeros or noise in the eye channels. Those would freeze the gaze and
  cancel the idle blinks, so the eyes only follow the model while its eye channels carry
  signal (RMS over the last seconds above a threshold), and blinks are the maximum of both.
- The model's head rotations add to the idle sway rather than replacing it: a model that
  outputs a still head must not stop the head from breathing.
- Model rows may hold anything: non-finite values are replaced by the channel's last good
  value and counted in ``sanitized``; everything is clamped before it leaves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields

import numpy as np

from livelink.names import (
    BROW_INNER_UP,
    EYE_BLINK_LEFT,
    EYE_BLINK_RIGHT,
    N_BLENDSHAPES,
    N_VALUES,
    REGIONS,
)
from nsplayer.animation.emotion import EMOTIONS, OFFSETS, emotion_weights
from nsplayer.animation.idle import IdleGenerator, IdleSettings

FAST_BLEND_S = 0.1  # mouth, jaw, cheeks: in and out
SLOW_BLEND_IN_S = 0.3  # brows, eyes, head
SLOW_BLEND_OUT_S = 0.2  # bounded by the 200 ms ease-out a stop must finish within
SLOW_REGIONS = ("brows", "eyes", "eye_rotation", "head")
ADDITIVE_REGIONS = ("head",)
EYE_REGIONS = ("eyes", "eye_rotation")
# Which livelink.names REGIONS each gain scales (regions not listed keep gain 1).
GAIN_REGIONS = {
    "mouth": ("mouth", "tongue"),
    "jaw": ("jaw",),
    "brows": ("brows",),
    "eyes": EYE_REGIONS,
    "head": ("head",),
    "cheeks": ("cheeks",),
}

ROTATION_LIMIT = 0.25  # ±45°: beyond this a head or eye rotation is a model glitch

EYE_GATE_RMS = 0.02  # model eye channels below this RMS are treated as "not provided"
EYE_GATE_TAU_S = 2.0
EMOTION_TAU_S = 0.25  # smooths per-frame model emotion scores
MODEL_EMOTION_SCALE = 0.5  # model scores are confidences, not intensities: keep them subtle
EYES_OPEN = 0.05  # blink weight below which a frame shows the eyes open


@dataclass(frozen=True)
class Gains:
    """Scale of the model's motion per face region (1.0 = as the model says)."""

    mouth: float = 1.0
    jaw: float = 1.0
    brows: float = 1.0
    eyes: float = 1.0
    head: float = 1.0
    cheeks: float = 1.0


def _mask(regions: tuple[str, ...]) -> np.ndarray:
    mask = np.zeros(N_VALUES, bool)
    for region in regions:
        mask[list(REGIONS[region])] = True
    return mask


def _gain_vector(gains: Gains) -> np.ndarray:
    vector = np.ones(N_VALUES, np.float32)
    for field in fields(gains):
        vector[_mask(GAIN_REGIONS[field.name])] = getattr(gains, field.name)
    return vector


class Animator:
    """Composes idle, speech, gains and emotion into the 61 values sent for each frame."""

    def __init__(
        self,
        fps: int = 60,
        gains: Gains | None = None,
        idle: IdleSettings | None = None,
        emotion: Mapping[str, float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.fps = fps
        self.gains = gains or Gains()
        self.sanitized = 0  # non-finite input values replaced so far
        self._idle = IdleGenerator(fps, idle, seed)
        slow = _mask(SLOW_REGIONS)
        self._up = np.where(slow, 1 / (SLOW_BLEND_IN_S * fps), 1 / (FAST_BLEND_S * fps))
        self._down = -np.where(slow, 1 / (SLOW_BLEND_OUT_S * fps), 1 / (FAST_BLEND_S * fps))
        self._replace = (~_mask(ADDITIVE_REGIONS)).astype(np.float32)
        # Fast channels follow a rising speech value at once (rate-limited to a full-range
        # move per FAST_BLEND_S): the cross-fade then adds no latency to an opening mouth,
        # while a row that starts mid-motion still eases in.
        self._follow = ~slow & (self._replace > 0)
        self._fast = np.flatnonzero(~slow)
        self._rise = np.float32(1 / (FAST_BLEND_S * fps))
        self._prev = np.zeros(N_VALUES, np.float32)
        self._eyes = np.flatnonzero(_mask(EYE_REGIONS))
        self._blinks = [EYE_BLINK_LEFT, EYE_BLINK_RIGHT]
        self._brow = BROW_INNER_UP  # a slow channel: model emotions fade with it
        self._gain = _gain_vector(self.gains)
        self._lo = np.full(N_VALUES, -ROTATION_LIMIT, np.float32)
        self._hi = np.full(N_VALUES, ROTATION_LIMIT, np.float32)
        self._lo[:N_BLENDSHAPES], self._hi[:N_BLENDSHAPES] = 0.0, 1.0
        self._fixed: np.ndarray | None = None
        self.set_emotion(emotion)
        self._eye_alpha = 1 - math.exp(-1 / (fps * EYE_GATE_TAU_S))
        self._emotion_alpha = 1 - math.exp(-1 / (fps * EMOTION_TAU_S))
        self._weight = np.zeros(N_VALUES)  # linear blend position per channel
        self._target = np.zeros(N_VALUES)
        self._eased = np.zeros(N_VALUES, np.float32)
        self._raw = np.zeros(N_VALUES, np.float32)  # last finite, clamped model values
        self._speech = np.zeros(N_VALUES, np.float32)
        self._eye_ms = np.zeros(len(self._eyes), np.float32)
        self._scores = np.zeros(len(EMOTIONS), np.float32)
        self._idle_row = np.zeros(N_VALUES, np.float32)
        self._out = np.zeros(N_VALUES, np.float32)

    def set_emotion(self, emotion: Mapping[str, float] | None) -> None:
        """Hold ``emotion`` from now on (None: the model's scores, if any)."""
        self._fixed = None if emotion is None else emotion_weights(emotion) @ OFFSETS

    @property
    def speech_weight(self) -> float:
        """How much of the speech layer is still visible (0 = pure idle)."""
        return float(self._eased.max())

    @property
    def eyes_open(self) -> bool:
        """Whether the last frame had both eyes open (no blink under way): UE holds the last
        frame it gets, so a run must not end on one."""
        return bool(self._prev[self._blinks].max() < EYES_OPEN)

    @property
    def mouth_weight(self) -> float:
        """How much of the speech layer the mouth, jaw and cheeks still show (they fade in
        FAST_BLEND_S; brows, eyes and head take longer)."""
        return float(self._eased[self._fast].max())

    def step(self, speech: np.ndarray | None) -> np.ndarray:
        """One output frame: the model's row for it (61 or 68 values) or None for no speech."""
        idle = self._idle.step(self._idle_row)
        if speech is None:
            self._target.fill(0.0)
        else:
            self._take(speech)
        delta = self._target - self._weight
        np.clip(delta, self._down, self._up, out=delta)
        self._weight += delta
        w = self._weight
        np.multiply(w * w, 3.0 - 2.0 * w, out=self._eased)  # smoothstep: no velocity jumps
        out = self._out
        np.multiply(idle, self._replace, out=out)
        np.subtract(self._speech, out, out=out)
        out *= self._eased
        out += idle
        if speech is not None:
            rising = np.minimum(self._speech, self._prev + self._rise)
            np.maximum(out, rising, out=out, where=self._follow)
        out[self._blinks] = np.maximum(out[self._blinks], idle[self._blinks])
        self._add_emotion(out)
        np.clip(out, self._lo, self._hi, out=out)
        self._prev[:] = out
        return out.copy()

    def _take(self, speech: np.ndarray) -> None:
        row = np.asarray(speech, dtype=np.float32)
        if row.shape not in ((N_VALUES,), (N_VALUES + len(EMOTIONS),)):
            raise ValueError(f"a speech row has 61 or 68 values, got shape {row.shape}")
        values = row[:N_VALUES]
        finite = np.isfinite(values)
        if not finite.all():
            self.sanitized += int(np.count_nonzero(~finite))
        np.copyto(self._raw, values, where=finite)
        np.clip(self._raw, self._lo, self._hi, out=self._raw)
        np.multiply(self._raw, self._gain, out=self._speech)
        self._target.fill(1.0)
        eyes = self._raw[self._eyes]
        self._eye_ms += self._eye_alpha * (eyes * eyes - self._eye_ms)
        if self._eye_ms.max() < EYE_GATE_RMS**2:
            self._target[self._eyes] = 0.0
        scores = row[N_VALUES:] if row.size > N_VALUES else np.zeros(len(EMOTIONS), np.float32)
        good = np.isfinite(scores)
        if not good.all():
            self.sanitized += int(np.count_nonzero(~good))
            scores = np.where(good, scores, self._scores)
        self._scores += self._emotion_alpha * (np.clip(scores, 0.0, 1.0) - self._scores)

    def _add_emotion(self, out: np.ndarray) -> None:
        """A fixed emotion holds all the time; model scores fade with the speech they came with."""
        if self._fixed is not None:
            out += self._fixed
        elif self._scores.any():
            out += (MODEL_EMOTION_SCALE * self._eased[self._brow]) * (self._scores @ OFFSETS)
