"""NeuroSync over HTTP against `nsplayer serve` on loopback: first-frame time, throughput, RSS.

    python benchmarks/http_model.py [--quick]

1. Time to the first frame for a long file: the neurosync model (segments, as `play` uses it)
   vs one whole-file request; and from `nsplayer play --model neurosync --no-audio` start to
   its first speaking Live Link packet, segmented vs one whole-file segment (segment_s > duration).
   Segmented should be a fraction of whole-file time and not grow with the file's length.
2. Server throughput in seconds of audio per second, with 1, 2 and 4 concurrent clients
   posting 10 s clips, to `serve` with one model worker (a thread) and with `--workers 2`
   (processes: past the interpreter lock).
3. Peak RSS of the server process (Linux: VmHWM; elsewhere n/a).

Speech comes from espeak-ng when it is installed (else a voiced buzz), tiled to length.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
import soundfile as sf

from livelink import LiveLinkReceiver
from livelink.names import JAW_OPEN
from nsplayer.models.neurosync import NeuroSyncModel, NeuroSyncSettings

SPEAKING = 0.05  # JawOpen above this: a speech frame, not idle
TEXT = (
    "The quick brown fox jumps over the lazy dog. Peter Piper picked a peck of pickled "
    "peppers. She sells sea shells by the sea shore, and we went home to rest."
)


def speech(seconds: float) -> tuple[np.ndarray, int]:
    """``seconds`` of speech: espeak-ng if available, tiled; else a voiced on/off buzz."""
    if shutil.which("espeak-ng"):
        wav = subprocess.run(["espeak-ng", "--stdout", TEXT], capture_output=True, check=True)
        pcm, rate = sf.read(io.BytesIO(wav.stdout), dtype="float32")
    else:
        rate = 22050
        t = np.arange(5 * rate) / rate
        buzz = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 10))
        pcm = (0.3 * buzz * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)).astype(np.float32)
    n = round(seconds * rate)
    return np.resize(pcm, n).astype(np.float32), rate


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Server:
    """`nsplayer serve --port 0` in a subprocess."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "nsplayer.cli", "serve", "--port", "0", *args]
        self.proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        self.url = line.split(" on ", 1)[1].split()[0]

    def peak_rss_mb(self) -> str:
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.exists():
            return "n/a"
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return f"{int(line.split()[1]) / 1024:.0f}"
        return "n/a"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def first_frame_segmented(url: str, pcm: np.ndarray, rate: int) -> float:
    """Seconds from model creation to its first frame, fed in 20 ms blocks like `play`."""
    start = time.perf_counter()
    model = NeuroSyncModel(rate, 60, NeuroSyncSettings(url=url))
    block = rate // 50
    try:
        for i in range(0, len(pcm), block):
            if len(model.feed(pcm[i : i + block])):
                return time.perf_counter() - start
        model.flush()
        return time.perf_counter() - start
    finally:
        model.close()


def first_frame_whole(url: str, pcm: np.ndarray, rate: int) -> float:
    """Seconds for one request with the whole file (encoding included)."""
    start = time.perf_counter()
    resp = requests.post(url, data=wav_bytes(pcm, rate), timeout=600)
    resp.raise_for_status()
    resp.json()
    return time.perf_counter() - start


def first_packet_cli(url: str, wav: Path, segment_s: float | None) -> float:
    """Seconds from starting `nsplayer play` to its first speaking packet (loopback)."""
    config = wav.with_suffix(".yaml")
    config.write_text(f"neurosync:\n  segment_s: {segment_s}\n" if segment_s else "{}\n")
    with LiveLinkReceiver(port=0, timeout=120) as receiver:
        command = [
            sys.executable,
            "-m",
            "nsplayer.cli",
            "play",
            str(wav),
            "--no-audio",
            "-q",
            "--model",
            "neurosync",
            "--url",
            url,
            "--config",
            str(config),
            "--target",
            f"127.0.0.1:{receiver.port}",
        ]
        start = time.monotonic()
        proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        try:
            for frame, arrival, _addr in receiver:
                if frame.values[JAW_OPEN] > SPEAKING:  # idle packets come first
                    return arrival - start
            raise RuntimeError("no speech packet from nsplayer play")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def throughput(url: str, clients: int, clip: bytes, clip_s: float, duration: float) -> float:
    """Seconds of audio answered per second of wall time, ``clients`` posting in a loop."""
    done = [0] * clients
    stop_at = time.perf_counter() + duration

    def client(k: int) -> None:
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                session.post(url, data=clip, timeout=600).raise_for_status()
                done[k] += 1

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) * clip_s / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short files, short runs")
    args = parser.parse_args()
    lengths = (10.0, 20.0) if args.quick else (15.0, 60.0)
    run_s = 2.0 if args.quick else 10.0

    clip = wav_bytes(*speech(10.0))
    server = Server()
    try:
        first_frame_whole(server.url, *speech(1.0))  # warm-up: imports, first model
        print("| file | segmented first frame (s) | whole-file request (s) | ratio |")
        print("|---|---|---|---|")
        for seconds in lengths:
            pcm, rate = speech(seconds)
            seg = first_frame_segmented(server.url, pcm, rate)
            whole = first_frame_whole(server.url, pcm, rate)
            print(f"| {seconds:.0f} s | {seg:.3f} | {whole:.3f} | {seg / whole:.0%} |")
        print()
        print("| file | `play` start to first speech packet, segmented (s) | whole-file (s) |")
        print("|---|---|---|")
        with tempfile.TemporaryDirectory() as tmp:
            for seconds in lengths:
                wav = Path(tmp) / f"speech{seconds:.0f}.wav"
                pcm, rate = speech(seconds)
                sf.write(wav, pcm, rate, subtype="PCM_16")
                seg = first_packet_cli(server.url, wav, None)
                whole = first_packet_cli(server.url, wav, seconds + 1)
                print(f"| {seconds:.0f} s | {seg:.3f} | {whole:.3f} |")
        print()
        print(f"peak server RSS: {server.peak_rss_mb()} MB")
    finally:
        server.stop()
    print()
    pooled = Server("--workers", "2")
    try:
        first_frame_whole(pooled.url, *speech(1.0))  # warm-up: both workers start
        first_frame_whole(pooled.url, *speech(1.0))
        print("| concurrent clients | throughput, 1 worker (s of audio / s) | --workers 2 |")
        print("|---|---|---|")
        for clients in (1, 2, 4):
            server = Server()
            try:
                first_frame_whole(server.url, *speech(1.0))
                one = throughput(server.url, clients, clip, 10.0, run_s)
            finally:
                server.stop()
            two = throughput(pooled.url, clients, clip, 10.0, run_s)
            print(f"| {clients} | {one:.1f} | {two:.1f} |")
    finally:
        pooled.stop()


if __name__ == "__main__":
    main()
