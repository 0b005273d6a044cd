"""Audio-to-face models behind one factory, so callers pick a backend by name."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from nsplayer.audio import MIN_RATE
from nsplayer.errors import NsplayerError
from nsplayer.models.base import FaceModel

if TYPE_CHECKING:
    from nsplayer.config import NeuroSyncSettings

MODEL_NAMES = ("embedded", "neurosync", "dsp", "learned")
EMBEDDED = "learned"  # what "embedded" (the default) means


def create_model(
    name: str,
    sample_rate: int,
    fps: int = 60,
    *,
    causal: bool = True,
    settings: NeuroSyncSettings | None = None,
    report: Callable[[str], None] | None = None,
) -> FaceModel:
    """Build the model called ``name`` for audio at ``sample_rate``, frames at ``fps``.

    ``causal`` asks the embedded models for live-input look-ahead (<= 30 ms) instead of
    their offline look-ahead (~100 ms); ``settings`` configure the neurosync HTTP client, whose
    failure mid-run is handled by ``FallbackModel`` (``report`` gets its one line).
    "embedded" is the default in-process model: ``EMBEDDED`` says which of "dsp" (formant
    rules) and "learned" (the trained network) it is.
    """
    if sample_rate < MIN_RATE:
        raise NsplayerError(
            f"sample rate {sample_rate} Hz is too low for speech — use audio at "
            f"{MIN_RATE // 1000} kHz or more"
        )
    if fps <= 0:
        raise NsplayerError(f"frame rate must be positive, not {fps}")
    if name == "embedded":
        name = EMBEDDED
    if name == "dsp":
        from nsplayer.models.dsp import DspModel

        return DspModel(sample_rate, fps, causal=causal)
    if name == "learned":
        from nsplayer.models.learned import LearnedModel

        return LearnedModel(sample_rate, fps, causal=causal)
    if name == "neurosync":
        from nsplayer.models.fallback import FallbackModel
        from nsplayer.models.neurosync import NeuroSyncModel, NeuroSyncSettings

        settings = settings or NeuroSyncSettings()
        return FallbackModel(
            NeuroSyncModel(sample_rate, fps, settings),
            settings.on_model_error,
            lambda: create_model("embedded", sample_rate, fps, causal=causal),
            report or (lambda line: print(line, file=sys.stderr)),
        )
    raise NsplayerError(f"unknown model {name!r} — choose one of: {', '.join(MODEL_NAMES)}")
