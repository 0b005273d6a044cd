"""A model that may fail mid-run (a remote one), and the one rule for what happens then.

``on_model_error`` decides once the primary model has failed after answering at least once:
``embedded`` goes on with the embedded model from the first frame not yet delivered,
``idle`` shows the idle face from there (``idle_from_frame``: the player steps its animator
with no speech from that frame on), ``stop`` raises. A failure before the first answer always
raises: the URL or the server is wrong, and the user should hear about it.

The audio the primary has not yet turned into frames is kept (its look-ahead, a few
seconds), so the fallback starts exactly where the primary stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nsplayer.errors import NsplayerError
from nsplayer.models.base import (
    N_SHAPES,
    FaceModel,
    RemoteModel,
    fit_width,
    to_length,
)


def after_failure(policy: str, answered: bool, exc: NsplayerError) -> tuple[str, str]:
    """The rule: what a model's failure mid-run leads to, ("embedded" | "idle", the line to
    say); raises ``exc`` for ``stop`` and for a model that never answered."""
    if not answered or policy == "stop":
        raise exc
    if policy == "embedded":
        return policy, f"nsplayer: warning: {exc}; continuing with the embedded model"
    return "idle", f"nsplayer: warning: {exc}; showing the idle face from here"


class FallbackModel:
    """``primary`` with ``policy`` (embedded | idle | stop) for its failure mid-run.

    ``make_fallback()`` builds the model to go on with; ``report`` gets one line when the
    rule is applied.
    """

    def __init__(
        self,
        primary: RemoteModel,
        policy: str,
        make_fallback: Callable[[], FaceModel],
        report: Callable[[str], None],
    ) -> None:
        self.primary = primary
        self.sample_rate, self.fps = primary.sample_rate, primary.fps
        self.lookahead_s = primary.lookahead_s
        self.idle_from_frame: int | None = None
        self._policy, self._make, self._report = policy, make_fallback, report
        self._fallback: FaceModel | None = None
        self._kept = np.zeros(0, np.float32)  # audio from the first undelivered frame on
        self._kept_from = 0  # its first sample
        self._samples = 0
        self._delivered = 0  # frames returned so far
        self._width: int | None = None

    @property
    def answered(self) -> bool:
        return self.primary.answered

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        self._samples += len(pcm)
        if self._fallback is not None:
            return self._deliver(self._fallback.feed(pcm))
        if self.idle_from_frame is not None:
            return self._idle(math.floor(self._samples * self.fps / self.sample_rate))
        self._kept = np.concatenate([self._kept, pcm])
        try:
            rows = self.primary.feed(pcm)
        except NsplayerError as exc:
            return self._fail(exc)
        return self._deliver(rows)

    def flush(self) -> np.ndarray:
        total = math.ceil(self._samples * self.fps / self.sample_rate - 1e-9)
        if self._fallback is not None:
            rows = self._deliver(self._fallback.flush())
        elif self.idle_from_frame is not None:
            rows = self._idle(total)
        else:
            try:
                rows = self._deliver(self.primary.flush())
            except NsplayerError as exc:
                rows = self._fail(exc)
                if self._fallback is not None:
                    rows = np.concatenate([rows, self._deliver(self._fallback.flush())])
                else:
                    rows = np.concatenate([rows, self._idle(total)])
        return self._exact(rows, total)

    def close(self) -> None:
        self.primary.close()
        if self._fallback is not None:
            self._fallback.close()

    def _deliver(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32)
        if self._width is None and len(rows):
            self._width = rows.shape[1]
        self._delivered += len(rows)
        self._forget()
        return self._fit(rows)

    def _forget(self) -> None:
        """Drop the audio of delivered frames: only the look-ahead is kept."""
        start = round(self._delivered * self.sample_rate / self.fps)
        drop = min(len(self._kept), max(0, start - self._kept_from))
        if drop:
            self._kept, self._kept_from = self._kept[drop:], self._kept_from + drop

    def _fail(self, exc: NsplayerError) -> np.ndarray:
        """Apply the policy; the frames that can still be shown now."""
        instead, line = after_failure(self._policy, self.answered, exc)
        self.primary.close()
        self._report(line)
        if instead == "embedded":
            self._fallback = self._make()
            audio, self._kept = self._kept, np.zeros(0, np.float32)
            return self._deliver(self._fallback.feed(audio))
        self.idle_from_frame = self._delivered
        return self._idle(math.floor(self._samples * self.fps / self.sample_rate))

    def _idle(self, upto: int) -> np.ndarray:
        n = max(0, upto - self._delivered)
        self._delivered += n
        return np.zeros((n, self._width or N_SHAPES), np.float32)

    def _fit(self, rows: np.ndarray) -> np.ndarray:
        return fit_width(rows, self._width)

    def _exact(self, rows: np.ndarray, total: int) -> np.ndarray:
        """Pad (repeat the last) or cut so that exactly ``total`` frames came out in all."""
        rows = to_length(rows, self._delivered - total)
        self._delivered = total
        return rows
