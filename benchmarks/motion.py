"""How much the embedded models move the mouth: the lipsync benchmark judges whether a shape
is reached, not what it costs in motion, so a faster or stronger mapping could win there
by twitching. Per channel, on benchmarks/lipsync.py's clean sentences (espeak-ng and, when
made, the Kokoro UK speakers): travel, the sum of the frame-to-frame changes per second of
audio, and turns, the changes of direction per second (steps under 0.01 ignored). A
person's lips turn at about the syllable rate (4-6 per second in read speech).

Run: ``python benchmarks/motion.py`` (``--quick``: the first 15 sentences). Prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lipsync

from livelink import names as N

CHANNELS = {
    "jaw": N.JAW_OPEN,
    "close": N.MOUTH_CLOSE,
    "funnel": N.MOUTH_FUNNEL,
    "pucker": N.MOUTH_PUCKER,
    "stretch": N.MOUTH_STRETCH_LEFT,
    "roll lower": N.MOUTH_ROLL_LOWER,
}
STEP = 0.01  # smaller frame-to-frame changes are not a turn


def motion(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per channel in ``CHANNELS``: total travel and number of turns."""
    d = np.diff(rows[:, list(CHANNELS.values())].astype(np.float64), axis=0)
    travel = np.abs(d).sum(axis=0)
    turns = np.zeros(len(CHANNELS))
    for k in range(len(CHANNELS)):
        signs = np.sign(d[np.abs(d[:, k]) > STEP, k])
        turns[k] = np.count_nonzero(signs[1:] != signs[:-1])
    return travel, turns


def measure(loaders, model: str, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """Travel and turns per second of audio over every utterance."""
    travel, turns, seconds = np.zeros(len(CHANNELS)), np.zeros(len(CHANNELS)), 0.0
    for load in loaders:
        audio, sr, _ = load()
        a, b = motion(lipsync.run_model(model, audio, sr, causal))
        travel, turns, seconds = travel + a, turns + b, seconds + len(audio) / sr
    return travel / seconds, turns / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first 15 sentences only")
    args = parser.parse_args()
    sources = lipsync.sources(15 if args.quick else len(lipsync.SENTENCES))
    wanted = [name for name in sources if name.startswith(("espeak", "Kokoro UK"))]
    print("| source | model | " + " | ".join(CHANNELS) + " |")
    print("|---|---|" + "---:|" * len(CHANNELS))
    for name in wanted:
        for model in ("dsp", "learned"):
            for causal in (False, True):
                travel, turns = measure(sources[name], model, causal)
                cells = " | ".join(f"{a:.2f} / {b:.1f}" for a, b in zip(travel, turns, strict=True))
                mode = "causal" if causal else "offline"
                print(f"| {name.split(',')[0]} | {model} {mode} | {cells} |", flush=True)
    print("\ncells: travel per second / turns per second")


if __name__ == "__main__":
    main()
