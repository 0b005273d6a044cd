"""FaceFrame: one Live Link Face packet's content, independent of the wire format."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from livelink.frametime import FrameTime
from livelink.names import N_VALUES


@dataclass(eq=False)
class FaceFrame:
    """61 values in protocol order for one subject at one frame time.

    ``values`` is converted to a float32 array of shape (61,) (ValueError otherwise).
    Two frames are equal when names, time and every value are exactly equal.
    """

    values: np.ndarray
    subject: str
    device_id: str
    time: FrameTime

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        if self.values.shape != (N_VALUES,):
            raise ValueError(f"FaceFrame needs {N_VALUES} values, got shape {self.values.shape}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FaceFrame):
            return NotImplemented
        return (
            self.subject == other.subject
            and self.device_id == other.device_id
            and self.time == other.time
            and bool(np.array_equal(self.values, other.values))
        )

    __hash__ = None  # type: ignore[assignment]  # mutable array inside
