"""Kokoro token timings -> phones (training/kokoro.py's ``group``): the labels the learned
model trains on and the Kokoro rows of the lipsync benchmark are judged by."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from pytest import approx

from training.forced_align import match
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


def test_forced_alignment_phones_pair_in_order_skipping_what_only_one_side_has() -> None:
    """ "knew you" by Kokoro (espeak-ng mnemonics, no /j/) and by the aligner (ARPAbet, with
    one): the extra Y stays unpaired, every other phone pairs with its own."""
    kokoro = [("n", 0.62, 0.70), ("u:", 0.70, 0.80), ("j", 1.26, 1.33), ("u:", 1.33, 1.40)]
    aligned = [("N", 0.62, 0.68), ("Y", 0.68, 0.80), ("UW", 0.80, 0.90), ("Y", 1.29, 1.38),
               ("UW", 1.38, 1.41)]  # fmt: skip
    assert match(kokoro, aligned) == [(0, 0), (1, 2), (2, 3), (3, 4)]


def test_a_vowel_never_pairs_with_a_consonant_however_close() -> None:
    assert match([("a", 0.50, 0.60)], [("T", 0.50, 0.60)]) == []


@given(
    st.lists(st.tuples(st.sampled_from(["a", "i:", "p", "s"]), st.floats(0, 5)), max_size=8),
    st.lists(st.tuples(st.sampled_from(["AA", "IY", "P", "S"]), st.floats(0, 5)), max_size=8),
)
def test_forced_alignment_pairs_are_increasing_and_like_with_like(kokoro, aligned) -> None:
    k = [(n, t, t + 0.05) for n, t in kokoro]
    a = [(n, t, t + 0.05) for n, t in aligned]
    pairs = match(k, a)
    for (i0, j0), (i1, j1) in itertools.pairwise(pairs):
        assert i0 < i1 and j0 < j1
    assert all((k[i][0] in ("a", "i:")) == (a[j][0] in ("AA", "IY")) for i, j in pairs)
