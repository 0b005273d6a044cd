"""Training corpus: synthetic speech with exact phone timings, augmented, as model features.

Sources: espeak-ng (C library phoneme events, many accents x voice variants, speeds and
pitches), flite (``flite -psdur`` segment end times), festival's ked diphone voice
(``utt.save.segs``) and Kokoro-82M's US voices, its voices of other languages speaking
English (accented English), blends of two and mixtures of three (speakers no single voice
gives; its predicted phoneme times, lag-corrected: ``training/kokoro.py``). Texts are random
word sequences from ``WORDS`` (never the benchmark's sentences). Each utterance gets silence
around it and, at random, speed change, reverberation, a microphone's colouring, band
limiting (8 or 16 kHz), codec-like mu-law, noise (white, pink, brown, hum; SNR 0-30 dB) and
gain; then the very features the model computes at run time (``MelAnalyzer``), most with a
vocal tract length warp (the filter bank's frequencies scaled by 0.82-1.22: other speakers'
formants), and a viseme label per 10 ms frame.

Held out (never written to the training corpus): the espeak variants the lipsync benchmark
uses (f2, f3, m3 and the plain voices), the flite voices in ``HELD_OUT``, the Kokoro US
speakers in ``kokoro.US_HELD_OUT`` and every UK Kokoro speaker.

Run: ``python -m training.corpus`` (written to training/.cache/corpus-k3600-a1200-m1200.npz,
the offline network's: 3600 Kokoro US utterances, 1200 accented, 1200 by mixed speakers);
``--accented 0`` gives the causal network's corpus-k3600-m1200.npz, the same utterances
less the accented ones (Kokoro is cached: minutes); ``--small`` for a quick try.
Seeded, but espeak-ng's output depends on what it synthesized before in the same process, so
a rebuild differs slightly (model card).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

from nsplayer import espeak
from nsplayer.models.features import MEL_HOP_S, MelAnalyzer
from training import kokoro
from training.phones import STOPS_ESPEAK, V, arpabet_class, espeak_class

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from lipsync import pink_noise, resample  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
ESPEAK_ACCENTS = (
    "en-us", "en", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip
ESPEAK_VARIANTS = (
    "m1", "m2", "m4", "m5", "m6", "m7", "m8", "f1", "f4", "f5", "klatt", "klatt2", "klatt3",
    "klatt4", "klatt6", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie", "aunty",
    "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "john", "linda", "max",
    "Michael", "paul", "rob", "robert", "steph", "steph2", "steph3", "travis", "victor",
    "grandma", "grandpa", "shelby", "norbert", "sandro", "Mike", "quincy", "Lee", "iven",
)  # fmt: skip
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
MIX_POOL = kokoro.TRAIN_VOICES + kokoro.ACCENTED_VOICES  # mixed into new Kokoro speakers
HELD_OUT = ("awb", "slt")  # whole flite voices kept for the unseen-voice benchmark
FESTIVAL_VOICES = ("ked_diphone",)  # Debian festvox-kdlpc16k (festival's awb/slt: held out)
WORDS = """
a about above across after again air all almost alone along also always am among an and
animal another answer any apple are area arm around as ask at away baby back bad bag ball
bank bar base basket bath be bear beat beautiful became because bed been beef before began
begin behind being believe bell below best better between big bird black blue boat body
book boot both bottom bought box boy branch brave bread break bright bring brother brown
build burn bus busy but butter buy by cake call came can car care carry cat catch cause
chair change cheap check cheese child choose church city class clean clear climb clock
close cloud coat coffee cold come common cook cool corn could country course cover cow
cream cross cry cup cut dance dark day dead deep did different dinner do doctor does dog
done door down draw dream dress drink drive drop dry during each ear early earth easy eat
egg eight either else end enough even evening ever every eye face fact fall family far
farm fast father feed feel feet few field fifty fill find fine finger fire first fish
five floor flower fly follow food foot for forest fork found four free fresh friend from
front fruit full fun game garden gave girl give glad glass go gold good got grass great
green ground group grow guess had hair half hand happy hard has hat have he head hear
heart heavy help her here high hill him his hold home hope horse hot hour house how huge
hundred hungry hurry I ice idea if in inch inside into iron is island it jam job join
judge jump just keep key kind king kitchen knee knew know lake land large last late laugh
lay lead learn leave left leg less let letter life light like line lion list listen
little live long look lose lot loud love low lunch machine made make man many map mark
market matter may me mean measure meat meet men middle might mile milk mind minute miss
money month moon more morning most mother mountain mouth move much music must my name
near neck need never new next nice night nine no noise north nose not note nothing now
number ocean of off often oil old on once one only open or orange other our out over own
page paint pair paper park part party pass past path pay peace people pepper perhaps
person pick picture piece pink place plan plant play please pocket point poor pool
possible pot potato power pretty problem pull purple push put queen question quick quiet
rabbit race rain ran reach read ready real red remember rest rich ride right ring river
road rock roof room rope round row rule run said salt same sand sat save saw say school
sea season seat second see seed seem sell send sentence seven shall shape share she sheep
shell shine ship shoe shop short should shout show shut side sign silver simple since
sing sister sit six size skin sky sleep slow small smell smile smoke snow so soap soft
some son song soon sound soup south space speak special speed spend spoon spring square
stand star start station stay step stick still stone stop store story straight strange
street strong student such sudden sugar summer sun supper sure surprise sweet swim table
tail take talk tall taste tea teach team teeth tell ten than thank that the their them
then there these they thick thin thing think third this those though thought thousand
three through throw thumb thus tie time tiny to today together told tomorrow tone too
took tooth top touch town toy tree trip true try turn twelve twenty two under until up
upon us use usual valley very view village visit voice vote wait walk wall want warm was
wash watch water wave way we wear weather week weight well went were west wet what wheel
when where which while white who whole why wide wife wild will win wind window wine
winter wire wise wish with without woman wonder wood word work world would write wrong
yard year yellow yes yesterday yet you young your zero zoo
""".split()  # noqa: SIM905 (a list literal would be 600 lines)


@dataclass
class Sample:
    """One utterance: 16-bit-free float audio, its rate, and (class, start, end) spans."""

    audio: np.ndarray
    sample_rate: int
    spans: list[tuple[int, float, float]]
    group: str


def random_text(rng: np.random.Generator) -> str:
    words = rng.choice(WORDS, size=int(rng.integers(4, 13)))
    text, out = list(words), []
    for k, w in enumerate(text):
        out.append(w)
        if k < len(text) - 1 and rng.random() < 0.12:
            out[-1] += rng.choice([",", ".", "?"])
    return " ".join(out).capitalize() + "."


def espeak_sample(rng: np.random.Generator, voice: str) -> Sample:
    rate, pitch = int(rng.integers(110, 260)), int(rng.integers(15, 85))
    u = espeak.synthesize(random_text(rng), voice, rate, pitch)
    spans = espeak_spans([(p.name, p.start) for p in u.phonemes], len(u.audio) / u.sample_rate)
    return Sample(u.audio, u.sample_rate, spans, f"espeak:{voice}")


def espeak_spans(phones: list[tuple[str, float]], total: float) -> list[tuple[int, float, float]]:
    """Class spans from espeak phoneme starts. Stops are marked at their release: their
    closure (up to 50 ms, at most half the previous phone) is moved before the mark, and
    from the release on the frames take the next phone's class (the mouth opens there)."""
    spans = []
    for i, (name, start) in enumerate(phones):
        end = phones[i + 1][1] if i + 1 < len(phones) else total
        if end <= start:
            continue
        spans.append([espeak_class(name), start, end])
        if name in STOPS_ESPEAK and len(spans) > 1:
            prev = spans[-2]
            closure = min(0.05, 0.5 * (start - prev[1]))
            prev[2] = spans[-1][1] = start - closure
            if i + 1 < len(phones):  # the lips part at the release: the next phone's shape
                spans[-1][2] = start
                spans.append([espeak_class(phones[i + 1][0]), start, end])
    return [tuple(s) for s in spans]


def flite_sample(rng: np.random.Generator, voice: str) -> Sample:
    text = random_text(rng)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "x.wav"
        out = subprocess.run(
            ["flite", "-voice", voice, "-psdur", "-t", text, "-o", str(wav)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        audio, sr = sf.read(wav, dtype="float32")
    spans, start = [], 0.0
    for item in out.stdout.split():
        name, _, end = item.rpartition(":")
        spans.append((arpabet_class(name), start, float(end)))
        start = float(end)
    return Sample(audio, sr, spans, f"flite:{voice}")


def festival_sample(rng: np.random.Generator, voice: str) -> Sample:
    """Festival's diphone voice; ``utt.save.segs`` writes each segment's end time."""
    text = random_text(rng).replace('"', "")
    with tempfile.TemporaryDirectory() as tmp:
        wav, segs, script = Path(tmp) / "x.wav", Path(tmp) / "x.segs", Path(tmp) / "x.scm"
        script.write_text(
            f'(voice_{voice})\n(set! u (utt.synth (Utterance Text "{text}")))\n'
            f'(utt.save.wave u "{wav}" \'riff)\n(utt.save.segs u "{segs}")\n'
        )
        subprocess.run(["festival", "-b", str(script)], capture_output=True, check=True)
        audio, sr = sf.read(wav, dtype="float32")
        lines = segs.read_text().split("#", 1)[1].split("\n")
    spans, start = [], 0.0
    for line in lines:
        if line.strip():
            end, _, name = line.split()
            spans.append((arpabet_class(name), start, float(end)))
            start = float(end)
    return Sample(audio, sr, spans, f"festival:{voice}")


def kokoro_sample(rng: np.random.Generator, voice: str) -> Sample:
    """Kokoro-82M: a training US or accented voice, or a blend with a US one (another
    speaker); US English or, on a fifth, British pronunciations; speed 0.8-1.25. Phones
    already corrected for the lag of Kokoro's times."""
    cached = CACHE / "kokoro" / "raw" / f"{voice}-{int(rng.integers(1 << 62))}.npz"
    text, lang = random_text(rng), ("en-gb" if rng.random() < 0.2 else "en-us")
    speed, blend = rng.uniform(0.8, 1.25), rng.random() < 0.3
    other, mix = str(rng.choice(kokoro.TRAIN_VOICES)), rng.uniform(0.3, 0.7)

    def style(speaker: kokoro.Speaker) -> np.ndarray:
        own = speaker.voice(voice)
        return mix * own + (1 - mix) * speaker.voice(other) if blend else own

    audio, spans = _spoken(cached, text, style, speed, lang)
    return Sample(audio, kokoro.RATE, spans, f"kokoro:{voice}{'+' + other if blend else ''}")


def kokoro_mix_sample(rng: np.random.Generator, voice: str) -> Sample:
    """Kokoro-82M: a speaker no single voice gives, the mean of three training voices (US or
    accented; ``voice`` is unused) with random weights; US English or, on half, British
    pronunciations; speed 0.8-1.25."""
    names = [str(v) for v in rng.choice(MIX_POOL, 3, replace=False)]
    weights = rng.dirichlet(np.ones(3))
    text, lang = random_text(rng), ("en-gb" if rng.random() < 0.5 else "en-us")
    speed = rng.uniform(0.8, 1.25)
    cached = CACHE / "kokoro" / "raw" / f"mix-{int(rng.integers(1 << 62))}.npz"

    def style(speaker: kokoro.Speaker) -> np.ndarray:
        return sum(w * speaker.voice(n) for w, n in zip(weights, names, strict=True))

    audio, spans = _spoken(cached, text, style, speed, lang)
    return Sample(audio, kokoro.RATE, spans, "kokoro-mix:" + "+".join(names))


_SPEAKER: kokoro.Speaker | None = None  # one Kokoro session per corpus worker


def _spoken(
    cached: Path,
    text: str,
    style: Callable[[kokoro.Speaker], np.ndarray],
    speed: float,
    lang: str,
) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """Kokoro's speech and class spans, from the cache or made once: Kokoro costs about
    half of real time per core."""
    global _SPEAKER
    if not cached.exists():
        _SPEAKER = _SPEAKER or kokoro.Speaker(threads=1)
        u = _SPEAKER.speak(text, style(_SPEAKER).astype(np.float32), speed, lang)
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cached, audio=u.audio, phones=np.array(u.phones, dtype=object))
    with np.load(cached, allow_pickle=True) as z:
        audio, phones = z["audio"], z["phones"].tolist()
    return audio, [(espeak_class(n), float(a), float(b)) for n, a, b in phones]


def augment(s: Sample, rng: np.random.Generator) -> Sample:
    """Silence around, then at random speed, reverb, colouring, band limit, mu-law, noise,
    gain."""
    sr, x, spans = s.sample_rate, s.audio.astype(np.float64), s.spans
    x = x / (np.abs(x).max() + 1e-9) * 0.5
    if rng.random() < 0.3:  # speed and pitch together, as a tape would
        factor = rng.uniform(0.88, 1.12)
        x = resample(x, round(sr * factor), sr).astype(np.float64)
        spans = [(c, a / factor, b / factor) for c, a, b in spans]
    lead, tail = rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8)
    x = np.concatenate([np.zeros(round(lead * sr)), x, np.zeros(round(tail * sr))])
    spans = [(V["silence"], 0.0, lead)] + [(c, a + lead, b + lead) for c, a, b in spans]
    spans.append((V["silence"], spans[-1][2], len(x) / sr))
    if rng.random() < 0.25:
        x = reverb(x, sr, rng)
    if rng.random() < 0.4:
        x = colour(x, sr, rng)
    if rng.random() < 0.45:
        new = 8000 if rng.random() < 0.5 else 16000
        if new < sr:
            x, sr = resample(x, sr, new).astype(np.float64), new
    elif sr == 22050 and rng.random() < 0.2:
        x, sr = resample(x, sr, 48000).astype(np.float64), 48000
    if rng.random() < 0.08:
        x = mu_law(x)
    if rng.random() < 0.6:
        x = x + noise(len(x), sr, rng) * rms_active(x) * 10 ** (-rng.uniform(0, 30) / 20)
    x *= 10 ** (rng.uniform(-30, 6) / 20)
    return Sample(np.clip(x, -1, 1).astype(np.float32), sr, spans, s.group)


def rms_active(x: np.ndarray) -> float:
    """RMS of the loudest half of 10 ms blocks: the speech, not its pauses."""
    n = len(x) // 160 * 160
    blocks = np.sqrt(np.mean(x[:n].reshape(-1, 160) ** 2, axis=1))
    return float(np.sqrt(np.mean(np.sort(blocks)[len(blocks) // 2 :] ** 2)) + 1e-9)


def reverb(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room: direct sound plus exponentially decaying noise (RT60 0.15-0.7 s)."""
    rt60 = rng.uniform(0.15, 0.7)
    n = round(rt60 * sr)
    t = np.arange(n) / sr
    ir = rng.normal(0, 1, n) * 10 ** (-3 * t / rt60)
    ir[: round(0.003 * sr)] = 0.0  # the first reflection after the direct path
    ir *= rng.uniform(0.1, 0.6) / np.sqrt(np.sum(ir**2))
    ir[0] = 1.0
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    wet = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return wet / (np.abs(wet).max() + 1e-9) * np.abs(x).max()


def colour(x: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A microphone's or room's frequency response: a smooth random gain curve, up to
    about 8 dB either way, over log frequency (three raised-cosine bumps and a tilt)."""
    spec = np.fft.rfft(x)
    octaves = np.log2(np.maximum(np.fft.rfftfreq(len(x), 1 / sr), 50.0) / 50.0)
    gain_db = rng.uniform(-3, 3) * (octaves - octaves.mean()) / 4
    for _ in range(3):
        centre, width = rng.uniform(0, octaves.max()), rng.uniform(0.5, 2.0)
        bump = np.cos(np.clip((octaves - centre) / width, -1, 1) * np.pi / 2) ** 2
        gain_db += rng.uniform(-6, 6) * bump
    y = np.fft.irfft(spec * 10 ** (gain_db / 20), len(x))
    return y / (np.abs(y).max() + 1e-9) * np.abs(x).max()


def mu_law(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    """8-bit mu-law round trip, as a telephone codec would do it."""
    y = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    y = np.round(y * 127) / 127
    return np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu


def noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink, brown or mains hum with harmonics."""
    kind = rng.integers(4)
    if kind == 0:
        return rng.normal(0, 1, n)
    if kind == 1:
        return pink_noise(n, 0.0, rng).astype(np.float64)
    if kind == 2:
        spec = np.fft.rfft(rng.normal(0, 1, n)) / np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
        b = np.fft.irfft(spec, n)
        return b / b.std()
    t = np.arange(n) / sr
    f0 = rng.choice([50.0, 60.0])
    hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 8))
    hum += 0.3 * rng.normal(0, 1, n)
    return hum / hum.std()


def labels(spans: list[tuple[int, float, float]], n_frames: int) -> np.ndarray:
    """Class of the span holding each 10 ms frame's time (silence outside every span)."""
    y = np.full(n_frames, V["silence"], np.uint8)
    t = np.arange(n_frames) * MEL_HOP_S
    for c, a, b in spans:
        y[(t >= a) & (t < b)] = c
    return y


def features(s: Sample, warp: float) -> np.ndarray:
    an = MelAnalyzer(s.sample_rate, warp)
    pad = np.zeros(round(0.02 * s.sample_rate), np.float32)
    rows = an.push(np.concatenate([s.audio, pad]))
    return rows[: int(np.ceil(len(s.audio) / s.sample_rate / MEL_HOP_S))]


def make(job: tuple[str, str, int]) -> tuple[np.ndarray, np.ndarray, str]:
    """One augmented utterance's features and labels, seeded by its job."""
    engine, voice, seed = job
    rng = np.random.default_rng(seed)
    make_sample = {
        "espeak": espeak_sample, "flite": flite_sample, "festival": festival_sample,
        "kokoro": kokoro_sample, "kokoro-mix": kokoro_mix_sample,
    }  # fmt: skip
    s = make_sample[engine](rng, voice)
    s = augment(s, rng)
    x = features(s, rng.uniform(0.82, 1.22) if rng.random() < 0.7 else 1.0)
    return x.astype(np.float16), labels(s.spans, len(x)), s.group


def jobs(counts: tuple[int, int, int, int, int], seed: int) -> list[tuple[str, str, int]]:
    """Seeded jobs: espeak-ng, flite/festival, Kokoro US, Kokoro accented, Kokoro mixed, in
    that order (a larger count adds jobs at its end, so a smaller corpus is a prefix of each
    group)."""
    n_espeak, n_other, n_kokoro, n_accented, n_mixed = counts
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n_espeak):
        voice = f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(ESPEAK_VARIANTS)}"
        out.append(("espeak", voice, seed * 1_000_003 + k))
    voices = [("flite", v) for v in FLITE_VOICES if v not in HELD_OUT]
    voices += [("festival", v) for v in FESTIVAL_VOICES]
    for k in range(n_other):
        engine, voice = voices[k % len(voices)]
        out.append((engine, voice, seed * 1_000_003 + n_espeak + k))
    base = seed * 1_000_003 + n_espeak + n_other
    for k in range(n_kokoro):
        out.append(("kokoro", kokoro.TRAIN_VOICES[k % len(kokoro.TRAIN_VOICES)], base + k))
    for k in range(n_accented):
        voice = kokoro.ACCENTED_VOICES[k % len(kokoro.ACCENTED_VOICES)]
        out.append(("kokoro", voice, base + n_kokoro + k))
    # Mixed speakers take seeds no count above moves: a corpus without accented
    # utterances gets the same ones.
    out += [("kokoro-mix", "", seed * 1_000_003 + 500_000 + k) for k in range(n_mixed)]
    return out


def build(counts: tuple[int, int, int, int, int], seed: int, path: Path, procs: int) -> None:
    with Pool(procs) as pool:
        made = pool.map(make, jobs(counts, seed), chunksize=8)
    lengths = np.array([len(x) for x, _, _ in made])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x=np.concatenate([x for x, _, _ in made]),
        y=np.concatenate([y for _, y, _ in made]),
        lengths=lengths,
        groups=np.array([g for _, _, g in made]),
    )
    hours = lengths.sum() * MEL_HOP_S / 3600
    print(f"{len(made)} utterances, {hours:.2f} h, {lengths.sum()} frames -> {path}")


def corpus_name(n_kokoro: int, n_accented: int, n_mixed: int = 0) -> str:
    """corpus-k3600.npz, or with accented and mixed Kokoro utterances
    corpus-k3600-a1200-m1200.npz."""
    return (
        f"corpus-k{n_kokoro}"
        + (f"-a{n_accented}" if n_accented else "")
        + (f"-m{n_mixed}" if n_mixed else "")
        + ".npz"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tenth of the corpus")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--kokoro", type=int, default=3600, help="Kokoro US utterances (v4: 2400)")
    ap.add_argument("--accented", type=int, default=1200, help="Kokoro accented (causal: 0)")
    ap.add_argument("--mixed", type=int, default=1200, help="Kokoro mixed speakers")
    args = ap.parse_args()
    counts = (
        (300, 120, 40, 20, 20)
        if args.small
        else (5000, 3200, args.kokoro, args.accented, args.mixed)
    )
    name = "corpus-small.npz" if args.small else corpus_name(args.kokoro, args.accented, args.mixed)
    build(counts, args.seed, CACHE / name, args.procs)


if __name__ == "__main__":
    main()
