"""The contract every audio-to-face model follows, so the player can drive any of them.

A model is fed mono float32 PCM at its ``sample_rate`` in chunks of any size and
returns every frame whose audio (plus the model's look-ahead) is known. Frame i
describes the face at audio time i / fps. After ``flush()`` the total number of
frames returned is ceil(duration * fps).

Rows have 61 values in Live Link protocol order (livelink.BLENDSHAPE_NAMES), or
68 where the last 7 are emotion scores in ``EMOTION_NAMES`` order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

EMOTION_NAMES = ("Angry", "Disgusted", "Fearful", "Happy", "Neutral", "Sad", "Surprised")
ON_MODEL_ERROR = ("embedded", "idle", "stop")  # what a remote model's failure mid-run leads to
N_SHAPES = 61
N_WITH_EMOTIONS = N_SHAPES + len(EMOTION_NAMES)


def with_neutral_emotions(frames: np.ndarray) -> np.ndarray:
    """61-value rows to 68: emotion scores Neutral = 1, the others 0 (for models and servers
    that estimate no emotion, so that a client's emotion overlay stays inert)."""
    emotions = np.zeros((len(frames), len(EMOTION_NAMES)), np.float32)
    emotions[:, EMOTION_NAMES.index("Neutral")] = 1.0
    return np.hstack([frames, emotions])


class FaceModel(Protocol):
    """Streaming audio -> blendshape frames."""

    sample_rate: int
    fps: int
    lookahead_s: float  # audio needed past a frame's time before that frame is returned
    # From this frame on the rows carry no speech (a remote model failed and the run goes on
    # with the idle face: models.fallback); None for models that never stop speaking.
    idle_from_frame: int | None

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        """Consume mono float32 samples; return new frames, shape (n, 61) or (n, 68)."""
        ...

    def flush(self) -> np.ndarray:
        """End of input: return the remaining frames."""
        ...

    def close(self) -> None:
        """Release threads, sessions or sockets."""
        ...


class RemoteModel(FaceModel, Protocol):
    """A model behind a network: it can fail in the middle of a run."""

    answered: bool  # it answered at least once (a failure before means a wrong URL or server)


def to_length(rows: np.ndarray, extra: int) -> np.ndarray:
    """``rows`` less ``extra`` at the end, or (``extra`` < 0) with the last row repeated:
    how a stream of frames is made to come out at exactly ceil(duration * fps)."""
    if extra > 0:
        return rows[: max(0, len(rows) - extra)]
    if extra < 0 and len(rows):
        return np.concatenate([rows, np.repeat(rows[-1:], -extra, axis=0)])
    return rows


def fit_width(rows: np.ndarray, width: int | None) -> np.ndarray:
    """Rows of 61 or 68 values as the first answer's ``width`` (61-value rows: Neutral)."""
    rows = np.asarray(rows, np.float32)
    if width == N_SHAPES:
        return rows[:, :N_SHAPES]
    if width == N_WITH_EMOTIONS and rows.shape[1] == N_SHAPES:
        return with_neutral_emotions(rows)
    return rows
