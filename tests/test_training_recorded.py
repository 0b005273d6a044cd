"""The recorded-speech source of the lipsync benchmark (training/recorded.py): how aligned
ARPAbet phones are named for the benchmark's rules, how recordings are read, and that a
source release that is not the pinned one is refused."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.forced_align import lipsync
from training.recorded import SAMPLE_RATE, fetch, read_audio, save, to_mnemonics


def test_aligned_phones_are_named_as_the_benchmark_scores_them() -> None:
    aligned = [
        ("SIL", 0.0, 0.2), ("HH", 0.2, 0.25), ("AH", 0.25, 0.3), ("P", 0.3, 0.4),
        ("AO", 0.4, 0.5), ("IY", 0.5, 0.6), ("F", 0.6, 0.7), ("SIL", 0.7, 1.0),
    ]  # fmt: skip
    names = [p[0] for p in to_mnemonics(aligned)]
    # AH may be a schwa, so it is not judged as an open vowel; p is judged as a closure
    assert names == ["_", "hh", "@", "m", "O:", "i:", "f", "_"]
    assert [p[1:] for p in to_mnemonics(aligned)] == [p[1:] for p in aligned]


def test_a_phone_the_recording_starts_with_is_not_scored() -> None:
    aligned = [("F", 0.0, 0.29), ("AO", 0.29, 0.46), ("R", 0.46, 0.63)]
    assert [p[0] for p in to_mnemonics(aligned)] == ["O:", "r"]


def test_raw_recordings_are_16_bit_little_endian_pcm() -> None:
    pcm = np.array([0, 16384, -32768, 32767], "<i2")
    assert read_audio(pcm.tobytes(), "x.raw").tolist() == [0.0, 0.5, -1.0, 32767 / 32768]


def test_wav_recordings_must_be_mono_at_the_aligners_rate() -> None:
    tone = np.sin(np.arange(1600) / 5.0).astype(np.float32) * 0.5
    for rate, ok in ((SAMPLE_RATE, True), (8000, False)):
        buf = io.BytesIO()
        sf.write(buf, tone, rate, format="WAV", subtype="PCM_16")
        if ok:
            assert np.allclose(read_audio(buf.getvalue(), "x.wav"), tone, atol=1e-4)
        else:
            with pytest.raises(ValueError, match="expected mono 16000 Hz"):
                read_audio(buf.getvalue(), "x.wav")


def test_a_source_release_with_another_hash_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "pocketsphinx-5.1.1.tar.gz"
    fake.write_bytes(b"not the release")
    with pytest.raises(SystemExit, match="SHA-256"):
        fetch(fake)


def test_saved_recordings_become_the_benchmarks_recorded_source(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(lipsync, "CACHE", tmp_path)
    audio = np.zeros(SAMPLE_RATE, np.float32)
    phones = to_mnemonics([("SIL", 0.0, 0.4), ("M", 0.4, 0.5), ("AA", 0.5, 0.7), ("SIL", 0.7, 1.0)])
    for idx in (1, 0):
        save(idx, audio, phones)
    loaders = lipsync.sources(1)[lipsync.RECORDED]
    assert len(loaders) == 2
    got_audio, rate, got_phones = loaders[0]()
    assert rate == SAMPLE_RATE and np.array_equal(got_audio, audio)
    assert got_phones == [tuple(p) for p in phones]
    # a still face: the pause is at rest, the closure shut, the open vowel missed
    verdicts = lipsync.score(np.zeros((60, 61)), got_phones)
    assert verdicts["silence"] == [True, True] and verdicts["bilabial"] == [True]
    assert verdicts["open"] == [False]
