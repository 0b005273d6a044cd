"""Recorded human speech for the lipsync benchmark: PocketSphinx's test recordings, aligned.

Every other source the benchmark has is synthetic. PocketSphinx's source release
(``pocketsphinx-5.1.1.tar.gz`` from PyPI, fetched once and checked against its SHA-256)
carries a few recordings of real people with their transcripts: five sentences of a LibriVox
reading of *Sense and Sensibility* (public domain; a 64 kbit/s MP3 turned back into 16 kHz
audio), five card names said by one speaker, "go forward ten meters" and a digit string
from CMU's test set (BSD-2), about 40 s from three or four voices, all 16 kHz. The model never
trained on any of it. ``forced_align.pocketsphinx_phones`` aligns each transcript to its
audio (10 ms steps; PocketSphinx's acoustic model was trained on recorded speech) and its
phones become espeak-ng mnemonics for the benchmark's rules, with two phones left
unscored: ARPAbet's ``AH`` is both STRUT (open) and schwa, which the aligner's dictionary
does not tell apart (no stress marks), so it is named as a schwa; and a phone a recording
starts with, which has no silence before it to bound it, is left out.

Training stack only (``pip install -e '.[train]'``): writes
``benchmarks/.cache/lipsync/recorded-NN.wav`` and ``.json``, which ``python
benchmarks/lipsync.py --source recorded`` then scores. Run: ``python -m training.recorded``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf

from training.forced_align import Phone, lipsync, pocketsphinx_phones

SDIST_URL = (
    "https://files.pythonhosted.org/packages/61/e7/"
    "13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/pocketsphinx-5.1.1.tar.gz"
)
SDIST_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
SDIST = Path(__file__).resolve().parent / ".cache" / "pocketsphinx-5.1.1.tar.gz"
DATA = "pocketsphinx-5.1.1/test/data/"
LIBRIVOX = "librivox/sense_and_sensibility_01_austen_64kb-0{}"
SAMPLE_RATE = 16000
# Recordings (under DATA) and what is said in them: a string, or the member holding it.
RECORDINGS: tuple[tuple[str, str], ...] = (
    *(
        (LIBRIVOX.format(n) + ".wav", LIBRIVOX.format(n) + ".txt")
        for n in (870, 880, 890, 920, 930)
    ),
    ("cards/001.wav", "ten of clubs"),
    ("cards/002.wav", "four queen of clubs"),
    ("cards/003.wav", "seven of clubs"),
    ("cards/004.wav", "five five"),
    ("cards/005.wav", "eight of spades four of clubs seven of hearts"),
    ("goforward.raw", "go forward ten meters"),
    ("tidigits/dhd.2934z.raw", "two nine three four zero"),
)


def fetch(path: Path = SDIST) -> Path:
    """The source release, downloaded once; a file that does not match the hash is refused."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_suffix(".part")
        try:
            with urllib.request.urlopen(SDIST_URL, timeout=60) as r, part.open("wb") as f:
                f.write(r.read())
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise SystemExit(
                f"cannot download {SDIST_URL}: {exc}; put the file at {path}"
            ) from None
        part.rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {SDIST_SHA256}; delete it and rerun")
    return path


def read_audio(data: bytes, name: str) -> np.ndarray:
    """float32 mono at SAMPLE_RATE from a member: headerless 16-bit PCM (.raw) or a WAV."""
    if name.endswith(".raw"):
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0
    audio, sr = sf.read(io.BytesIO(data), dtype="float32")
    if sr != SAMPLE_RATE or audio.ndim != 1:
        raise ValueError(f"{name}: expected mono {SAMPLE_RATE} Hz, got {sr} Hz {audio.shape}")
    return audio


def to_mnemonics(aligned: list[Phone]) -> list[Phone]:
    """The aligner's ARPAbet phones named as the benchmark's rules name them (``SIL`` a
    pause, ``AH`` a schwa: unscored); a phone at time 0 (no silence before it) left out."""
    out = []
    for name, start, end in aligned:
        if start == 0.0 and name != "SIL":
            continue
        mnemonic = {"SIL": "_", "AH": "@"}.get(name) or lipsync.ARPABET.get(name.lower())
        out.append((mnemonic or name.lower(), start, end))
    return out


def member(tar: tarfile.TarFile, name: str) -> bytes:
    """The bytes of file ``name`` under DATA."""
    handle = tar.extractfile(DATA + name)
    if handle is None:
        raise SystemExit(f"{tar.name}: no file {DATA + name}")
    return handle.read()


def transcript(tar: tarfile.TarFile, said: str) -> str:
    """``said`` itself, or the text of the member it names."""
    return member(tar, said).decode().strip() if said.endswith(".txt") else said


def main() -> None:
    lipsync.CACHE.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fetch()) as tar:
        for idx, (name, said) in enumerate(RECORDINGS):
            audio = read_audio(member(tar, name), name)
            text = re.sub(r"\s+", " ", transcript(tar, said))
            phones = to_mnemonics(pocketsphinx_phones(audio, SAMPLE_RATE, text, pauses=True))
            stem = save(idx, audio, phones)
            print(f"{stem.name}: {len(audio) / SAMPLE_RATE:.1f} s, {len(phones)} phones: {text}")


def save(idx: int, audio: np.ndarray, phones: list[Phone]) -> Path:
    """Write recording ``idx`` where the benchmark's ``sources`` looks for it."""
    stem = lipsync.CACHE / f"recorded-{idx:02d}"
    sf.write(stem.with_suffix(".wav"), audio, SAMPLE_RATE, subtype="FLOAT")
    stem.with_suffix(".json").write_text(json.dumps(phones))
    return stem


if __name__ == "__main__":
    main()
