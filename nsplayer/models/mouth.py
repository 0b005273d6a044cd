"""Mouth shapes, the state both embedded models (DSP and learned) drive: their order, their
attack/release dynamics and their mapping to the 61 Live Link values."""

from __future__ import annotations

import numpy as np

from livelink import names as N
from nsplayer.audio import MIN_RATE
from nsplayer.models.base import N_SHAPES

# Shape order in the target/state vectors.
OPEN, CLOSED, ROUND, SPREAD, LABIO, SIBIL, ACCENT = range(7)
N_STATE = 7


def check_stream(sample_rate: int, fps: int) -> None:
    """Both embedded models' guard, for callers that build them without the factory."""
    if sample_rate < MIN_RATE or fps <= 0:
        raise ValueError(f"unsupported sample rate {sample_rate} Hz or fps {fps}")


class Dynamics:
    """Asymmetric one-pole smoothing of the shape vector, one step per analysis frame;
    ``time_constants`` are (attack, release) seconds per shape."""

    def __init__(self, hop_s: float, time_constants: tuple, causal: bool) -> None:
        tc = np.array(time_constants)
        if causal:  # no anticipation: the lips must get there faster once they hear it
            tc[[ROUND, SPREAD, LABIO], 0] *= 0.3
        self.coefs = list(
            zip(
                (1.0 - np.exp(-hop_s / tc[:, 0])).tolist(),
                (1.0 - np.exp(-hop_s / tc[:, 1])).tolist(),
                strict=True,
            )
        )
        self.state = [0.0] * N_STATE

    def run(self, targets: np.ndarray) -> np.ndarray:
        # Plain floats: for 7 values a step, numpy's per-call overhead would dominate.
        out, s, coefs = [], self.state, self.coefs
        for row in targets.tolist():
            s = [
                x + (att if t > x else rel) * (t - x)
                for x, t, (att, rel) in zip(s, row, coefs, strict=True)
            ]
            out.append(s)
        self.state = s
        return np.array(out, dtype=np.float64).reshape(len(targets), N_STATE)


def to_channels(s: np.ndarray) -> np.ndarray:
    """Shape states (n, N_STATE) -> Live Link rows (n, 61), float32."""
    o, c, r, sp, lab, sib, acc = (s[:, k] for k in range(N_STATE))
    out = np.zeros((len(s), N_SHAPES), np.float32)
    shut = 1.0 - 0.9 * c  # a closure overrides whatever opening is still decaying
    jaw = 0.6 * o * shut * (1.0 - 0.6 * sib) * (1.0 - 0.6 * lab)
    out[:, N.JAW_OPEN] = jaw + 0.08 * sib
    # On p/b/m the lips meet even where the jaw is still a little open (MetaHuman needs
    # MouthClose for that): close exactly the opening that is left.
    out[:, N.MOUTH_CLOSE] = np.minimum(c, 1.0) * jaw
    out[:, N.MOUTH_FUNNEL] = 0.55 * r
    out[:, N.MOUTH_PUCKER] = 0.5 * r * (1.0 - 0.5 * o)
    for left, right, val in (
        (N.MOUTH_STRETCH_LEFT, N.MOUTH_STRETCH_RIGHT, 0.35 * sp + 0.25 * sib),
        (N.MOUTH_SMILE_LEFT, N.MOUTH_SMILE_RIGHT, 0.2 * sp),
        (N.MOUTH_PRESS_LEFT, N.MOUTH_PRESS_RIGHT, 0.45 * c),
        (N.MOUTH_UPPER_UP_LEFT, N.MOUTH_UPPER_UP_RIGHT, 0.3 * lab + (0.2 * o + 0.1 * sib) * shut),
        (N.MOUTH_LOWER_DOWN_LEFT, N.MOUTH_LOWER_DOWN_RIGHT, 0.35 * o * (1.0 - lab) * shut),
        (N.CHEEK_SQUINT_LEFT, N.CHEEK_SQUINT_RIGHT, 0.1 * sp),
        (N.BROW_OUTER_UP_LEFT, N.BROW_OUTER_UP_RIGHT, 0.3 * acc),
    ):
        out[:, left] = val
        out[:, right] = val
    out[:, N.MOUTH_ROLL_LOWER] = 0.2 * c + 0.6 * lab
    out[:, N.MOUTH_ROLL_UPPER] = 0.15 * c
    out[:, N.MOUTH_SHRUG_UPPER] = 0.25 * lab
    out[:, N.MOUTH_SHRUG_LOWER] = 0.15 * c
    out[:, N.BROW_INNER_UP] = 0.5 * acc
    out[:, N.HEAD_PITCH] = 0.02 * acc  # a nod of up to 3.6° on accents (rotation / 180°)
    return out
