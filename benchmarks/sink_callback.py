"""The audio callback's own cost: ``Sink._consume`` on a null sink whose clock stands still
(nothing else runs), and the scheduler's per-frame ``dac_time`` query. Prints a markdown
table of the median nanoseconds per call.

    python benchmarks/sink_callback.py [--quick]

To compare two versions, run it with ``PYTHONPATH`` pointing at each tree.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from nsplayer.audio.sinks import NullSink

RATE = 48000
BATCH = 32  # callbacks timed together, then the ring is refilled untimed


def _sink(channels: int) -> NullSink:
    return NullSink(RATE, channels, clock=lambda: 0.0, buffer_ms=0, capacity_s=1.0, start_lead=0)


def _consume_ns(frames: int, channels: int, refill: bool, rounds: int) -> float:
    """Median ns per callback: playing (``refill``) or running dry (silence)."""
    sink = _sink(channels)
    out = np.zeros((frames, channels), np.float32)
    block = np.zeros((frames * BATCH, channels), np.float32)
    dac, period, times = 100.0, frames / RATE, []
    sink.write(block)
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(BATCH):
            sink._consume(out, dac)
            dac += period
        times.append((time.perf_counter_ns() - start) / BATCH)
        if refill:
            sink.write(block)
    return statistics.median(times)


def _dac_time_ns(rounds: int) -> float:
    """Median ns per ``dac_time`` of a played sample (what the scheduler asks every frame)."""
    sink = _sink(1)
    out = np.zeros((480, 1), np.float32)
    sink.write(np.zeros((RATE // 2, 1), np.float32))
    for k in range(50):
        sink._consume(out, 100.0 + k * 0.01)
    times = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for i in range(0, 480 * 50, 400):
            sink.dac_time(i)
        times.append((time.perf_counter_ns() - start) / 60)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    rounds = 200 if parser.parse_args().quick else 2000
    print("| case | ns per call |\n|---|---:|")
    for frames, channels in ((256, 1), (480, 2), (1024, 2)):
        ns = _consume_ns(frames, channels, True, rounds)
        print(f"| `_consume`, {frames} frames x {channels} ch, playing | {ns:.0f} |")
    print(
        f"| `_consume`, 480 frames x 2 ch, run dry (silence) | "
        f"{_consume_ns(480, 2, False, rounds):.0f} |"
    )
    print(f"| `dac_time` of a played sample | {_dac_time_ns(rounds):.0f} |")


if __name__ == "__main__":
    main()
