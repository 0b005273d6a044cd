"""Kokoro's phone timings checked against an independent forced aligner.

Kokoro's labels are its own predicted durations moved ``kokoro.LAG_S`` earlier, a shift
``kokoro lag`` measured with the shipped network (which learned from the other sources).
This check owes nothing to that network: PocketSphinx (CMU, BSD-2; its US English acoustic
model, trained on recorded speech, ships in the PyPI wheel) aligns each benchmark sentence's
text to the benchmark's Kokoro audio, its phones are matched to Kokoro's in order (vowel to
vowel, consonant to consonant, nearest in time), and the table gives how far apart the
matched phones start: a median near 0 means the lag correction is right, the spread what
the labels can be trusted to.

Training stack only (``pip install -e '.[train]'``); reads the files ``python -m
training.kokoro bench`` writes. Run: ``python -m training.forced_align``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np

from training.phones import ESPEAK_VOWEL_START

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import lipsync  # noqa: E402  (the benchmark's sentences, Kokoro files and resampler)

ARPABET_VOWELS = frozenset(
    ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
)
GAP_S = 0.15  # cost of leaving a phone unmatched: one that is 150 ms off is as bad
CLASS_S = 0.3  # cost added to a vowel matched with a consonant
Phone = tuple[str, float, float]


def _vowel(name: str, arpabet: bool) -> bool:
    return name in ARPABET_VOWELS if arpabet else name[:1] in ESPEAK_VOWEL_START


def match(kokoro: list[Phone], aligned: list[Phone]) -> list[tuple[int, int]]:
    """Pairs (index in ``kokoro``, index in ``aligned``) of the phones that correspond, in
    order: an edit-distance alignment whose cost is the start-time difference, more across
    vowel and consonant, and ``GAP_S`` per phone left out. Pauses must be removed first.
    ``kokoro`` is named in espeak-ng mnemonics, ``aligned`` in ARPAbet."""
    n, m = len(kokoro), len(aligned)
    cost = np.zeros((n + 1, m + 1))
    cost[:, 0], cost[0, :] = np.arange(n + 1) * GAP_S, np.arange(m + 1) * GAP_S
    move = np.zeros((n + 1, m + 1), np.int8)  # 0 pair, 1 skip a Kokoro phone, 2 skip aligned
    for i, (k_name, k_start, _) in enumerate(kokoro, 1):
        for j, (a_name, a_start, _) in enumerate(aligned, 1):
            differ = _vowel(k_name, False) != _vowel(a_name, True)
            pair = cost[i - 1, j - 1] + abs(k_start - a_start) + CLASS_S * differ
            options = (pair, cost[i - 1, j] + GAP_S, cost[i, j - 1] + GAP_S)
            move[i, j] = int(np.argmin(options))
            cost[i, j] = options[move[i, j]]
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if move[i, j] == 0:
            if _vowel(kokoro[i - 1][0], False) == _vowel(aligned[j - 1][0], True):
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif move[i, j] == 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def pocketsphinx_phones(
    audio: np.ndarray, sample_rate: int, text: str, pauses: bool = False
) -> list[Phone]:
    """``text`` forced-aligned to ``audio``: ARPAbet phones with start and end in seconds
    (10 ms steps); pauses (``SIL``) only with ``pauses``."""
    from pocketsphinx import Decoder

    x = lipsync.resample(audio, sample_rate, 16000) if sample_rate != 16000 else audio
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
    decoder = Decoder(samprate=16000, bestpath=False, loglevel="FATAL")
    decoder.set_align_text(re.sub(r"[^a-z' ]", "", text.lower()))
    for phase in ("words", "phones"):  # words first, then the phones within them
        if phase == "phones":
            decoder.set_alignment()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    return [
        (p.name, p.start / 100, (p.start + p.duration) / 100)
        for word in decoder.get_alignment()
        for p in word
        if pauses or p.name != "SIL"
    ]


def main() -> None:
    print("| Kokoro speakers | sentences | phones matched | start: aligned − Kokoro, median "
          "| middle half | beyond ±50 ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for label, pick in (("US trained on", 0), ("US held out", 1), ("UK", 2)):
        diffs, total, count = [], 0, 0
        for idx, sentence in enumerate(lipsync.SENTENCES):
            voices = lipsync.kokoro_voices(idx)[pick]
            for voice in voices if isinstance(voices, list) else [voices]:
                audio, sr, phones = lipsync.kokoro_utterance(idx, voice)
                spoken = [p for p in phones if p[0] not in lipsync.PAUSES]
                aligned = pocketsphinx_phones(audio, sr, sentence)
                pairs = match(spoken, aligned)
                diffs += [aligned[j][1] - spoken[i][1] for i, j in pairs]
                total, count = total + len(spoken), count + 1
        d = 1000 * np.array(diffs)
        q1, q3 = np.percentile(d, (25, 75))
        print(f"| {label} | {count} | {len(d) / total:.0%} | {np.median(d):+.0f} ms "
              f"| {q1:+.0f} to {q3:+.0f} ms | {np.mean(np.abs(d) > 50):.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
