"""Audio sources: files via soundfile, WAV and raw PCM streams as on stdin."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from nsplayer.audio.sources import open_source, open_wav_stream, to_mono
from nsplayer.errors import NsplayerError


def read_all(source, block=1000) -> np.ndarray:
    blocks = list(source.blocks(block))
    assert all(b.dtype == np.float32 and b.ndim == 2 and 0 < len(b) <= block for b in blocks)
    return np.concatenate(blocks) if blocks else np.zeros((0, source.channels), np.float32)


def tone(n: int, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / 16000
    return np.stack([0.5 * np.sin(2 * np.pi * 220 * (c + 1) * t) for c in range(channels)], 1)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_file_streams_in_blocks(tmp_path, fmt):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, tone(16000, 2), 16000, format=fmt)
    source = open_source(path)
    assert (source.sample_rate, source.channels, source.frames) == (16000, 2, 16000)
    data = read_all(source)
    assert data.shape == (16000, 2)
    if fmt != "OGG":
        assert np.abs(data - tone(16000, 2)).max() < 1e-3
    source.close()


def test_missing_file(tmp_path):
    with pytest.raises(NsplayerError, match="no such file"):
        open_source(tmp_path / "nope.wav")


def test_text_file_named_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    with pytest.raises(NsplayerError, match="not an audio file"):
        open_source(path)


def test_empty_audio_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1)), 16000)
    with pytest.raises(NsplayerError, match="no audio"):
        open_source(path)


def test_directory(tmp_path):
    with pytest.raises(NsplayerError, match="directory"):
        open_source(tmp_path)


def test_zero_byte_file_says_empty(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    with pytest.raises(NsplayerError, match=r"a.wav: the file is empty \(0 bytes\)"):
        open_source(tmp_path / "a.wav")


@pytest.mark.parametrize("name", ["shapes.csv", "shapes.JSON", "shapes.npy"])
def test_a_take_given_as_audio_hints_at_swapped_arguments(tmp_path, name):
    (tmp_path / name).write_text("Timecode,BlendshapeCount,EyeBlinkLeft\n")
    with pytest.raises(NsplayerError, match="not audio — arguments swapped"):
        open_source(tmp_path / name)


def wav_header(rate=16000, channels=1, bits=16, tag=1, data_len=0xFFFFFFFF, extra=b"") -> bytes:
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8, 4, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + extra
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_len)
    )


@pytest.mark.parametrize("data_len", [0, 0xFFFFFFFF, 0x7FFFF024])
def test_wav_stream_of_unknown_length(data_len):
    pcm = (tone(800) * 32767).astype("<i2")
    stream = io.BytesIO(wav_header(data_len=data_len) + pcm.tobytes())
    source = open_source("-", stdin=stream)
    assert source.frames is None and source.sample_rate == 16000
    assert np.allclose(read_all(source)[:, 0], pcm[:, 0] / 32768)


def test_wav_stream_stops_at_declared_length_and_skips_chunks():
    pcm = (tone(500) * 32767).astype("<i2")
    extra = b"LIST" + struct.pack("<I", 5) + b"abcde\x00"  # odd size: padded
    body = wav_header(data_len=pcm.nbytes, extra=extra) + pcm.tobytes() + b"junkjunk"
    data = read_all(open_source("-", stdin=io.BytesIO(body)), block=64)
    assert len(data) == 500


def test_wav_stream_float_and_extensible():
    x = tone(300, 2).astype("<f4")
    source = open_wav_stream(io.BytesIO(wav_header(channels=2, bits=32, tag=3) + x.tobytes()))
    assert np.array_equal(read_all(source), x)
    guid_tail = struct.pack("<HHI", 22, 32, 3) + struct.pack("<H", 3) + b"\x00" * 14
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 8000, 32000, 4, 32) + guid_tail
    body = b"RIFF\0\0\0\0WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data\0\0\0\0"
    mono = x[:, :1]
    assert np.array_equal(read_all(open_wav_stream(io.BytesIO(body + mono.tobytes()))), mono)


@pytest.mark.parametrize(
    "body, match",
    [
        (b"", "empty"),
        (b"hello, this is text, not audio", "not a WAV"),
        (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "no 'fmt '"),
        (b"RIFF\0\0\0\0WAVEfmt ", "ended before"),
    ],
)
def test_bad_wav_streams(body, match):
    with pytest.raises(NsplayerError, match=match):
        open_source("-", stdin=io.BytesIO(body))


@given(
    data=st.binary(max_size=200),
    rate=st.integers(1, 96000),
    bits=st.sampled_from([8, 12, 16, 24, 32, 64]),
    tag=st.sampled_from([1, 3, 0xFFFE, 7]),
)
@settings(max_examples=200, deadline=None)
def test_wav_parser_never_fails_but_with_a_clear_error(data, rate, bits, tag):
    for body in (data, wav_header(rate=rate, bits=bits, tag=tag) + data, data[:40]):
        try:
            source = open_wav_stream(io.BytesIO(body))
            read_all(source, block=7)
        except NsplayerError:
            pass


@given(
    n=st.integers(1, 400),
    channels=st.integers(1, 3),
    subtype=st.sampled_from(
        ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"]
    ),
    block=st.integers(1, 300),
)
@settings(max_examples=60, deadline=None)
def test_wav_stream_matches_soundfile(n, channels, subtype, block):
    buf = io.BytesIO()
    rng = np.random.default_rng(n)
    sf.write(buf, rng.uniform(-1, 1, (n, channels)), 22050, subtype=subtype, format="WAV")
    expected, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="float32", always_2d=True)
    got = read_all(open_wav_stream(io.BytesIO(buf.getvalue())), block=block)
    assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_stdout_stream():
    wav = subprocess.run(["espeak-ng", "--stdout", "hello"], capture_output=True, check=True)
    source = open_source("-", stdin=io.BytesIO(wav.stdout))
    data = read_all(source)
    assert source.sample_rate == 22050 and len(data) > 2000 and np.abs(data).max() > 0.05


@pytest.mark.parametrize("subtype", ["PCM_24", "ULAW", "ALAW"])
def test_wav_stream_takes_what_the_same_file_takes(tmp_path, subtype):
    path = tmp_path / "a.wav"
    sf.write(path, tone(2000, 2), 16000, subtype=subtype)
    from_file = read_all(open_source(path))
    from_stdin = read_all(open_source("-", stdin=io.BytesIO(path.read_bytes())), block=333)
    assert np.array_equal(from_stdin, from_file)


def test_raw_s24le_matches_the_24_bit_file(tmp_path):
    path = tmp_path / "a.raw"
    sf.write(path, tone(500, 2), 16000, subtype="PCM_24", format="RAW", endian="LITTLE")
    expected, _ = sf.read(
        path, samplerate=16000, channels=2, subtype="PCM_24", format="RAW", dtype="float32"
    )
    stdin = io.BytesIO(path.read_bytes() + b"\x01")  # a trailing partial sample is dropped
    source = open_source("-", True, 16000, 2, "s24le", stdin=stdin)
    assert np.array_equal(read_all(source, block=7), expected)


@pytest.mark.parametrize(
    "fmt, dtype, scale", [("s16le", "<i2", 32768), ("s32le", "<i4", 2**31), ("f32le", "<f4", 1)]
)
def test_raw_formats(fmt, dtype, scale):
    x = tone(333, 2)
    raw = (x * (scale - 1 if scale > 1 else 1)).astype(dtype)
    source = open_source(
        "-", raw=True, rate=16000, channels=2, sample_format=fmt, stdin=io.BytesIO(raw.tobytes())
    )
    assert np.allclose(read_all(source, block=50), x, atol=1e-4)


def test_raw_drops_a_trailing_partial_sample():
    data = read_all(open_source("-", raw=True, rate=8000, stdin=io.BytesIO(b"\x00\x40" * 5 + b"x")))
    assert data.shape == (5, 1) and np.allclose(data, 0.5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "--rate"),
        ({"rate": 16000, "channels": 0}, "--channels"),
        ({"rate": 4000}, "--rate must be a sample rate in Hz in 8000..384000"),
        ({"rate": 16000, "channels": 33}, "--channels must be between 1 and 32"),
        ({"rate": 16000, "sample_format": "u8"}, "--sample-format"),
    ],
)
def test_bad_raw_parameters(kwargs, match):
    with pytest.raises(NsplayerError, match=match):
        open_source("-", raw=True, stdin=io.BytesIO(b""), **kwargs)


def test_raw_for_a_file_is_refused(tmp_path):
    with pytest.raises(NsplayerError, match="stdin only"):
        open_source(tmp_path / "a.wav", raw=True, rate=16000)


def test_to_mono():
    x = np.array([[1.0, 0.0], [0.5, 0.5]], np.float32)
    assert np.allclose(to_mono(x), [0.5, 0.5])
    assert to_mono(x[:, :1]).shape == (2,)
