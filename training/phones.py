"""Phone labels of espeak-ng and flite mapped to the learned model's viseme classes."""

from __future__ import annotations

from nsplayer.models.learned import VISEMES

V = {name: k for k, name in enumerate(VISEMES)}

ESPEAK = {
    **dict.fromkeys(("_", "_:", "_!", "_;", "_^", "||", "|"), "silence"),
    **dict.fromkeys(("p", "b", "m"), "bilabial"),
    **dict.fromkeys(("f", "v"), "labiodental"),
    **dict.fromkeys(("a", "a#", "aI", "aU", "A:", "A@", "0", "V", "aa", "a2"), "open"),
    **dict.fromkeys(("u:", "U", "oU", "O:", "o@", "O@", "OI", "w", "U@", "O", "o"), "rounded"),
    **dict.fromkeys(("i:", "i", "I", "I2", "e", "eI", "i@", "I#"), "spread"),
    **dict.fromkeys(("s", "z", "S", "Z", "tS", "dZ"), "sibilant"),
}
ESPEAK_VOWEL_START = "aeiouAEIOUV03@"

ARPABET = {
    "pau": "silence",
    **dict.fromkeys(("p", "b", "m", "em"), "bilabial"),
    **dict.fromkeys(("f", "v"), "labiodental"),
    **dict.fromkeys(("aa", "ae", "ah", "aw", "ay"), "open"),
    **dict.fromkeys(("ao", "ow", "oy", "uh", "uw", "w"), "rounded"),
    **dict.fromkeys(("iy", "ih", "ey"), "spread"),
    **dict.fromkeys(("eh", "er", "ax", "axr"), "mid"),
    **dict.fromkeys(("s", "z", "sh", "zh", "ch", "jh"), "sibilant"),
}

STOPS_ESPEAK = ("p", "b", "t", "d", "k", "g", "t#", "d#", "tS", "dZ")


def espeak_class(name: str) -> int:
    """Viseme class of an espeak-ng phoneme mnemonic (unknown vowels: mid, else other)."""
    if name in ESPEAK:
        return V[ESPEAK[name]]
    if name.startswith("_"):
        return V["silence"]
    return V["mid"] if name[:1] in ESPEAK_VOWEL_START else V["other"]


def arpabet_class(name: str) -> int:
    """Viseme class of a flite (ARPAbet) segment name."""
    return V[ARPABET.get(name, "other")]
