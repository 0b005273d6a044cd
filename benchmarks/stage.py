"""`nsplayer stage` under use: start latency, interrupts, many subjects, memory.

A real `nsplayer stage` process is driven by WebSocket clients streaming examples/speech.wav
in real-time 40 ms chunks; its packets are received on loopback and matched by frame number
to its `--stats` report, which says which packet carried each utterance's speech frame 0.

* first audio chunk -> first speech packet: the chunk's send time to the arrival of the
  packet of speech frame 0, with `--audio none` and through PulseAudio (`--audio local`,
  whose frames wait for their audio to be heard). It includes the jitter cushion (the
  model's look-ahead + 60 ms) by design.
* interrupt -> mouth at rest: an `interrupt` (default 150 ms fade) sent while the jaw is
  open; the arrival of the first packet from which JawOpen stays below 0.05. Again with a
  1000 ms fade, through which the mouth keeps speaking, scaled by the fade's gain.
* N subjects speaking at once: CPU of the service and its pacer process (from /proc, Linux)
  while all speak, divided by the wall time; |send time - due| p99 over every speech frame;
  frames dropped as late.
* RSS of the service over --minutes of back-to-back utterances on 4 subjects.

Targets: first speech packet p95 <= 100 ms with audio none; interrupt -> rest <= 150 ms;
16 subjects < 100 % of one core with 0 dropped; memory flat. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect

from livelink import LiveLinkReceiver
from livelink.names import INDEX

SPEECH = Path(__file__).parent.parent / "examples" / "speech.wav"
CHUNK_S = 0.04
JAW = INDEX["JawOpen"]
REST = 0.05


class Receiver:
    """Packets on a loopback port: (arrival, subject, frame number, JawOpen)."""

    def __init__(self) -> None:
        self.receiver = LiveLinkReceiver(port=0, timeout=0.1)
        self.port = self.receiver.port
        self.got: list[tuple[float, str, int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.receiver.receive(0.1)
            if got is not None:
                frame = got[0]
                self.got.append(
                    (time.monotonic(), frame.subject, frame.time.frame, float(frame.values[JAW]))
                )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.receiver.close()


class Service:
    """`nsplayer stage` in a subprocess, with a receiver and a --stats file."""

    def __init__(self, subjects: list[str], audio: str = "none", stats: bool = True) -> None:
        self.receiver = Receiver()
        self._tmp = tempfile.TemporaryDirectory()
        self.stats_path = Path(self._tmp.name) / "stats.json"
        command = [
            sys.executable, "-m", "nsplayer.cli", "stage", "--port", "0", "--audio", audio,
            "--target", f"127.0.0.1:{self.receiver.port}",
            *(["--stats", str(self.stats_path)] if stats else []),
            "--max-subjects", str(max(16, len(subjects))),
            *(["--device", "pulse"] if audio == "local" else []),
            *[arg for name in subjects for arg in ("--subject", name)],
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        self._announced = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()  # never let stderr block it
        if not self._announced.wait(30):
            raise RuntimeError("nsplayer stage did not start")
        time.sleep(1.0)  # the pacer and, with PulseAudio, the output stream settle

    def _drain(self) -> None:
        for line in self.proc.stderr:
            if "ws://" in line and not self._announced.is_set():
                self.url = "ws://" + line.split("ws://")[1].split()[0]
                self._announced.set()

    def cpu_seconds(self) -> float:
        """CPU time of the service and its children (the pacer process) so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in [self.proc.pid, *_children(self.proc.pid)]:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        return kb / 1024

    def stop(self) -> list[dict]:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        time.sleep(0.3)
        self.receiver.close()
        stats = self.stats_path
        reports = json.loads(stats.read_text())["subjects"] if stats.exists() else []
        self._tmp.cleanup()
        return reports


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def speech() -> tuple[np.ndarray, int]:
    pcm, rate = sf.read(SPEECH, dtype="int16")
    return pcm, rate


async def stream(ws, subject: str, uid: str, pcm: np.ndarray, rate: int, paced: bool) -> float:
    """One utterance in 40 ms binary chunks; returns when its first chunk was sent."""
    await ws.send(json.dumps({"type": "utterance.start", "subject": subject, "utterance_id": uid}))
    step = round(CHUNK_S * rate)
    first = time.monotonic()
    for k, start in enumerate(range(0, len(pcm), step)):
        if paced:
            await asyncio.sleep(max(0.0, first + k * CHUNK_S - time.monotonic()))
        await ws.send(pcm[start : start + step].tobytes())
    await ws.send(json.dumps({"type": "utterance.end", "utterance_id": uid}))
    return first


async def events(ws, kind: str, uid: str) -> dict:
    while True:
        event = json.loads(await ws.recv())
        if event["type"] == kind and event.get("utterance_id") == uid:
            return event


async def _session(url: str, rate: int):
    ws = await connect(url, max_size=None)
    await ws.recv()  # session.created
    await ws.send(json.dumps({"type": "session.update", "sample_rate": rate}))
    return ws


def first_packets(audio: str, runs: int) -> list[float]:
    """First chunk -> the packet of speech frame 0, per utterance."""
    pcm, rate = speech()
    line = pcm[:rate]
    service = Service(["anna"], audio)

    async def drive() -> list[float]:
        ws = await _session(service.url, rate)
        firsts = []
        for k in range(runs):
            firsts.append(await stream(ws, "anna", f"u{k}", line, rate, paced=True))
            await events(ws, "utterance.finished", f"u{k}")
            await asyncio.sleep(0.3)
        await ws.close()
        return firsts

    firsts = asyncio.run(drive())
    frames = service.stop()[0]["frames"]
    zero, last = [], None  # each line's first speech packet: frame 0, or the first not dropped
    for f in frames:
        if f["index"] is not None:
            if last is None or f["index"] <= last:
                zero.append(f["frame"])
            last = f["index"]
    arrival = {frame: t for t, subject, frame, _ in service.receiver.got if subject == "anna"}
    return [arrival[f] - t for f, t in zip(zero, firsts, strict=True) if f in arrival]


def interrupts(runs: int, fade_ms: int | None = None) -> list[float]:
    """Interrupt sent while the jaw is open -> the first packet of lasting rest (``fade_ms``:
    the interrupt's, default the protocol's 150 ms)."""
    pcm, rate = speech()
    service = Service(["anna"])
    got = service.receiver.got

    async def drive() -> list[tuple[float, float]]:
        ws = await _session(service.url, rate)
        marks = []
        for k in range(runs):
            await stream(ws, "anna", f"i{k}", pcm, rate, paced=False)
            await events(ws, "utterance.started", f"i{k}")
            await asyncio.sleep(0.5 + 0.1 * k)
            while got[-1][3] < 0.2:  # wait for an open jaw
                await asyncio.sleep(0.005)
            sent = time.monotonic()
            fade = {} if fade_ms is None else {"fade_ms": fade_ms}
            await ws.send(json.dumps({"type": "interrupt", "subject": "anna", **fade}))
            await events(ws, "utterance.interrupted", f"i{k}")
            await asyncio.sleep(0.8 + (fade_ms or 0) / 1000)
            marks.append((sent, time.monotonic()))
        await ws.close()
        return marks

    marks = asyncio.run(drive())
    service.stop()
    results = []
    for sent, until in marks:
        window = [(t, jaw) for t, subject, _, jaw in got if subject == "anna" and sent < t < until]
        last_open = max((i for i, (_, jaw) in enumerate(window) if jaw >= REST), default=-1)
        results.append(window[last_open + 1][0] - sent)
    return results


def load(n: int, seconds: float) -> dict[str, float]:
    """N subjects speaking ``seconds`` at once: CPU, send error p99, dropped."""
    pcm, rate = speech()
    line = np.tile(pcm, int(np.ceil(seconds * rate / len(pcm))))[: int(seconds * rate)]
    names = [f"s{k}" for k in range(n)]
    service = Service(names)

    async def drive() -> tuple[float, float]:
        sockets = [await _session(service.url, rate) for _ in names]
        tasks = [
            asyncio.create_task(stream(ws, name, "line", line, rate, paced=True))
            for ws, name in zip(sockets, names, strict=True)
        ]
        await asyncio.sleep(1.0)
        begin = (time.monotonic(), service.cpu_seconds())
        await asyncio.sleep(seconds - 2.0)
        end = (time.monotonic(), service.cpu_seconds())
        await asyncio.gather(*tasks)
        for ws in sockets:
            await events(ws, "utterance.finished", "line")
            await ws.close()
        return end[0] - begin[0], end[1] - begin[1]

    wall, cpu = asyncio.run(drive())
    reports = service.stop()
    errors = np.concatenate(
        [
            [abs(f["sent"] - f["due"]) for f in r["frames"] if f["index"] is not None]
            for r in reports
        ]
    )
    return {
        "cpu": 100.0 * cpu / wall,
        "p99": 1000.0 * float(np.percentile(errors, 99)),
        "max": 1000.0 * float(errors.max()),
        "dropped": sum(r["dropped"] for r in reports),
        "frames": len(errors),
    }


def memory(minutes: float) -> list[float]:
    """RSS (MB) every 30 s over ``minutes`` of back-to-back lines on 4 subjects (without
    --stats, whose per-packet record grows by design)."""
    pcm, rate = speech()
    names = [f"m{k}" for k in range(4)]
    service = Service(names, stats=False)
    samples: list[float] = []

    async def speaker(ws, name: str, deadline: float) -> None:
        k = 0
        while time.monotonic() < deadline:
            await stream(ws, name, f"{name}-{k}", pcm, rate, paced=False)
            await events(ws, "utterance.finished", f"{name}-{k}")
            k += 1

    async def drive() -> None:
        deadline = time.monotonic() + 60 * minutes
        sockets = [await _session(service.url, rate) for _ in names]
        tasks = [
            asyncio.create_task(speaker(ws, name, deadline))
            for ws, name in zip(sockets, names, strict=True)
        ]
        while time.monotonic() < deadline:
            samples.append(service.rss_mb())
            await asyncio.sleep(30)
        await asyncio.gather(*tasks)
        samples.append(service.rss_mb())

    asyncio.run(drive())
    service.stop()
    return samples


def _pulse() -> bool:
    return shutil.which("pactl") is not None and (
        subprocess.run(["pactl", "info"], capture_output=True).returncode == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="utterances per latency row")
    parser.add_argument("--seconds", type=float, default=12.0, help="speech per load row")
    parser.add_argument("--minutes", type=float, default=10.0, help="memory row length")
    args = parser.parse_args()
    ms = lambda v, q: f"{1000 * np.percentile(v, q):.1f}"  # noqa: E731
    rows = ["| measure | n | p50 ms | p95 ms | target |", "|---|---|---|---|---|"]
    for audio, name in (("none", "audio none"), ("local", "PulseAudio null sink")):
        if audio == "local" and not _pulse():
            continue
        v = first_packets(audio, args.runs)
        target = "p95 ≤ 100" if audio == "none" else ""
        rows.append(
            f"| first audio chunk → first speech packet ({name}) | {len(v)} | {ms(v, 50)} | "
            f"{ms(v, 95)} | {target} |"
        )
    v = interrupts(max(5, args.runs // 2))
    rows.append(f"| interrupt → mouth at rest | {len(v)} | {ms(v, 50)} | {ms(v, 95)} | ≤ 150 |")
    v = interrupts(max(5, args.runs // 4), fade_ms=1000)
    rows.append(
        f"| interrupt, `fade_ms` 1000 → mouth at rest | {len(v)} | {ms(v, 50)} | {ms(v, 95)} | "
        "≤ 1000, speaking on through it |"
    )
    print("\n".join(rows) + "\n")
    rows = [
        "| subjects speaking at once | speech frames | service CPU % (one core = 100) | "
        "send − due p99 ms | max ms | dropped |",
        "|---|---|---|---|---|---|",
    ]
    for n in (1, 4, 16):
        r = load(n, args.seconds)
        rows.append(
            f"| {n} | {r['frames']} | {r['cpu']:.1f} | {r['p99']:.3f} | {r['max']:.2f} | "
            f"{r['dropped']} |"
        )
    print("\n".join(rows) + "\n")
    if args.minutes > 0:
        rss = memory(args.minutes)
        print(
            "| 4 subjects speaking back to back | RSS at start MB | after 1 min | at the end | "
            "max |\n|---|---|---|---|---|"
        )
        print(
            f"| {args.minutes:g} min | {rss[0]:.1f} | {rss[min(2, len(rss) - 1)]:.1f} | "
            f"{rss[-1]:.1f} | {max(rss):.1f} |"
        )
        print("\nRSS every 30 s (MB): " + ", ".join(f"{v:.1f}" for v in rss))


if __name__ == "__main__":
    main()
