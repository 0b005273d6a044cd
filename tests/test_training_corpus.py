"""The training corpus's job list (training/corpus.py's ``jobs``): what the learned model may
hear in training, and that the recipes' corpora are built from the same utterances."""

from __future__ import annotations

import sys
from pathlib import Path

from training import kokoro
from training.corpus import HELD_OUT, MIX_POOL, corpus_name, jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from lipsync import FLITE_UNSEEN, KOKORO_SEEN, KOKORO_UK, KOKORO_US, VOICES

FULL = (5000, 3200, 3600, 1200, 1200)


def test_no_benchmark_voice_is_ever_trained_on() -> None:
    voices = {voice for _, voice, _ in jobs(FULL, 12)} | set(MIX_POOL)  # mixed speakers' parts
    assert not voices & set(VOICES)  # the espeak-ng benchmark voices (training adds variants)
    assert not voices & {*FLITE_UNSEEN, *HELD_OUT, *KOKORO_US, *KOKORO_UK, *kokoro.UK_VOICES}
    assert {v for v in voices if v[:3] in ("af_", "am_")} == set(kokoro.TRAIN_VOICES)
    assert set(kokoro.ACCENTED_VOICES) <= voices
    assert set(KOKORO_SEEN) <= set(kokoro.TRAIN_VOICES)  # that row: the model on voices it knows


def test_a_smaller_corpus_is_the_same_utterances_less_some() -> None:
    """v4's corpus (2400 Kokoro US, none accented) and one without accented utterances but
    with mixed speakers are subsets of the full one: the same seeds, so the same speech and
    augmentation."""
    full = set(jobs(FULL, 12))
    for counts in ((5000, 3200, 2400, 0, 0), (5000, 3200, 3600, 0, 1200)):
        assert set(jobs(counts, 12)) <= full
    assert len(full) == sum(FULL)
    accented = [j for j in full if j[1] in kokoro.ACCENTED_VOICES]
    assert len(accented) == 1200 and len({seed for *_, seed in full}) == len(full)
    assert sum(engine == "kokoro-mix" for engine, *_ in full) == 1200


def test_corpus_names_say_what_is_in_them() -> None:
    assert corpus_name(2400, 0) == "corpus-k2400.npz"
    assert corpus_name(3600, 1200) == "corpus-k3600-a1200.npz"
    assert corpus_name(3600, 0, 1200) == "corpus-k3600-m1200.npz"
