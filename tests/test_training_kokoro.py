"""Kokoro token timings -> phones (training/kokoro.py's ``group``): the labels the learned
model trains on and the Kokoro rows of the lipsync benchmark are judged by."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from pytest import approx

from training.kokoro import AFTER, BEFORE, PAUSE_MARKS, UNITS, group


def tokens(text: str, step: float = 0.025) -> list[tuple[str, float, float]]:
    return [(ch, k * step, (k + 1) * step) for k, ch in enumerate(text)]


def test_diphthongs_affricates_and_marks_become_single_phones() -> None:
    phones = group(tokens("maɪ tʃˈiːz,"))
    assert [p[0] for p in phones] == ["m", "aI", "tS", "i:", "z", "_"]
    _, ai, ch, ii, z, pause = phones
    assert ai[1:] == approx((0.025, 0.0875))  # its own two tokens, then half the word gap
    assert ch[1] == approx(0.0875)  # the other half of the gap opens the next word
    assert ii[1:] == approx((0.15, 0.225))  # the stress mark before it, the length mark after
    assert pause[0] == "_" and z[2] == pause[1]


def test_british_and_american_vowels_name_the_same_mnemonics() -> None:
    assert [p[0] for p in group(tokens("həlˈəʊ"))] == ["h", "@", "l", "oU"]
    assert [p[0] for p in group(tokens("həlˈoʊ"))] == ["h", "@", "l", "oU"]
    assert [p[0] for p in group(tokens("ɒv ʌv"))] == ["0", "v", "V", "v"]


CHARS = sorted({*"".join(UNITS), *BEFORE, *AFTER, *PAUSE_MARKS, " "})


@given(st.lists(st.sampled_from(CHARS), max_size=60), st.floats(0.001, 0.2))
def test_phones_are_ordered_and_cover_no_more_than_the_tokens(chars, step) -> None:
    toks = tokens("".join(chars), step)
    phones = group(toks)
    assert len(phones) <= len(toks)
    for name, a, b in phones:
        assert name and a <= b
        assert toks[0][1] <= a and b <= toks[-1][2]
    for (_, _, end), (_, start, _) in itertools.pairwise(phones):
        assert end <= start + 1e-12
