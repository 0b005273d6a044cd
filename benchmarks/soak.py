"""Soak: memory and threads of long-running commands under load, on loopback only.

    python benchmarks/soak.py [--seconds S]

One function per row; each starts its own `nsplayer serve` subprocess, samples the RSS and
thread count of its whole process tree (the server and any --workers processes) every 50 ms,
and returns a row of the markdown table:

* `serve` answering one 1-minute and one 10-minute request (peak RSS should not grow with
  the duration: the audio is decoded in blocks; what grows is the answer, 61 values a frame);
* `serve` under 16 concurrent clients posting 10 s speech clips in a loop;
* the same with `--workers 2` (model workers as processes);
* `serve` under a slowloris of 500 connections trickling a request head one byte a second
  (reconnecting when the server drops them), while one normal client posts 2 s clips: its
  latency is what a real user sees during the attack.

Targets (issue 13): peak RSS and threads bounded whatever the load; the normal client keeps
being answered. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

HEADER = (
    "| load | seconds | requests answered | 503 | p50 ms | p95 ms | peak RSS MB | max threads |"
)
TEXT = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."


def speech_wav(seconds: float) -> bytes:
    """``seconds`` of speech as WAV bytes: espeak-ng if available, else a voiced buzz."""
    if shutil.which("espeak-ng"):
        out = subprocess.run(["espeak-ng", "--stdout", TEXT], capture_output=True, check=True)
        pcm, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    else:
        rate = 22050
        t = np.arange(3 * rate) / rate
        pcm = 0.3 * np.sin(2 * np.pi * 130 * t) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    buf = io.BytesIO()
    sf.write(buf, np.resize(pcm, round(seconds * rate)), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    pids, i = [pid], 0
    while i < len(pids):
        path = Path(f"/proc/{pids[i]}/task/{pids[i]}/children")
        with contextlib.suppress(OSError):  # it ended meanwhile
            pids += [int(p) for p in path.read_text().split()]
        i += 1
    return pids


def rss_and_threads(pid: int) -> tuple[int, int]:
    """Summed VmRSS (kB) and thread count over a process tree."""
    rss = threads = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads += int(line.split()[1])
        except OSError:
            pass
    return rss, threads


@dataclass
class Served:
    """`nsplayer serve` in a subprocess, sampled while it runs."""

    args: tuple[str, ...] = ()
    peak_rss_kb: int = 0
    max_threads: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Served:
        command = [sys.executable, "-m", "nsplayer.cli", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        self.url = line.split(" on ", 1)[1].split()[0]
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        threading.Thread(target=self._sample, daemon=True).start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            rss, threads = rss_and_threads(self.proc.pid)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            self.max_threads = max(self.max_threads, threads)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=60)


@dataclass
class Latencies:
    ok: list[float] = field(default_factory=list)
    busy: int = 0

    def post(self, session: requests.Session, url: str, body: bytes) -> None:
        """One request, timed; a 503 is counted, and the caller retries after 0.1 s."""
        start = time.perf_counter()
        resp = session.post(url, data=body, timeout=600)
        if resp.status_code == 503:
            self.busy += 1
            time.sleep(0.1)
            return
        resp.raise_for_status()
        self.ok.append(time.perf_counter() - start)

    def post_until(self, url: str, body: bytes, stop_at: float) -> None:
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                self.post(session, url, body)


def row(name: str, seconds: float, lat: Latencies, server: Served) -> str:
    ms = np.percentile(lat.ok, [50, 95]) * 1000 if lat.ok else (float("nan"),) * 2
    return (
        f"| {name} | {seconds:.0f} | {len(lat.ok)} | {lat.busy} | {ms[0]:.0f} | {ms[1]:.0f} | "
        f"{server.peak_rss_kb / 1024:.0f} | {server.max_threads} |"
    )


def long_request(minutes: float) -> str:
    """One request with ``minutes`` of speech (and a second, so the peak is steady)."""
    clip = speech_wav(60.0 * minutes)
    lat = Latencies()
    start = time.perf_counter()
    with Served(("--max-body-mb", "100")) as server, requests.Session() as session:
        for _ in range(2):
            lat.post(session, server.url, clip)
    seconds = time.perf_counter() - start
    return row(f"serve: one {minutes:g}-minute request at a time", seconds, lat, server)


def serve_1_minute(_: float) -> str:
    return long_request(1)


def serve_10_minutes(_: float) -> str:
    return long_request(10)


def concurrent_clients(seconds: float, clients: int = 16, *args: str) -> str:
    """``clients`` threads posting 10 s clips for ``seconds``."""
    clip = speech_wav(10.0)
    lat = Latencies()
    with Served(args) as server:
        stop_at = time.perf_counter() + seconds
        threads = [
            threading.Thread(target=lat.post_until, args=(server.url, clip, stop_at))
            for _ in range(clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    label = f"serve {' '.join(args)}".strip()
    return row(f"{label}: {clients} clients, 10 s clips", seconds, lat, server)


def serve_16_clients(seconds: float) -> str:
    return concurrent_clients(seconds, 16)


def serve_16_clients_2_workers(seconds: float) -> str:
    return concurrent_clients(seconds, 16, "--workers", "2")


def serve_slowloris(seconds: float, connections: int = 500) -> str:
    """``connections`` trickling a request head one byte a second (reconnecting when dropped),
    while one normal client posts 2 s clips; the row is the normal client's view."""
    clip = speech_wav(2.0)
    lat = Latencies()
    head = b"POST /audio_to_blendshapes HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    with Served(("--request-timeout", "5")) as server:
        stop_at = time.perf_counter() + seconds
        attack = threading.Thread(target=slowloris, args=(server.port, connections, head, stop_at))
        attack.start()
        time.sleep(2.0)  # all connections open
        lat.post_until(server.url, clip, stop_at)
        attack.join()
    return row(
        f"serve: {connections}-connection slowloris + 1 client, 2 s clips", seconds, lat, server
    )


def slowloris(port: int, n: int, head: bytes, stop_at: float) -> None:
    """Keep ``n`` connections open, each sending the next byte of ``head`` once a second."""
    socks: list[tuple[socket.socket, int]] = []
    try:
        while time.perf_counter() < stop_at:
            socks = [_nudge(sock, sent, head) for sock, sent in socks]
            socks = [(s, k) for s, k in socks if s is not None]
            while len(socks) < n:
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                socks.append((sock, 0))
            time.sleep(1.0)
    finally:
        for sock, _ in socks:
            sock.close()


def _nudge(sock: socket.socket, sent: int, head: bytes) -> tuple[socket.socket | None, int]:
    try:
        if sock.recv(1) == b"":  # the server dropped it
            sock.close()
            return None, 0
    except BlockingIOError:
        pass
    except OSError:
        sock.close()
        return None, 0
    try:
        sock.send(head[sent : sent + 1])
    except OSError:
        sock.close()
        return None, 0
    return sock, sent + 1


ROWS: tuple[Callable[[float], str], ...] = (
    serve_1_minute,
    serve_10_minutes,
    serve_16_clients,
    serve_16_clients_2_workers,
    serve_slowloris,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="per row (default 30)")
    args = parser.parse_args()
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|")
    for fn in ROWS:
        print(fn(args.seconds), flush=True)


if __name__ == "__main__":
    main()
