"""Lipsync accuracy of the embedded models (DSP and learned) against exact phone timings.

Ground truth, per source: libespeak-ng (``nsplayer.espeak``) speaks ``SENTENCES`` with
several voices and speeds and reports when each phoneme starts; flite speaks the same
sentences with its voices and ``-psdur`` gives each segment's end; Kokoro-82M's held-out US
and its UK speakers say them with its predicted phoneme times (``python -m training.kokoro
bench`` makes those files with the training stack; without them the Kokoro rows are
skipped). Every utterance gets 0.5 s of silence before and after; every third espeak-ng one
also gets steady pink noise 40 dB below full scale (about 22 dB below the speech), so the
silence class covers background noise too. The noisy condition adds pink noise at ``SNR_DB``
below the speech to every utterance. WAVs and timings are cached in
``benchmarks/.cache/lipsync/``. Each model runs as ``nsplayer export`` runs it (offline) and
as ``nsplayer live`` runs it (causal); a naive loudness-only baseline (JawOpen = RMS over 40
ms / the utterance's 95th-percentile RMS, nothing else moves) runs alongside. The learned
model never trained on these sentences, on the espeak-ng variants used here, or on the flite
voices in ``FLITE_UNSEEN``.

A phoneme spans from its start to the next phoneme's start; its *middle* is the frames (at
60 fps, frame i = time i/60) in the middle half of that span, or the frame nearest its
midpoint when none falls inside. Aperture = max(0, JawOpen - MouthClose) + 0.5 ×
mean(MouthLowerDownLeft/Right). Rules per class (a phoneme counts once):

- bilabial (p b m): lips closed — aperture < 0.1 at some frame. espeak marks p/b at
  their release, so for them the window runs from 45 ms before the mark to the mark (the
  closure); for m it is the middle.
- open (a a# aI aU A: A@ 0 V): mean JawOpen over the middle ≥ 0.2.
- rounded (u: U oU O: o@ O@ OI w): mean max(MouthFunnel, MouthPucker) over the middle
  exceeds, by 0.05, the median of the same quantity over the utterance's spread
  phonemes (0 if it has none).
- spread (i: i I I2 e eI): mean max(mean MouthStretch, mean MouthSmile) over the middle
  exceeds, by 0.05, the median of the same quantity over the utterance's rounded phonemes.
- labiodental (f v): mean MouthRollLower over the middle ≥ 0.15.
- silence (the leading and trailing 0.5 s, and espeak pauses ``_``/``_:`` of ≥ 0.25 s):
  at rest — every frame more than 0.1 s inside it has JawOpen < 0.05 and every mouth
  channel (MouthClose..MouthUpperUpRight) < 0.1.

flite's p/b segments start at the closure, so they are judged like m, and so are Kokoro's
(its token times, corrected by the lag ``training/kokoro.py`` measured, span the closure).
``--lags`` also scores clean espeak-ng speech with every frame read k frames later: the best
k is 0 when frame i describes audio time i / fps, +1 when frames come a frame late.

Run: ``python benchmarks/lipsync.py`` (``--quick``: the first 15 sentences; ``--rate 8000``:
resample the speech first, to check telephone or studio rates; ``--source flite``: one
source; ``--clean``: no noisy condition).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from livelink import names as N
from nsplayer import espeak
from nsplayer.models import create_model

FPS = 60
PAD_S = 0.5
NOISE_DBFS = -40.0
CACHE = Path(__file__).resolve().parent / ".cache" / "lipsync"
VOICES = ("en-us", "en+f3", "en-gb-x-rp", "en-us+m3", "en+f2")
RATES = (140, 175, 210)
FLITE_SEEN = ("kal16", "rms")  # the learned model trained on these voices (other sentences)
FLITE_UNSEEN = ("awb", "slt")  # never in its training corpus
KOKORO_US = ("af_nicole", "am_michael")  # Kokoro US speakers held out of its corpus
# Kokoro US speakers of its corpus (other sentences): how well the model hears voices it knows
KOKORO_SEEN = ("af_heart", "am_adam", "af_bella", "am_eric")
KOKORO_UK = (
    "bf_alice",
    "bf_emma",
    "bf_isabella",
    "bf_lily",
    "bm_daniel",
    "bm_fable",
    "bm_george",
    "bm_lewis",
)  # fmt: skip  (no UK Kokoro voice is in its corpus)
SNR_DB = 10.0
RECORDED = "recorded speech (real people, aligned)"  # `python -m training.recorded`
Phones = list[tuple[str, float, float]]  # (espeak-ng mnemonic, start s, end s)
# flite's segment names (ARPAbet) as the espeak mnemonics the rules use; flite's p/b
# segments start at the closure, so they are judged like m (lips shut in the middle).
ARPABET = {
    "pau": "_", "p": "m", "b": "m", "m": "m", "f": "f", "v": "v", "aa": "A:", "ae": "a",
    "ah": "V", "aw": "aU", "ay": "aI", "ao": "O:", "ow": "oU", "oy": "OI", "uh": "U",
    "uw": "u:", "w": "w", "iy": "i:", "ih": "I", "ey": "eI",
}  # fmt: skip

CLASSES = {
    "bilabial": ("p", "b", "m"),
    "open": ("a", "a#", "aI", "aU", "A:", "A@", "0", "V"),
    "rounded": ("u:", "U", "oU", "O:", "o@", "O@", "OI", "w"),
    "spread": ("i:", "i", "I", "I2", "e", "eI"),
    "labiodental": ("f", "v"),
}
PAUSES = ("_", "_:")

SENTENCES = (
    "Please bring me the blue spoon and five fine forks.",
    "My mother bought a big map of Paris in the summer.",
    "We knew you would move to the old school soon.",
    "She sells sea shells by the sea shore every evening.",
    "The man from the bank fixed my phone before five.",
    "Bob will mop the floor when Pam puts the box away.",
    "A few brave wolves roam over the frozen moor.",
    "Peter picked a peck of purple peppers at the market.",
    "Move the blue boot before the boat leaves the pool.",
    "Feel free to visit the movie theater on Friday evening.",
    "Big boxes of apples made the barn smell sweet.",
    "We need more food, so buy beef, beans and bread.",
    "The father parked his car far from the farm.",
    "Maybe the baby will sleep by the fire at home.",
    "Very few people have seen a purple cow.",
    "Put the map back in the bag, Bob.",
    "I often have coffee with milk in the morning.",
    "Who knew the moon would look so huge tonight?",
    "Please keep the green tea by the window.",
    "The boy was proud of the new blue bicycle.",
    "Five women waved from the ferry boat.",
    "Even the brave knight feared the dark forest.",
    "Bobby bought a bunch of bananas for Pamela.",
    "My home is by the beach, far from the city.",
    "We moved to Boston in the fall of that year.",
    "Open the box, pick a book, and read it to me.",
    "The poem was about a boat on a smooth blue lake.",
    "Fifty families visited the museum in May.",
    "Mike was happy to meet his friend from Vienna.",
    "I love the smell of pine trees after the rain.",
    "Put your boots on, we are going to the moor.",
    "The food at the festival was very spicy.",
    "A bee buzzed by the bright blue flowers.",
    "Never move the piano without help from five men.",
    "Who will feed the pets when we are on vacation?",
    "The mob moved past the palace at noon.",
    "Please pass the pepper and the butter, Mum.",
    "We went for a walk by the river on Sunday.",
    "Each evening the people meet in the park.",
    "Few fish swim in the pool behind the boathouse.",
    "Mary played the violin beautifully at the fair.",
    "The puppy pulled the blanket off the bed.",
    "Boil the water, then pour it over the beef.",
    "Everyone was amazed by the movie's happy ending.",
    "The big brown bear ate berries by the pond.",
    "Vivid photos of famous people filled the wall.",
    "The two of us swam in the cool blue pool.",
    "Please leave the keys beneath the mat by the door.",
    "My brother moved from Madrid to Bombay in April.",
    "Fine wine from France was poured for the guests.",
    "Good food improves the mood of everyone.",
    "Wolves howl at the full moon over the hills.",
)


def pink_noise(n: int, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Steady noise with a 1/f spectrum (like rooms, fans, traffic) at an RMS of ``dbfs``."""
    spec = np.fft.rfft(rng.normal(0, 1, n)) / np.sqrt(np.maximum(np.arange(n // 2 + 1), 1))
    noise = np.fft.irfft(spec, n)
    return (noise / noise.std() * 10 ** (dbfs / 20)).astype(np.float32)


def utterance(idx: int) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """Cached WAV (padded, maybe noisy) and phonemes (name, start, end) in padded time."""
    text, voice, rate = SENTENCES[idx], VOICES[idx % len(VOICES)], RATES[idx % len(RATES)]
    key = hashlib.sha1(f"{text}|{voice}|{rate}|{PAD_S}|{NOISE_DBFS}|pink|{idx % 3}".encode())
    wav, meta = CACHE / f"{key.hexdigest()[:16]}.wav", CACHE / f"{key.hexdigest()[:16]}.json"
    if wav.exists() and meta.exists():
        audio, sr = sf.read(wav, dtype="float32")
        return audio, sr, [tuple(p) for p in json.loads(meta.read_text())]
    u = espeak.synthesize(text, voice, rate)
    pad = np.zeros(round(PAD_S * u.sample_rate), np.float32)
    audio = np.concatenate([pad, u.audio, pad])
    if idx % 3 == 0:
        audio = audio + pink_noise(len(audio), NOISE_DBFS, np.random.default_rng(idx))
    total = len(audio) / u.sample_rate
    starts = [p.start + PAD_S for p in u.phonemes]
    phones = [
        (p.name, s, (starts[i + 1] if i + 1 < len(starts) else total - PAD_S))
        for i, (p, s) in enumerate(zip(u.phonemes, starts, strict=True))
    ]
    phones = [("_", 0.0, phones[0][1]), *phones, ("_", total - PAD_S, total)]
    CACHE.mkdir(parents=True, exist_ok=True)
    sf.write(wav, audio, u.sample_rate, subtype="FLOAT")
    meta.write_text(json.dumps(phones))
    return audio, u.sample_rate, phones


def flite_utterance(idx: int, voice: str) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """Cached flite speech of sentence ``idx`` (padded like espeak's) and its segments."""
    key = hashlib.sha1(f"flite|{SENTENCES[idx]}|{voice}|{PAD_S}".encode()).hexdigest()[:16]
    wav, meta = CACHE / f"{key}.wav", CACHE / f"{key}.json"
    if wav.exists() and meta.exists():
        audio, sr = sf.read(wav, dtype="float32")
        return audio, sr, [tuple(p) for p in json.loads(meta.read_text())]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.wav"
        cmd = ["flite", "-voice", voice, "-psdur", "-t", SENTENCES[idx], "-o", str(out)]
        text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        speech, sr = sf.read(out, dtype="float32")
    pad = np.zeros(round(PAD_S * sr), np.float32)
    audio = np.concatenate([pad, speech, pad])
    phones, start, total = [("_", 0.0, PAD_S)], PAD_S, len(speech) / sr + PAD_S
    for item in text.split():
        name, _, end = item.rpartition(":")
        end_t = min(float(end) + PAD_S, total)
        if end_t > start:
            phones.append((ARPABET.get(name, name), start, end_t))
        start = end_t
    phones.append(("_", total, total + PAD_S))
    CACHE.mkdir(parents=True, exist_ok=True)
    sf.write(wav, audio, sr, subtype="FLOAT")
    meta.write_text(json.dumps(phones))
    return audio, sr, phones


def kokoro_utterance(idx: int, voice: str) -> tuple[np.ndarray, int, Phones]:
    """Kokoro speech of sentence ``idx``, written by ``python -m training.kokoro bench``."""
    return cached_utterance(CACHE / f"kokoro-{voice}-{idx:02d}")


def cached_utterance(stem: Path) -> tuple[np.ndarray, int, Phones]:
    """Speech and phones the training stack wrote: ``stem``.wav and ``stem``.json."""
    audio, sr = sf.read(stem.with_suffix(".wav"), dtype="float32")
    return audio, sr, [tuple(p) for p in json.loads(stem.with_suffix(".json").read_text())]


def kokoro_voices(idx: int) -> tuple[str, str, list[str]]:
    """The trained-on US speaker, the held-out US speaker and the two UK speakers who say
    sentence ``idx``."""
    uk = [KOKORO_UK[(idx + k) % len(KOKORO_UK)] for k in (0, 4)]
    return KOKORO_SEEN[idx % len(KOKORO_SEEN)], KOKORO_US[idx % 2], uk


def with_noise(audio: np.ndarray, idx: int) -> np.ndarray:
    """Pink noise at SNR_DB below the speech (RMS of the loudest half of 10 ms blocks)."""
    blocks = audio[: len(audio) // 160 * 160].reshape(-1, 160)
    energy = np.sort(np.mean(blocks.astype(np.float64) ** 2, axis=1))
    speech_db = 10 * np.log10(np.mean(energy[len(energy) // 2 :]) + 1e-20)
    noise = pink_noise(len(audio), speech_db - SNR_DB, np.random.default_rng(1000 + idx))
    return audio + noise


def resample(audio: np.ndarray, sr: int, new: int) -> np.ndarray:
    """Band-limited resampling in the frequency domain. The cosine roll-off over the top 15%
    of the lower Nyquist band keeps the filter's ringing from spreading into the silences."""
    n = round(len(audio) * new / sr)
    spec = np.fft.rfft(audio.astype(np.float64))
    f = np.fft.rfftfreq(len(audio), 1.0 / sr)
    nyq = min(sr, new) / 2
    ramp = np.clip((nyq - f) / (0.15 * nyq), 0.0, 1.0)
    spec *= ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep
    out = np.fft.irfft(spec[: n // 2 + 1], n) if n < len(audio) else np.fft.irfft(spec, n)
    return (out * n / len(audio)).astype(np.float32)


def run_model(name: str, audio: np.ndarray, sr: int, causal: bool) -> np.ndarray:
    model = create_model(name, sr, FPS, causal=causal)
    step = sr // 10  # stream as the player does
    rows = [model.feed(audio[i : i + step]) for i in range(0, len(audio), step)]
    return np.concatenate([*rows, model.flush()])


def baseline(audio: np.ndarray, sr: int) -> np.ndarray:
    """Loudness only: JawOpen follows the RMS envelope; every other channel stays 0."""
    n = int(np.ceil(len(audio) * FPS / sr))
    half = round(0.02 * sr)
    padded = np.pad(audio.astype(np.float64) ** 2, half)
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    centres = np.round(np.arange(n) * sr / FPS).astype(int) + half
    rms = np.sqrt((csum[centres + half] - csum[centres - half]) / (2 * half))
    rows = np.zeros((n, 61), np.float32)
    rows[:, N.JAW_OPEN] = np.clip(rms / (np.percentile(rms, 95) + 1e-12), 0, 1)
    return rows


def _frames(rows: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """Rows in the middle half of [t0, t1), or the one nearest its midpoint."""
    a, b = t0 + (t1 - t0) / 4, t1 - (t1 - t0) / 4
    idx = np.arange(int(np.ceil(a * FPS)), int(np.ceil(b * FPS)))
    idx = idx[(idx >= 0) & (idx < len(rows))]
    if len(idx) == 0:
        idx = np.array([min(len(rows) - 1, round((t0 + t1) / 2 * FPS))])
    return rows[idx]


def aperture(r: np.ndarray) -> np.ndarray:
    lower = (r[:, N.MOUTH_LOWER_DOWN_LEFT] + r[:, N.MOUTH_LOWER_DOWN_RIGHT]) / 2
    return np.maximum(0.0, r[:, N.JAW_OPEN] - r[:, N.MOUTH_CLOSE]) + 0.5 * lower


def roundness(r: np.ndarray) -> float:
    return float(np.mean(np.maximum(r[:, N.MOUTH_FUNNEL], r[:, N.MOUTH_PUCKER])))


def spreadness(r: np.ndarray) -> float:
    stretch = (r[:, N.MOUTH_STRETCH_LEFT] + r[:, N.MOUTH_STRETCH_RIGHT]) / 2
    smile = (r[:, N.MOUTH_SMILE_LEFT] + r[:, N.MOUTH_SMILE_RIGHT]) / 2
    return float(np.mean(np.maximum(stretch, smile)))


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else 0.0


def score(rows: np.ndarray, phones: list[tuple[str, float, float]]) -> dict[str, list[bool]]:
    """Per class, one verdict per phoneme (rules in the module docstring)."""
    out: dict[str, list[bool]] = {k: [] for k in (*CLASSES, "silence")}
    cls = {p: c for c, ps in CLASSES.items() for p in ps}
    mids = {(i, n): _frames(rows, s, e) for i, (n, s, e) in enumerate(phones)}
    # The rounded class is judged against spread phonemes' rounding, and vice versa.
    round_ref = _median([roundness(m) for (_, n), m in mids.items() if cls.get(n) == "spread"])
    spread_ref = _median([spreadness(m) for (_, n), m in mids.items() if cls.get(n) == "rounded"])
    for i, (name, s, e) in enumerate(phones):
        mid, c = mids[(i, name)], cls.get(name)
        if c == "bilabial":
            if name == "m":
                win = mid
            else:
                win = rows[max(0, int(np.floor((s - 0.045) * FPS))) : int(np.ceil(s * FPS)) + 1]
            out[c].append(bool(aperture(win).min() < 0.1))
        elif c == "open":
            out[c].append(bool(mid[:, N.JAW_OPEN].mean() >= 0.2))
        elif c == "rounded":
            out[c].append(roundness(mid) > round_ref + 0.05)
        elif c == "spread":
            out[c].append(spreadness(mid) > spread_ref + 0.05)
        elif c == "labiodental":
            out[c].append(bool(mid[:, N.MOUTH_ROLL_LOWER].mean() >= 0.15))
        elif name in PAUSES and e - s >= 0.25:
            inner = rows[int(np.ceil((s + 0.1) * FPS)) : int(np.floor((e - 0.1) * FPS)) + 1]
            if len(inner):
                rest = (inner[:, N.JAW_OPEN] < 0.05).all()
                rest &= (inner[:, N.MOUTH_CLOSE : N.MOUTH_UPPER_UP_RIGHT + 1] < 0.1).all()
                out["silence"].append(bool(rest))
    return out


SYSTEMS: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "dsp offline": lambda a, sr: run_model("dsp", a, sr, causal=False),
    "dsp causal": lambda a, sr: run_model("dsp", a, sr, causal=True),
    "learned offline": lambda a, sr: run_model("learned", a, sr, causal=False),
    "learned causal": lambda a, sr: run_model("learned", a, sr, causal=True),
    "loudness baseline": baseline,
}


def sources(count: int) -> dict[str, list[Callable[[], tuple[np.ndarray, int, Phones]]]]:
    """Per source, one loader per utterance: espeak-ng's benchmark voices, flite's voices,
    Kokoro's held-out US and its UK speakers (when their files have been made)."""
    out = {"espeak-ng": [lambda i=i: utterance(i) for i in range(count)]}
    for label, voices in (("flite seen", FLITE_SEEN), ("flite unseen", FLITE_UNSEEN)):
        out[f"{label} ({', '.join(voices)})"] = [
            lambda i=i, v=v: flite_utterance(i, v) for v in voices for i in range(count)
        ]
    recorded = sorted(CACHE.glob("recorded-*.wav"))
    if recorded:
        out[RECORDED] = [lambda p=p: cached_utterance(p.with_suffix("")) for p in recorded]
    if not (CACHE / f"kokoro-{KOKORO_UK[0]}-00.wav").exists():
        print("(no Kokoro rows: make them with `python -m training.kokoro bench`, see")
        print(" training/MODEL_CARD.md)")
        return out
    seen = [(i, kokoro_voices(i)[0]) for i in range(count)]
    us = [(i, kokoro_voices(i)[1]) for i in range(count)]
    uk = [(i, v) for i in range(count) for v in kokoro_voices(i)[2]]
    rows = [("Kokoro US held out", us), ("Kokoro UK, never trained on", uk)]
    if (CACHE / f"kokoro-{KOKORO_SEEN[0]}-00.wav").exists():
        rows.insert(0, ("Kokoro US seen (trained on)", seen))
    for label, pairs in rows:
        out[label] = [lambda i=i, v=v: kokoro_utterance(i, v) for i, v in pairs]
    return out


def verdicts(systems, loaders, rate: int | None, noisy: bool, lag: int = 0):
    """Per system, per class, one verdict per phoneme; rows read ``lag`` frames later."""
    out = {name: {k: [] for k in (*CLASSES, "silence")} for name in systems}
    for idx, load in enumerate(loaders):
        audio, sr, phones = load()
        if rate:
            audio, sr = resample(audio, sr, rate), rate
        if noisy:
            audio = with_noise(audio, idx)
        for name, fn in systems.items():
            for k, v in score(shift(fn(audio, sr), lag), phones).items():
                out[name][k].extend(v)
    return out


def shift(rows: np.ndarray, lag: int) -> np.ndarray:
    """Rows read ``lag`` frames later (earlier when negative), edges repeated."""
    if lag > 0:
        return np.concatenate([rows[lag:], np.repeat(rows[-1:], lag, axis=0)])
    if lag < 0:
        return np.concatenate([np.repeat(rows[:1], -lag, axis=0), rows[:lag]])
    return rows


def table(title: str, v: dict[str, dict[str, list[bool]]]) -> dict[str, float]:
    """Print one per-class markdown table; return the macro average per system."""
    names = list(v)
    print(f"\n{title}\n")
    print("| class | n | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    macro = {name: [] for name in names}
    for k in (*CLASSES, "silence"):
        n = len(v[names[0]][k])
        cells = []
        for name in names:
            acc = 100.0 * np.mean(v[name][k]) if n else float("nan")
            macro[name].append(acc)
            cells.append(f"{acc:.1f}%")
        print(f"| {k} | {n} | " + " | ".join(cells) + " |")
    means = {name: float(np.nanmean(m)) for name, m in macro.items()}
    print("| **macro average** | | " + " | ".join(f"**{m:.1f}%**" for m in means.values()) + " |")
    return means


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="first 15 sentences only")
    ap.add_argument("--rate", type=int, help="resample the speech to this rate first")
    ap.add_argument("--source", help="only sources whose name starts with this")
    ap.add_argument("--clean", action="store_true", help="skip the noisy condition")
    ap.add_argument("--lags", action="store_true", help="also the macro average per lag")
    args = ap.parse_args()
    count = 15 if args.quick else len(SENTENCES)
    rate = f"{args.rate} Hz" if args.rate else "native rates"
    print(f"Lipsync accuracy, {count} sentences at {rate}; espeak-ng voices {', '.join(VOICES)} ")
    print(f"at {RATES} wpm; noisy: pink noise at SNR {SNR_DB:.0f} dB")
    summary = {}
    for src, loaders in sources(count).items():
        if args.source and not src.startswith(args.source):
            continue
        for noisy in (False,) if args.clean else (False, True):
            cond = "noisy" if noisy else "clean"
            v = verdicts(SYSTEMS, loaders, args.rate, noisy)
            summary[f"{src}, {cond}"] = table(f"**{src}, {cond}**", v)
    print("\n**Macro average per source**\n")
    print("| source | " + " | ".join(SYSTEMS) + " |")
    print("|---|" + "---:|" * len(SYSTEMS))
    for src, means in summary.items():
        print(f"| {src} | " + " | ".join(f"{m:.1f}%" for m in means.values()) + " |")
    if args.lags:
        lag_table(count, args.rate)


def lag_table(count: int, rate: int | None) -> None:
    """Macro average on clean espeak-ng speech with frames read k frames later: the best k
    says whether frame i describes audio time i / fps (k = 0) or comes late (k > 0)."""
    models = {k: v for k, v in SYSTEMS.items() if k != "loudness baseline"}
    loaders = sources(count)["espeak-ng"]
    lags = (-2, -1, 0, 1, 2)
    print("\n**Macro average on espeak-ng with frames read k frames later**\n")
    print("| system | " + " | ".join(f"k = {k:+d}" for k in lags) + " | best |")
    print("|---|" + "---:|" * (len(lags) + 1))
    for name, fn in models.items():
        cells = []
        for lag in lags:
            v = verdicts({name: fn}, loaders, rate, False, lag)[name]
            cells.append(float(np.mean([np.mean(x) for x in v.values() if x])) * 100)
        best = lags[int(np.argmax(cells))]
        print(f"| {name} | " + " | ".join(f"{c:.1f}%" for c in cells) + f" | {best:+d} |")


if __name__ == "__main__":
    main()
