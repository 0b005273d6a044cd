"""Sync: how precisely `nsplayer play` sends each frame when its audio is heard.

Plays a speech clip (60 s; ``--quick``: 5 s) with ``nsplayer play --stats`` as a
subprocess while a Live Link receiver listens, on the null sink and (when a PulseAudio
server runs) the PulseAudio null sink, each idle and with another process burning one
core. Reports the send error against the due time (DAC time of the frame's audio, on
the sink's clock): p50/p99/max, drift over the run, dropped frames, arrival-interval
jitter at the receiver and the player's CPU use (its own rusage over its wall time).

In the same run the naive approach is measured on the same clocks: a ``time.sleep``
loop started beside the audio, as NeuroSync Player does, whose frames are compared
with the DAC time of their audio; the last column is naive p99 / nsplayer p99.

The machine's own floor is measured at the same time as each player run: an empty
probe process waits for a 60 fps grid with the pacer's own wait (sleep, then spin) and
scheduling (real-time where the OS allows it) and records how late it wakes. No process
here can be more punctual than that, so a player max near the probe's max is the
machine's (the VM or the OS), not the player's.

    python benchmarks/sync.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from livelink import FrameTime, LiveLinkReceiver, LiveLinkSender
from nsplayer.audio.sinks import DeviceSink, NullSink, Sink
from nsplayer.pacer import go_realtime, wait_until

ROOT = Path(__file__).resolve().parent.parent
FPS = 60
TARGETS = {"p99": 1.0, "max": 3.0, "drift": 0.5, "cpu": 10.0}


def make_clip(seconds: float, path: Path) -> Path:
    """examples/speech.wav repeated to ``seconds`` (espeak-ng speech, 22050 Hz)."""
    speech, rate = sf.read(ROOT / "examples" / "speech.wav", dtype="float32")
    reps = int(np.ceil(seconds * rate / len(speech)))
    sf.write(path, np.tile(speech, reps)[: int(seconds * rate)], rate)
    return path


class Arrivals:
    """Arrival times (time.monotonic) of every packet at a real UDP receiver."""

    def __init__(self) -> None:
        self.receiver = LiveLinkReceiver(port=0, timeout=0.1)
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.receiver.receive(0.1)
            if got is not None:
                self.times.append(got[1])

    def jitter_ms(self) -> float:
        """p99 of |arrival interval - 1/fps|, in ms."""
        self._stop.set()
        self._thread.join()
        self.receiver.close()
        if len(self.times) < 3:
            return float("nan")
        return float(np.percentile(np.abs(np.diff(self.times) - 1 / FPS), 99) * 1000)


@contextmanager
def cpu_load(active: bool):
    """Another process keeping one core busy for the duration."""
    proc = None
    if active:
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def error_figures(sent: np.ndarray, due: np.ndarray) -> dict[str, float]:
    """p50/p99/max |sent - due| in ms, and the drift of the error in ms per minute."""
    err = (sent - due) * 1000
    slope = np.polyfit(due - due[0], err, 1)[0] if len(err) > 2 else float("nan")
    return {
        "p50": float(np.percentile(np.abs(err), 50)),
        "p99": float(np.percentile(np.abs(err), 99)),
        "max": float(np.abs(err).max()),
        "drift": float(slope * 60),
    }


def probe(seconds: float) -> None:
    """The floor probe (run as ``sync.py --probe SECONDS``): wake on a 60 fps grid with the
    pacer's wait and scheduling, print the p99 and max lateness in ms as JSON."""
    go_realtime()
    start = time.monotonic() + 0.1
    late = []
    for i in range(int(seconds * FPS)):
        due = start + i / FPS
        late.append(wait_until(time.monotonic, due) - due)
    ms = np.asarray(late) * 1000
    print(json.dumps({"p99": float(np.percentile(ms, 99)), "max": float(ms.max())}))


def steal_ms() -> float:
    """CPU time the hypervisor took from this VM's CPUs so far, in ms (Linux; NaN elsewhere):
    a vCPU the host runs something else on cannot wake anything on time."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@contextmanager
def floor_probe(seconds: float):
    """The probe in its own process for ``seconds``; yields a dict filled when it ends."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--probe", str(seconds)], stdout=subprocess.PIPE, text=True
    )
    result: dict[str, float] = {}
    try:
        yield result
    finally:
        out, _ = proc.communicate()
        result.update(json.loads(out))


def run_player(clip: Path, device: str | None, work: Path) -> dict[str, float]:
    """``nsplayer play`` as a subprocess; its stats, receiver jitter and CPU % (its own and
    its pacer process's: the pacer is a child it waits for, so wait4 counts it)."""
    arrivals = Arrivals()
    stats = work / "stats.json"
    audio = ["--device", device] if device else ["--no-audio"]
    cmd = [sys.executable, "-m", "nsplayer.cli", "play", str(clip), *audio, "-q"]
    cmd += ["--target", f"127.0.0.1:{arrivals.receiver.port}", "--stats", str(stats)]
    start, stolen = time.monotonic(), steal_ms()
    with floor_probe(sf.info(clip).duration) as floor:
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"nsplayer play failed: {proc.stderr.read().decode()}")
    report = json.loads(stats.read_text())
    speech = [f for f in report["frames"] if f["index"] is not None]
    figures = error_figures(
        np.array([f["sent"] for f in speech]), np.array([f["due"] for f in speech])
    )
    figures.update(
        jitter=arrivals.jitter_ms(),
        dropped=report["dropped"],
        cpu=report["cpu_percent"],  # while playing; startup is in the next column
        cpu_total=100 * (usage.ru_utime + usage.ru_stime) / wall,
        frames=len(speech),
        floor_p99=floor["p99"],
        floor_max=floor["max"],
        steal=steal_ms() - stolen,
        pacer=report["pacer"],
    )
    return figures


def run_naive(clip: Path, device: str | None) -> dict[str, float]:
    """Start the audio, then send frame i after i sleeps of 1/fps (NeuroSync Player's way).

    The sink here only plays the audio and reveals when each sample is heard; the loop
    ignores it, as the naive player does.
    """
    audio, rate = sf.read(clip, dtype="float32", always_2d=True)
    capacity = len(audio) / rate + 1
    sink: Sink
    if device:
        sink = DeviceSink(rate, 1, device=device, buffer_ms=0, capacity_s=capacity)
    else:
        sink = NullSink(rate, 1, buffer_ms=0, capacity_s=capacity)
    sender = LiveLinkSender(["127.0.0.1:9"])  # discard port: sending costs the same
    frames = int(len(audio) / rate * FPS)
    sent = np.zeros(frames)
    values = np.zeros(61, np.float32)
    try:
        sink.write(audio)
        sink.end()
        for i in range(frames):
            sender.send(values, FrameTime(i, 0.0, FPS, 1))
            sent[i] = sink.now()
            time.sleep(1 / FPS)
        deadline = time.monotonic() + 5
        while not sink.played() and time.monotonic() < deadline:
            time.sleep(0.005)
        due = np.array([sink.dac_time(round(i * rate / FPS)) for i in range(frames)])
    finally:
        sink.close()
        sender.close()
    figures = error_figures(sent, due)
    figures.update(jitter=float("nan"), dropped=0, frames=frames)
    return figures


def pulse_available() -> bool:
    if shutil.which("pactl") is None:
        return False
    return subprocess.run(["pactl", "info"], capture_output=True).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s clip instead of 60 s")
    parser.add_argument("--probe", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe)
    seconds = 5.0 if args.quick else 60.0
    sinks = [("null sink", None)] + (
        [("PulseAudio null sink", "pulse")] if pulse_available() else []
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = make_clip(seconds, work / "clip.wav")
        for name, device in sinks:
            for loaded in (False, True):
                with cpu_load(loaded):
                    ours = run_player(clip, device, work)
                    naive = run_naive(clip, device)
                rows.append((name, loaded, ours, naive))
    print(f"Sync, {seconds:.0f} s of speech at {FPS} fps (errors vs DAC time, ms)\n")
    print(
        "| sink | load | frames | p50 | p99 | max | drift ms/min | arrival jitter p99 "
        "| dropped | player CPU % (with startup) | pacer | machine floor p99 / max | steal ms "
        "| naive p99 | naive max | naive drift ms/min | naive/ours p99 |"
    )
    print("|---" * 17 + "|")
    for name, loaded, ours, naive in rows:
        ratio = naive["p99"] / ours["p99"] if ours["p99"] > 0 else float("inf")
        print(
            f"| {name} | {'1 core busy' if loaded else 'idle'} | {ours['frames']} "
            f"| {ours['p50']:.3f} | {ours['p99']:.3f} | {ours['max']:.3f} | {ours['drift']:+.3f} "
            f"| {ours['jitter']:.3f} | {ours['dropped']} "
            f"| {ours['cpu']:.1f} ({ours['cpu_total']:.1f}) | {ours['pacer']} "
            f"| {ours['floor_p99']:.2f} / {ours['floor_max']:.1f} | {ours['steal']:.0f} "
            f"| {naive['p99']:.1f} | {naive['max']:.1f} | {naive['drift']:+.1f} | {ratio:.0f}x |"
        )
    print(
        f"\nTargets: p99 <= {TARGETS['p99']} ms, max <= {TARGETS['max']} ms, drift within "
        f"±{TARGETS['drift']} ms/min, 0 dropped, player CPU < {TARGETS['cpu']}% of a core."
    )
    print(
        "Machine floor: an empty process waking on the same 60 fps grid with the pacer's "
        "wait and scheduling, during the player run (its lateness p99 / max, ms). Steal: "
        "CPU time the hypervisor took from this VM's CPUs during the run (/proc/stat)."
    )


if __name__ == "__main__":
    main()
