"""Audio sources: files and stdin, streamed as float32 (n, channels) blocks.

Nothing here loads a whole input: files are read block by block through soundfile,
and stdin is parsed as it arrives. libsndfile cannot open a WAV from a pipe (it
seeks to find the data chunk), so WAV streams are parsed here, including the
0 / 0xFFFFFFFF "unknown length" that streaming writers such as
``espeak-ng --stdout`` put in the header.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import soundfile as sf

from nsplayer.audio import MAX_RATE, MIN_RATE
from nsplayer.errors import NsplayerError

# Raw PCM formats for --raw --sample-format (name -> sample type; "<i3" is packed 24-bit).
SAMPLE_FORMATS = {"s16le": "<i2", "s24le": "<i3", "s32le": "<i4", "f32le": "<f4"}
MAX_CHANNELS = 32
MAX_AUDIO_S = 24 * 3600  # a header that claims more is lying (a 42-byte FLAC can claim 2**36)
_UNKNOWN_LENGTHS = (0, 0xFFFFFFFF)
_STREAMING_LENGTH = 0x7FFF0000  # writers that cannot seek put "huge" here (espeak: 0x7ffff024)
_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE
_NOT_AUDIO = {".csv": "a CSV", ".json": "a JSON file", ".npy": "a .npy array"}


class AudioSource:
    """A stream of PCM blocks with a known rate and channel count.

    ``frames`` is the total length in samples when known (files), else None (streams).
    Block k's first sample index is the sum of the lengths of the blocks before it.
    """

    sample_rate: int
    channels: int
    frames: int | None
    name: str

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        """Yield float32 (n, channels) blocks of at most ``size`` samples, n > 0."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file or stream."""


def check_format(name: str, rate: int, channels: int, frames: int | None = None) -> None:
    """Refuse a header's rate, channel count or length before anything is sized by them:
    blocks are one second long, so a 60-byte WAV claiming 1 GHz would ask for gigabytes."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise NsplayerError(
            f"{name}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz — "
            "a damaged header, or resample it with sox/ffmpeg"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise NsplayerError(f"{name}: {channels} channels (1..{MAX_CHANNELS} supported)")
    if frames is not None and frames > MAX_AUDIO_S * rate:
        hours = frames / rate / 3600
        raise NsplayerError(
            f"{name}: the header claims {hours:.0f} hours of audio (at most "
            f"{MAX_AUDIO_S // 3600} h) — a damaged file?"
        )


def _open_sound_file(path: Path) -> sf.SoundFile:
    if not path.exists():
        raise NsplayerError(f"{path}: no such file — check the path")
    if path.is_dir():
        raise NsplayerError(f"{path} is a directory — give an audio file")
    if path.stat().st_size == 0:
        raise NsplayerError(f"{path}: the file is empty (0 bytes)")
    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        what = _NOT_AUDIO.get(path.suffix.lower())
        if what:
            raise NsplayerError(
                f"{path} is {what}, not audio — arguments swapped? (audio comes first)"
            ) from None
        raise NsplayerError(
            f"{path}: not an audio file soundfile can read ({exc}) — "
            "use WAV, FLAC or OGG, or convert it with sox/ffmpeg"
        ) from None
    except OSError as exc:
        raise NsplayerError(f"{path}: cannot open ({exc.strerror or exc})") from None


class FileSource(AudioSource):
    """Any file libsndfile reads (WAV, FLAC, OGG, ...), streamed from disk."""

    def __init__(self, path: Path) -> None:
        self._file = _open_sound_file(path)
        self.name = str(path)
        self.sample_rate = self._file.samplerate
        self.channels = self._file.channels
        self.frames = self._file.frames
        try:
            check_format(self.name, self.sample_rate, self.channels, self.frames)
            if not self.frames:
                raise NsplayerError(f"{path}: the file contains no audio samples")
        except NsplayerError:
            self._file.close()
            raise

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        for block in self._file.blocks(size, dtype="float32", always_2d=True):
            if len(block):
                yield block

    def close(self) -> None:
        self._file.close()


class StreamSource(AudioSource):
    """Interleaved PCM from a byte stream (stdin), delivered as soon as bytes arrive."""

    def __init__(
        self,
        stream: BinaryIO,
        sample_rate: int,
        channels: int,
        dtype: str,
        *,
        name: str = "<stdin>",
        limit: int | None = None,
        scale: float | None = None,
        offset: float = 0.0,
    ) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.channels = channels
        self.frames = None
        self._stream = stream
        itemsize, self._decode = _decoder(dtype, scale, offset)
        self._frame_bytes = itemsize * channels
        self._limit = limit  # bytes of audio data left, None = until EOF
        self._pending = b""

    def _read(self, n: int) -> bytes:
        """Whatever is available, up to n bytes (waits only when nothing is)."""
        read1 = getattr(self._stream, "read1", None)
        return read1(n) if read1 is not None else self._stream.read(n)

    def blocks(self, size: int) -> Iterator[np.ndarray]:
        while True:
            want = size * self._frame_bytes
            if self._limit is not None:
                want = min(want, self._limit)
            if want < self._frame_bytes:
                return
            missing = want - len(self._pending)
            data = self._read(missing) if missing > 0 else b""
            buf = self._pending + data
            usable = min(len(buf), want)
            usable -= usable % self._frame_bytes
            if usable:
                yield self._convert(buf[:usable])
            self._pending = buf[usable:]
            if self._limit is not None:
                self._limit -= usable
            if missing > 0 and not data:
                return  # EOF; a trailing partial sample frame is dropped

    def _convert(self, raw: bytes) -> np.ndarray:
        return self._decode(raw).reshape(-1, self.channels)

    def close(self) -> None:
        """stdin belongs to the process: leave it open."""


def _g711_table(law: str) -> np.ndarray:
    """float32 value of each of the 256 µ-law or A-law bytes (ITU-T G.711, as libsndfile)."""
    byte = np.arange(256, dtype=np.int32)
    if law == "ulaw":
        code = ~byte & 0xFF
        seg, mantissa = (code >> 4) & 7, code & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << seg) - 0x84
        negative = code & 0x80 != 0
    else:
        code = byte ^ 0x55
        seg, mantissa = (code >> 4) & 7, code & 0x0F
        base = (mantissa << 4) + np.where(seg == 0, 8, 0x108)
        magnitude = base << np.maximum(seg - 1, 0)
        negative = code & 0x80 == 0
    return (np.where(negative, -magnitude, magnitude) / 32768.0).astype(np.float32)


_G711 = {"ulaw": _g711_table("ulaw"), "alaw": _g711_table("alaw")}


def _decoder(
    dtype: str, scale: float | None, offset: float
) -> tuple[int, Callable[[bytes], np.ndarray]]:
    """Bytes per sample, and raw bytes -> float32 samples, for one sample format."""
    if dtype in _G711:
        table = _G711[dtype]
        return 1, lambda raw: table[np.frombuffer(raw, np.uint8)]
    if dtype == "<i3":  # packed 24-bit: widen to the top of an int32

        def s24(raw: bytes) -> np.ndarray:
            packed = np.frombuffer(raw, np.uint8).reshape(-1, 3)
            wide = np.zeros((len(packed), 4), np.uint8)
            wide[:, 1:] = packed
            return wide.view("<i4").ravel().astype(np.float32) * np.float32(2.0**-31)

        return 3, s24
    kind = np.dtype(dtype)
    if scale is None:
        scale = 1.0 if kind.kind == "f" else 1.0 / float(2 ** (8 * kind.itemsize - 1))

    def convert(raw: bytes) -> np.ndarray:
        samples = np.frombuffer(raw, dtype=kind)
        if kind.kind == "f":  # NaN/inf/huge values must never reach the sound card
            samples = np.clip(np.nan_to_num(samples, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        return (samples.astype(np.float32) - np.float32(offset)) * np.float32(scale)

    return kind.itemsize, convert


def _read_exact(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _wav_dtype(tag: int, bits: int) -> tuple[str, float | None, float]:
    """numpy dtype, scale and offset for a WAV sample format."""
    if tag == _FLOAT and bits in (32, 64):
        return (f"<f{bits // 8}", 1.0, 0.0)
    if tag == _PCM and bits == 8:
        return ("u1", 1.0 / 128, 128.0)
    if tag == _PCM and bits in (16, 24, 32):
        return (f"<i{bits // 8}", None, 0.0)
    if tag in (_ULAW, _ALAW) and bits == 8:
        return ("ulaw" if tag == _ULAW else "alaw", None, 0.0)
    raise NsplayerError(
        f"stdin WAV: unsupported sample format (tag {tag}, {bits} bits) — "
        "send 8/16/24/32-bit PCM, 32/64-bit float or µ-law/A-law, or use --raw"
    )


def open_wav_stream(stream: BinaryIO, name: str = "<stdin>") -> StreamSource:
    """Parse a RIFF/WAVE header from a non-seekable stream; samples follow as they arrive."""
    head = _read_exact(stream, 12)
    if not head:
        raise NsplayerError(f"{name}: no audio received (the input was empty)")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise NsplayerError(
            f"{name}: not a WAV stream — pipe WAV (e.g. espeak-ng --stdout), or raw PCM with "
            f"--raw --rate N --channels C --sample-format {'|'.join(SAMPLE_FORMATS)}"
        )
    fmt: tuple[int, int, int, int] | None = None
    while True:
        chunk = _read_exact(stream, 8)
        if len(chunk) < 8:
            raise NsplayerError(f"{name}: WAV stream ended before its 'data' chunk")
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            break
        body = _read_exact(stream, size + (size & 1))
        if cid == b"fmt ":
            if len(body) < 16:
                raise NsplayerError(f"{name}: WAV 'fmt ' chunk is truncated")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = (tag, channels, rate, bits)
    if fmt is None:
        raise NsplayerError(f"{name}: WAV stream has no 'fmt ' chunk before its data")
    tag, channels, rate, bits = fmt
    check_format(name, rate, channels)
    dtype, scale, offset = _wav_dtype(tag, bits)
    unknown = size in _UNKNOWN_LENGTHS or size >= _STREAMING_LENGTH
    return StreamSource(
        stream,
        rate,
        channels,
        dtype,
        name=name,
        limit=None if unknown else size,
        scale=scale,
        offset=offset,
    )


def _raw_source(
    stream: BinaryIO, rate: int | None, channels: int | None, sample_format: str | None
) -> StreamSource:
    if not rate:
        raise NsplayerError("--raw needs --rate N (the sample rate in Hz, e.g. 22050)")
    rate, channels = _format(rate, channels)
    sample_format = sample_format or "s16le"
    if sample_format not in SAMPLE_FORMATS:
        choices = "|".join(SAMPLE_FORMATS)
        raise NsplayerError(f"--sample-format must be {choices}, not {sample_format!r}")
    return StreamSource(stream, rate, channels, SAMPLE_FORMATS[sample_format])


def _format(rate: int, channels: int | None) -> tuple[int, int]:
    """A --rate and --channels pair checked for sense (channels default to 1)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise NsplayerError(
            f"--rate must be a sample rate in Hz in {MIN_RATE}..{MAX_RATE} (e.g. 22050), not {rate}"
        )
    channels = 1 if channels is None else channels
    if not 1 <= channels <= MAX_CHANNELS:
        raise NsplayerError(f"--channels must be between 1 and {MAX_CHANNELS}, not {channels}")
    return rate, channels


class StreamFormat(NamedTuple):
    """The format to open the sound output and the model with before a WAV stream's header
    arrives, so that the wait for a new output stream to play steadily overlaps with the
    wait for the input (the sink adopts the real format when the header comes)."""

    rate: int
    channels: int
    announced: bool  # by --rate/--channels (a mismatch deserves a line), else a guess


# The guess without --rate: most TTS engines write 22.05 kHz (espeak-ng, Piper); stereo
# keeps a stereo stream's channels, a mono one is copied to both.
GUESSED_STREAM = StreamFormat(22050, 2, announced=False)


def expected_format(
    path_or_dash: str | Path, raw: bool, rate: int | None, channels: int | None
) -> StreamFormat | None:
    """The format a WAV stream on stdin is announced to have by --rate/--channels, else
    ``GUESSED_STREAM``; None for files and raw PCM, whose format is known at once."""
    if str(path_or_dash) != "-" and (rate is not None or channels is not None):
        raise NsplayerError(
            "--rate and --channels apply to stdin only (a file's header says them): "
            "drop them, or use `nsplayer play - ...`"
        )
    if raw or str(path_or_dash) != "-":
        return None
    if rate is None:
        return GUESSED_STREAM
    return StreamFormat(*_format(rate, channels), announced=True)


def open_source(
    path_or_dash: str | Path,
    raw: bool = False,
    rate: int | None = None,
    channels: int | None = None,
    sample_format: str | None = None,
    *,
    stdin: BinaryIO | None = None,
) -> AudioSource:
    """Open a file, or stdin for ``-`` (WAV stream, or raw PCM with ``raw=True``)."""
    if sample_format is not None and not raw:
        raise NsplayerError("--sample-format is for raw PCM on stdin (--raw); a WAV says its own")
    if str(path_or_dash) == "-":
        stream = stdin if stdin is not None else _stdin()
        if raw:
            return _raw_source(stream, rate, channels, sample_format)
        return open_wav_stream(stream)
    if raw:
        raise NsplayerError("--raw applies to stdin only: use `nsplayer play - --raw ...`")
    return FileSource(Path(path_or_dash))


def _stdin() -> BinaryIO:
    """Standard input for audio; one line if it is closed or a terminal (where a newcomer's
    `nsplayer play -` would wait for ever)."""
    where = "closed" if sys.stdin is None else "a terminal" if sys.stdin.isatty() else None
    if where is not None:
        raise NsplayerError(
            f"- reads audio from stdin, which is {where} here — pipe audio in, e.g. "
            "espeak-ng --stdout 'Hello there' | nsplayer play -"
        )
    return sys.stdin.buffer


def to_mono(block: np.ndarray) -> np.ndarray:
    """Average the channels: models take mono."""
    return block[:, 0].copy() if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
