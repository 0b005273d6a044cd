"""Soak: does a long `nsplayer idle` (a face left running for a day) keep its memory flat?

Runs `nsplayer idle` (and its pacer process) for ``--minutes`` (default 10), reads the
resident memory of the whole process tree every ``--every`` seconds from /proc, and fits a
line to the second half of the run (after start-up has settled). Linux only (/proc).

    python benchmarks/soak_idle.py [--minutes 10] [--every 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            continue
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    cmd = [sys.executable, "-m", "nsplayer", "idle", "--target", "127.0.0.1:9", "-q"]
    proc = subprocess.Popen(cmd)
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < args.minutes * 60:
            time.sleep(args.every)
            samples.append((elapsed / 60, tree_rss_mb(proc.pid)))
    finally:
        proc.terminate()
        proc.wait(10)
    t, rss = np.array(samples).T
    late = t >= t[-1] / 2
    slope = np.polyfit(t[late], rss[late], 1)[0] * 1024 if late.sum() > 1 else float("nan")
    print(f"`nsplayer idle` for {args.minutes:g} min (RSS of the player and its pacer)\n")
    print("| minutes | RSS at 1 min (MB) | RSS at the end (MB) | slope, second half (KB/min) |")
    print("|---|---|---|---|")
    first = rss[np.argmin(np.abs(t - 1.0))]
    print(f"| {args.minutes:g} | {first:.1f} | {rss[-1]:.1f} | {slope:+.1f} |")


if __name__ == "__main__":
    main()
