"""Codec and sender throughput: packets/s for encode and decode, and the CPU cost of sending
one frame to 100 subjects (as % of one core at 60 fps). Prints a markdown table.

    python benchmarks/codec.py [--quick]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import time

import numpy as np

from livelink import FaceFrame, FrameTime, LiveLinkSender, decode, encode

DEVICE_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"  # 36 chars, like a real device
SUBJECTS = 100
FPS = 60


def _rate(job, n: int, runs: int) -> float:
    """Median calls per second of ``job`` over ``runs`` runs of ``n`` calls (CPU time)."""
    rates = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(n):
            job()
        rates.append(n / max(time.process_time() - start, 1e-9))
    return statistics.median(rates)


def _send_cost(frames: int, runs: int) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds) to send one frame to each of 100 subjects."""
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never read: kernel drops
    sink.bind(("127.0.0.1", 0))
    names = [f"subject{i:03d}" for i in range(SUBJECTS)]
    values = np.random.default_rng(0).random(61, dtype=np.float32)
    walls, cpus = [], []
    with LiveLinkSender([f"127.0.0.1:{sink.getsockname()[1]}"], subject=names[0]) as sender:
        t = FrameTime.now()
        for _ in range(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(frames):
                t = t.advance()
                for name in names:
                    sender.send(values, t, subject=name)
            walls.append((time.perf_counter() - wall) / frames)
            cpus.append((time.process_time() - cpu) / frames)
    sink.close()
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = parser.parse_args()
    n, runs, frames = (20_000, 3, 30) if args.quick else (200_000, 7, 300)

    rng = np.random.default_rng(1)
    frame = FaceFrame(rng.random(61, dtype=np.float32), "nsplayer-test", DEVICE_ID, FrameTime(1))
    data = encode(frame)
    enc = _rate(lambda: encode(frame), n, runs)
    dec = _rate(lambda: decode(data), n, runs)
    wall, cpu = _send_cost(frames, runs)
    share = cpu * FPS * 100

    print(f"| codec ({len(data)}-byte packets, median of {runs} runs) | result | target |")
    print("|---|---|---|")
    print(f"| encode | {enc:,.0f} packets/s | ≥ 200,000 |")
    print(f"| decode | {dec:,.0f} packets/s | ≥ 150,000 |")
    print(f"| send 1 frame to {SUBJECTS} subjects | {wall * 1e3:.2f} ms wall, "
          f"{cpu * 1e3:.2f} ms CPU | |")  # fmt: skip
    print(f"| {SUBJECTS} subjects × {FPS} fps | {share:.1f} % of one core | < 5 % |")


if __name__ == "__main__":
    main()
