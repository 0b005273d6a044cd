"""Emotion overlay: a few ARKit offsets per basic emotion, weighted by a score in [0, 1].

NeuroSync-style models return seven emotion scores with each frame, and users may want a
constant mood (``--emotion happy:0.4``). Either becomes a small additive offset on the face,
so the expression colours the speech without replacing it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from livelink.names import BLENDSHAPE_NAMES, INDEX
from nsplayer.errors import NsplayerError
from nsplayer.models.base import EMOTION_NAMES as _MODEL_EMOTIONS

EMOTIONS = tuple(name.lower() for name in _MODEL_EMOTIONS)  # order of a 68-column row's tail

# Offsets at full score (1.0); a mirrored shape applies to both sides.
_SHAPES: dict[str, dict[str, float]] = {
    "angry": {"BrowDown": 0.5, "NoseSneer": 0.25, "EyeSquint": 0.15, "MouthPress": 0.15},
    "disgusted": {"NoseSneer": 0.4, "MouthUpperUp": 0.3, "BrowDown": 0.2, "CheekSquint": 0.1},
    "fearful": {"BrowInnerUp": 0.5, "BrowOuterUp": 0.2, "EyeWide": 0.35, "MouthStretch": 0.3},
    "happy": {"MouthSmile": 0.5, "CheekSquint": 0.35, "EyeSquint": 0.15, "MouthDimple": 0.1},
    "neutral": {},
    "sad": {"MouthFrown": 0.4, "BrowInnerUp": 0.45, "MouthShrugLower": 0.15},
    "surprised": {"BrowInnerUp": 0.4, "BrowOuterUp": 0.5, "EyeWide": 0.4, "JawOpen": 0.15},
}


def _offset_matrix() -> np.ndarray:
    """(7, 61) offsets in EMOTIONS order and protocol order."""
    matrix = np.zeros((len(EMOTIONS), len(BLENDSHAPE_NAMES)), np.float32)
    for row, emotion in enumerate(EMOTIONS):
        for shape, amount in _SHAPES[emotion].items():
            for name in (shape, shape + "Left", shape + "Right"):
                if name in INDEX:
                    matrix[row, INDEX[name]] = amount
    return matrix


OFFSETS = _offset_matrix()


def emotion_weights(emotion: Mapping[str, float]) -> np.ndarray:
    """Scores as a float32[7] vector in EMOTIONS order; rejects unknown names and bad weights."""
    weights = np.zeros(len(EMOTIONS), np.float32)
    for name, value in emotion.items():
        key = str(name).strip().lower()
        if key not in EMOTIONS:
            raise NsplayerError(
                f"unknown emotion {str(name)!r} — use one of {', '.join(EMOTIONS)}, e.g. happy:0.4"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise NsplayerError(f"emotion {key!r} weight must be a number in 0..1, got {value!r}")
        weights[EMOTIONS.index(key)] = value
    return weights


def parse_emotion(text: str) -> dict[str, float]:
    """Parse ``"happy:0.4,sad:0.1"`` into ``{"happy": 0.4, "sad": 0.1}``; empty text: none."""
    result: dict[str, float] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition(":")
        try:
            weight = float(value)
        except ValueError:
            weight = None
        if not sep or weight is None:
            raise NsplayerError(f"bad emotion {item!r} — write NAME:WEIGHT, e.g. happy:0.4")
        result[name.strip().lower()] = weight
    emotion_weights(result)  # validates names and ranges
    return result
