"""Memory and time of long files: peak RSS of ``nsplayer export`` to CSV and of loading that
CSV for replay (``nsplayer.takes.load_rows``), for 10 and 60 minutes of audio; and export's
wall time for 30 minutes to .npy with numpy's BLAS pool at its default size and held to one
thread, as export now does.

The audio is examples/speech.wav (9.7 s of speech, 22.05 kHz) repeated, written once to
benchmarks/.cache. Each measurement runs in a fresh child process that reports its own peak
RSS (``ru_maxrss``), so one does not inherit another's memory. Prints a markdown table.

Run: ``nice -n 10 python benchmarks/soak_files.py`` (``--quick``: 2 and 10 minutes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / ".cache" / "soak"
SPEECH = ROOT / "examples" / "speech.wav"

# Child process: run one job, then print "<peak RSS in MB> <seconds>".
CHILD = """
import resource, sys, time
from pathlib import Path
job, path, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
start = time.perf_counter()
if job == "load":
    from nsplayer.takes import load_rows
    rows = load_rows(path, 60)
else:
    import contextlib
    import nsplayer.export as export
    if job == "export-all-threads":
        export.threadpool_limits = lambda n: contextlib.nullcontext()
    export.export(str(path), out, 60, out.suffix[1:])
took = time.perf_counter() - start
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, took)
"""


def long_audio(minutes: int) -> Path:
    """examples/speech.wav repeated to ``minutes``, written block by block (cached)."""
    path = CACHE / f"speech-{minutes}min.wav"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    speech, rate = sf.read(SPEECH, dtype="int16")
    total = minutes * 60 * rate
    with sf.SoundFile(path.with_suffix(".part"), "w", rate, 1, "PCM_16", format="WAV") as out:
        written = 0
        while written < total:
            block = speech[: total - written]
            out.write(block)
            written += len(block)
    path.with_suffix(".part").rename(path)
    return path


def child(job: str, path: Path, out: Path) -> tuple[float, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, job, str(path), str(out)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    rss, seconds = proc.stdout.split()
    return float(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 and 10 minutes")
    args = parser.parse_args()
    lengths = (2, 10) if args.quick else (10, 60)
    blas = 10 if args.quick else 30
    print(f"cores: {os.cpu_count()}; Python {sys.version.split()[0]}; numpy {np.__version__}\n")
    print("| audio | job | peak RSS | wall time |")
    print("|---|---|---|---|")
    for minutes in lengths:
        audio = long_audio(minutes)
        csv = CACHE / f"speech-{minutes}min.csv"
        rss, took = child("export", audio, csv)
        print(f"| {minutes} min | export to CSV ({csv.stat().st_size >> 20} MB) | {rss:.0f} MB "
              f"| {took:.1f} s |")  # fmt: skip
        rss, took = child("load", csv, csv)
        print(f"| {minutes} min | replay load of that CSV | {rss:.0f} MB | {took:.1f} s |")
    audio, npy = long_audio(blas), CACHE / f"speech-{blas}min.npy"
    for job, label in (
        ("export-all-threads", "default BLAS threads"),
        ("export", "one BLAS thread"),
    ):
        rss, took = child(job, audio, npy)
        print(f"| {blas} min | export to .npy, {label} | {rss:.0f} MB | {took:.1f} s |")


if __name__ == "__main__":
    main()
