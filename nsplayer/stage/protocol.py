"""The stage wire protocol: JSON control messages and PCM chunks, parsed and checked.

Every message is one JSON object with a ``type`` and flat fields, as in OpenAI Realtime or
HeyGen LiveAvatar, so integrators find what they know. Anything a client may get wrong
becomes a ``ProtocolError`` with a stable ``code`` and one line saying what to send instead;
the server answers it with an ``error`` event and goes on.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field

import numpy as np

from nsplayer.animation.emotion import emotion_weights
from nsplayer.errors import NsplayerError

MODES = ("enqueue", "interrupt", "replace")
ENCODINGS = {"pcm_s16le": np.dtype("<i2"), "pcm_f32le": np.dtype("<f4")}
MIN_RATE, MAX_RATE = 8000, 96000
MAX_CHANNELS = 8
MAX_CHUNK_S = 0.5  # audio per binary frame or utterance.audio
MAX_MESSAGE_BYTES = 1 << 20  # any WebSocket message: 0.5 s of 96 kHz f32 stereo in base64 fits
MAX_NAME = 64  # subject names and utterance ids
MAX_FADE_MS = 2000
DEFAULT_FADE_MS = 150


class ProtocolError(Exception):
    """Bad input from a client: answered with ``{"type": "error", "code", "message"}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def event(self, **extra: object) -> dict[str, object]:
        return {"type": "error", "code": self.code, "message": str(self), **extra}


@dataclass(frozen=True)
class AudioFormat:
    """How a connection's PCM chunks are encoded (``session.update``)."""

    sample_rate: int = 24000
    encoding: str = "pcm_s16le"
    channels: int = 1

    def decode(self, data: bytes) -> np.ndarray:
        """Mono float32 samples from one chunk; a chunk must hold whole frames."""
        dtype = ENCODINGS[self.encoding]
        frame = dtype.itemsize * self.channels
        if len(data) % frame:
            raise ProtocolError(
                "bad_audio",
                f"a chunk of {len(data)} bytes is not whole {self.encoding} frames of "
                f"{self.channels} channel(s) — send the format of session.update",
            )
        if len(data) // frame > MAX_CHUNK_S * self.sample_rate:
            raise ProtocolError(
                "too_large", f"audio chunks may hold at most {MAX_CHUNK_S * 1000:.0f} ms"
            )
        pcm = np.frombuffer(data, dtype).astype(np.float32).reshape(-1, self.channels)
        if dtype.kind == "i":
            pcm /= 32768.0
        pcm = pcm.mean(axis=1) if self.channels > 1 else pcm[:, 0]
        return np.nan_to_num(np.clip(pcm, -1.0, 1.0), nan=0.0)


@dataclass(frozen=True)
class SessionUpdate:
    format: AudioFormat


@dataclass(frozen=True)
class UtteranceStart:
    subject: str
    utterance_id: str
    mode: str = "enqueue"
    emotion: dict[str, float] | None = None


@dataclass(frozen=True)
class UtteranceAudio:
    utterance_id: str
    audio: bytes


@dataclass(frozen=True)
class UtteranceEnd:
    utterance_id: str


@dataclass(frozen=True)
class Interrupt:
    subject: str
    utterance_id: str | None = None
    fade_ms: float = DEFAULT_FADE_MS
    clear_queue: bool = True


@dataclass(frozen=True)
class ExpressionSet:
    subject: str
    emotion: dict[str, float] = field(default_factory=dict)


Message = SessionUpdate | UtteranceStart | UtteranceAudio | UtteranceEnd | Interrupt | ExpressionSet


def parse(text: str | bytes) -> Message:
    """One client message from its JSON text; ProtocolError for anything else."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError("too_large", f"messages may be at most {MAX_MESSAGE_BYTES} bytes")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("bad_json", "not a JSON message — send one JSON object") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad_json", "a message must be a JSON object with a type")
    kind = obj.get("type")
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise ProtocolError(
            "unknown_type",
            f"unknown message type {_short(kind)} — use one of: {', '.join(_READERS)}",
        )
    return reader(obj)


def subject_name(value: object) -> str:
    """A subject name as UE shows it: 1-64 printable characters."""
    return _name(value, "subject")


def _session(obj: dict) -> SessionUpdate:
    rate = obj.get("sample_rate", 24000)
    if not _is_int(rate) or not MIN_RATE <= rate <= MAX_RATE:
        raise ProtocolError(
            "bad_field",
            f"sample_rate must be an integer {MIN_RATE}..{MAX_RATE}, not {_short(rate)}",
        )
    encoding = obj.get("encoding", "pcm_s16le")
    if not isinstance(encoding, str) or encoding not in ENCODINGS:  # {} or [] are unhashable
        raise ProtocolError(
            "bad_field", f"encoding must be {' or '.join(ENCODINGS)}, not {_short(encoding)}"
        )
    channels = obj.get("channels", 1)
    if not _is_int(channels) or not 1 <= channels <= MAX_CHANNELS:
        raise ProtocolError(
            "bad_field", f"channels must be an integer 1..{MAX_CHANNELS}, not {_short(channels)}"
        )
    return SessionUpdate(AudioFormat(rate, encoding, channels))


def _start(obj: dict) -> UtteranceStart:
    mode = obj.get("mode", "enqueue")
    if mode not in MODES:
        raise ProtocolError(
            "bad_field", f"mode must be one of {', '.join(MODES)}, not {_short(mode)}"
        )
    emotion = obj.get("emotion")
    return UtteranceStart(
        subject_name(obj.get("subject")),
        _name(obj.get("utterance_id"), "utterance_id"),
        mode,
        None if emotion is None else _emotion(emotion),
    )


def _audio(obj: dict) -> UtteranceAudio:
    data = obj.get("audio_b64")
    if not isinstance(data, str):
        raise ProtocolError("bad_field", "audio_b64 must be a base64 string of PCM")
    try:
        audio = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_field", "audio_b64 is not valid base64") from None
    return UtteranceAudio(_name(obj.get("utterance_id"), "utterance_id"), audio)


def _end(obj: dict) -> UtteranceEnd:
    return UtteranceEnd(_name(obj.get("utterance_id"), "utterance_id"))


def _interrupt(obj: dict) -> Interrupt:
    uid = obj.get("utterance_id")
    fade = obj.get("fade_ms", DEFAULT_FADE_MS)
    if not _is_number(fade) or not 0 <= fade <= MAX_FADE_MS:
        raise ProtocolError("bad_field", f"fade_ms must be a number 0..{MAX_FADE_MS}")
    clear = obj.get("clear_queue", True)
    if not isinstance(clear, bool):
        raise ProtocolError("bad_field", "clear_queue must be true or false")
    return Interrupt(
        subject_name(obj.get("subject")),
        None if uid is None else _name(uid, "utterance_id"),
        float(fade),
        clear,
    )


def _expression(obj: dict) -> ExpressionSet:
    return ExpressionSet(subject_name(obj.get("subject")), _emotion(obj.get("emotion")))


_READERS = {
    "session.update": _session,
    "utterance.start": _start,
    "utterance.audio": _audio,
    "utterance.end": _end,
    "interrupt": _interrupt,
    "expression.set": _expression,
}


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or not value.isprintable():
        raise ProtocolError(
            "bad_field", f"{what} must be 1-{MAX_NAME} printable characters, not {_short(value)}"
        )
    return value


def _emotion(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ProtocolError("bad_field", 'emotion must be an object like {"happy": 0.4}')
    try:
        emotion_weights(value)
    except NsplayerError as exc:
        raise ProtocolError("bad_field", str(exc)) from None
    return {str(k).strip().lower(): float(v) for k, v in value.items()}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _short(value: object) -> str:
    text = (
        json.dumps(value) if isinstance(value, str | int | float | None) else type(value).__name__
    )
    return text if len(text) <= 40 else text[:37] + "..."
