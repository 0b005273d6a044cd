"""Embedded models' speed (DSP and learned): real-time factor on one core, latency, load.

Real-time factor: 60 s of espeak-ng speech (benchmarks/lipsync.py's cached sentences,
repeated; 22.05 kHz, also resampled to 16 and 48 kHz) streamed through the model in 1 s
blocks, as ``nsplayer export`` does, best of three runs of process CPU time; numpy's BLAS
is held to one thread. Algorithmic latency:
the audio a frame needs past its own time before the model can return it
(``lookahead_s``: half the analysis window plus the look-ahead hops), checked by feeding
one sample at a time and noting when each frame appears. Load: the learned model's
weights read from disk in a fresh process (best of three).

Run: ``python benchmarks/model_speed.py`` (``--quick``: 10 s of speech, one run).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lipsync  # noqa: E402

from nsplayer.models import create_model  # noqa: E402

MODELS = ("dsp", "learned")


def speech(seconds: float) -> tuple[np.ndarray, int]:
    parts, sr, idx = [], 0, 0
    while sum(map(len, parts)) < seconds * (sr or 1) or not parts:
        audio, sr, _ = lipsync.utterance(idx % len(lipsync.SENTENCES))
        parts.append(audio)
        idx += 1
    return np.concatenate(parts)[: round(seconds * sr)], sr


def cpu_seconds(name: str, audio: np.ndarray, sr: int, causal: bool) -> float:
    start = time.process_time()
    model = create_model(name, sr, 60, causal=causal)
    for i in range(0, len(audio), sr):
        model.feed(audio[i : i + sr])
    model.flush()
    return time.process_time() - start


def measured_latency_ms(name: str, sr: int) -> float:
    """Largest gap between a frame's time and the audio fed when it came out."""
    model = create_model(name, sr, 60, causal=True)
    audio, _ = speech(1.0)
    worst, emitted, step = 0.0, 0, max(1, sr // 4000)
    for i in range(0, len(audio), step):
        new = len(model.feed(audio[i : i + step]))
        emitted += new
        if new:  # the newest frame just became available
            worst = max(worst, (i + step) / sr - (emitted - 1) / 60)
    return worst * 1000


def load_ms() -> float:
    """Wall time to read the learned weights, in a fresh process (nothing cached)."""
    code = (
        "import time; t = time.perf_counter(); from nsplayer.models import learned; "
        "t2 = time.perf_counter(); learned.load_weights(); print(time.perf_counter() - t2)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        for _ in range(3)
    ]
    return min(float(r.stdout) for r in runs) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seconds, runs = (10.0, 1) if args.quick else (60.0, 3)
    audio, sr = speech(seconds)
    print(f"Embedded models' speed, {seconds:.0f} s of speech, 60 fps, one core\n")
    print("| model | mode | sample rate | CPU time | real-time factor | algorithmic latency |")
    print("|---|---|---:|---:|---:|---:|")
    for name in MODELS:
        for causal, rate in ((True, sr), (False, sr), (True, 16000), (True, 48000)):
            x = audio if rate == sr else lipsync.resample(audio, sr, rate)
            cpu = min(cpu_seconds(name, x, rate, causal) for _ in range(runs))
            look = create_model(name, rate, 60, causal=causal).lookahead_s * 1000
            mode = "causal (live)" if causal else "offline (export)"
            print(
                f"| {name} | {mode} | {rate} Hz | {cpu:.3f} s | {seconds / cpu:.0f}× "
                f"| {look:.1f} ms |"
            )
    print()
    for name in MODELS:
        print(f"Causal latency of {name}, measured sample by sample: ", end="")
        print(f"{measured_latency_ms(name, sr):.1f} ms")
    print(f"Learned weights load: {load_ms():.1f} ms")


if __name__ == "__main__":
    main()
