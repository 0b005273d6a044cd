"""Timecode-of-day frame time, as Live Link Face puts it in every packet.

The app counts the time of day in frames at the frame rate (``frame``) and puts the
fraction of a frame in ``subframe``. UE's "Timecode" mode relies on this; its default
"Engine Time" mode ignores it, so the value matters only for synchronized setups.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import re
import struct
from dataclasses import dataclass

DAY_S = 86400  # timecode of day wraps at midnight
_F32 = struct.Struct(">f")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_ONE_BELOW = _F32.unpack(b"\x3f\x7f\xff\xff")[0]  # largest float32 below 1.0
_TIMECODE = re.compile(r"^\s*(\d+):(\d{1,2}):(\d{1,2})[:;](\d+)(?:\.(\d+))?\s*$")


def _is_int32(x: object) -> bool:
    if type(x) is not int and not isinstance(x, numbers.Integral):
        return False
    return _INT32_MIN <= x <= _INT32_MAX  # type: ignore[operator]


def _to_f32(x: float) -> float:
    """Round to float32 so a FrameTime equals itself after a trip through a packet."""
    return _F32.unpack(_F32.pack(x))[0]


@dataclass(frozen=True)
class FrameTime:
    """Frame number and fraction at ``rate_num / rate_den`` frames per second.

    ``subframe`` is stored rounded to float32 (its wire type), in [0, 1).
    Raises ValueError for a frame outside int32, a non-positive rate or a bad subframe.
    """

    frame: int
    subframe: float = 0.0
    rate_num: int = 60
    rate_den: int = 1

    def __post_init__(self) -> None:
        frame, num, den, sub = self.frame, self.rate_num, self.rate_den, self.subframe
        if not (_is_int32(frame) and _is_int32(num) and _is_int32(den)):
            raise ValueError(f"frame and rate must be int32 values, got {frame!r}, {num!r}/{den!r}")
        if num <= 0 or den <= 0:
            raise ValueError(f"frame rate must be positive, got {num}/{den}")
        if not 0.0 <= sub < 1.0:
            raise ValueError(f"subframe must be in [0, 1), got {sub!r}")
        setattr_ = object.__setattr__
        setattr_(self, "frame", int(frame))
        setattr_(self, "rate_num", int(num))
        setattr_(self, "rate_den", int(den))
        setattr_(self, "subframe", min(_to_f32(sub), _ONE_BELOW))

    @classmethod
    def from_wire(cls, frame: int, subframe: float, rate_num: int, rate_den: int) -> FrameTime:
        """Fast path for fields unpacked from a packet (already int32 and float32)."""
        if rate_num <= 0 or rate_den <= 0 or not 0.0 <= subframe < 1.0:
            raise ValueError(f"bad frame time {frame} + {subframe!r} at {rate_num}/{rate_den}")
        self = object.__new__(cls)
        self.__dict__.update(frame=frame, subframe=subframe, rate_num=rate_num, rate_den=rate_den)
        return self

    @property
    def rate(self) -> float:
        """Frames per second as a float."""
        return self.rate_num / self.rate_den

    @classmethod
    def from_seconds(cls, seconds: float, rate_num: int = 60, rate_den: int = 1) -> FrameTime:
        """Frame time of ``seconds`` (usually seconds since midnight) at the given rate."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        frames = seconds * rate_num / rate_den
        whole = math.floor(frames)
        return cls(whole, min(frames - whole, _ONE_BELOW), rate_num, rate_den)

    def to_seconds(self) -> float:
        """Seconds (since midnight, for timecode of day) at this frame time."""
        return (self.frame + self.subframe) * self.rate_den / self.rate_num

    @classmethod
    def now(cls, rate_num: int = 60, rate_den: int = 1) -> FrameTime:
        """Timecode of day now, in local time, as the app stamps its packets."""
        now = _dt.datetime.now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls.from_seconds((now - midnight).total_seconds(), rate_num, rate_den)

    def advance(self, frames: int = 1) -> FrameTime:
        """The same subframe ``frames`` frames later (consecutive packets advance by one),
        wrapping at midnight."""
        per_day = round(DAY_S * self.rate_num / self.rate_den)
        frame = (self.frame + frames) % per_day
        return FrameTime(frame, self.subframe, self.rate_num, self.rate_den)

    def to_timecode(self) -> str:
        """``HH:MM:SS:FF.fff`` at the nominal integer rate, as in Live Link Face CSV files."""
        fps = max(1, round(self.rate))
        if self.frame < 0:
            raise ValueError(f"cannot write a negative frame {self.frame} as a timecode")
        seconds, ff = divmod(self.frame, fps)
        minutes, ss = divmod(seconds, 60)
        hh, mm = divmod(minutes, 60)
        millis = min(int(self.subframe * 1000 + 0.5), 999)
        return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}.{millis:03d}"

    @classmethod
    def from_timecode(cls, text: str, rate_num: int = 60, rate_den: int = 1) -> FrameTime:
        """Parse ``HH:MM:SS:FF[.fff]`` (``;`` before FF also accepted) at the given rate."""
        match = _TIMECODE.match(text)
        if not match:
            raise ValueError(f"not a timecode HH:MM:SS:FF.fff: {text!r}")
        hh, mm, ss, ff = (int(g) for g in match.groups()[:4])
        fps = max(1, round(rate_num / rate_den))
        if mm >= 60 or ss >= 60 or ff >= fps:
            raise ValueError(f"timecode field out of range at {fps} fps: {text!r}")
        sub = float("0." + match.group(5)) if match.group(5) else 0.0
        return cls(((hh * 60 + mm) * 60 + ss) * fps + ff, sub, rate_num, rate_den)
