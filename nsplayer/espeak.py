"""Speech with phoneme timings from libespeak-ng, through ctypes: ground truth for lipsync.

espeak-ng's command line gives audio or phoneme strings, but not *when* each phoneme is
heard. Its C library does: initialised with ``espeakINITIALIZE_PHONEME_EVENTS`` in
synchronous mode, the synth callback receives the samples and, alongside them, events of
type ``espeakEVENT_PHONEME`` whose ``id.string`` is the phoneme mnemonic (``p``, ``u:``,
``aI``...) and whose ``audio_position`` is its start in ms. Not used by the player: the lipsync
benchmark, the model tests and the learned model's training corpus share this one binding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
EVENT_PHONEME = 7
EVENT_LIST_TERMINATED = 0
POS_CHARACTER = 1
CHARS_UTF8 = 1
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Phoneme:
    """One phoneme: espeak mnemonic and its start time in seconds (stops: their release)."""

    name: str
    start: float


@dataclass(frozen=True)
class Utterance:
    """Synthesized speech: mono float32 samples, their rate, and the timed phonemes."""

    audio: np.ndarray
    sample_rate: int
    phonemes: tuple[Phoneme, ...]


class _Espeak:
    """The process-wide libespeak-ng instance (the library keeps global state)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = ctypes.CDLL(name)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        self.sample_rate = self.lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS, 0, None, INITIALIZE_PHONEME_EVENTS
        )
        if self.sample_rate <= 0:
            raise OSError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._events: list[Phoneme] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, numsamples: int, events) -> int:
        if numsamples > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == EVENT_PHONEME:
                name = ev.id.string.decode("utf-8", "replace")
                self._events.append(Phoneme(name, ev.audio_position / 1000.0))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> Utterance:
        with self.lock:
            self._chunks, self._events = [], []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"espeak-ng has no voice {voice!r}")
            self.lib.espeak_SetParameter(PARAM_RATE, rate, 0)
            self.lib.espeak_SetParameter(PARAM_PITCH, pitch, 0)
            data = text.encode("utf-8") + b"\0"
            buf = ctypes.create_string_buffer(data)
            self.lib.espeak_Synth(buf, len(data), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return Utterance(
                (pcm.astype(np.float32) / 32768.0), self.sample_rate, tuple(self._events)
            )


_instance: _Espeak | None = None


def available() -> bool:
    """True when libespeak-ng can be loaded here."""
    try:
        _engine()
    except OSError:
        return False
    return True


def _engine() -> _Espeak:
    global _instance
    if _instance is None:
        _instance = _Espeak()
    return _instance


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> Utterance:
    """Speak ``text`` with an espeak-ng voice (``"en-us"``, ``"en+f3"``...), rate in wpm."""
    return _engine().synth(text, voice, rate, pitch)
