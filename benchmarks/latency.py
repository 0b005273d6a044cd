"""End-to-end latency: audio in -> Live Link packet out, for `live` and for `play -`.

live: a private PulseAudio null sink is loaded; this script plays vowel bursts with a
sharp onset into it while `nsplayer live` records its monitor (PULSE_SOURCE) and sends
to a LiveLinkReceiver in a separate process. For each burst:

* onset DAC time: from the output callback (``outputBufferDacTime`` of the buffer holding
  the onset sample, converted to ``time.monotonic()``);
* PulseAudio path: the same onset found in a second recording of the monitor, by its ADC
  time, minus the DAC time — PulseAudio's own buffering, which a real microphone does
  not have, so it is reported but not counted;
* the first received packet whose JawOpen rises above a threshold after the onset.

live latency = packet arrival - onset ADC time, split with `live --stats` (per-frame
capture, block arrival, model ready and send times, timecode frame number) into input
buffering (device + block), the model's look-ahead, the response (from the onset to the
time of the frame whose JawOpen first crosses the threshold: the model's attack and the
animator's blend-in, plus rounding to the frame grid) and compute + send.

play -: `nsplayer play -` is started and left to import and block on stdin; then espeak-ng
speech is written to it. Latency = arrival of the packet of the stream's first frame - the
first byte written, without sound (null sink) and through the sound device (which holds
the frame until its audio is heard, so the output latency counts). The player opens the
device before the header at a guessed format (22.05 kHz), or at ``--rate`` if given; a
24 kHz stream (converted by sox) shows the cost of a wrong guess: the model is made anew
and the sink resamples.

Targets: live p95 <= 60 ms; stdin first speech frame <= 150 ms. Prints a markdown table.
Run on a quiet machine for the README figures (`--quick` only checks that it works).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RATE = 48000
FPS = 60  # nsplayer's default frame rate
BURST_S, GAP_S = 0.35, 0.9
ESPEAK_RATE = 22050  # espeak-ng's WAV output
LEAD_S = 2.0  # a new PulseAudio stream's first second comes in bursts: skip it
JAW_THRESHOLD = 0.08
ONSET_LEVEL = 0.05  # onset in a recording: first sample above this after the gap


def vowel(seconds: float, rate: int, f0: float = 120.0) -> np.ndarray:
    """An /a/-like vowel with a 2 ms attack: harmonics shaped by formants 700/1200/2500 Hz."""
    t = np.arange(int(seconds * rate)) / rate
    x = np.zeros_like(t)
    for k in range(1, int(4000 / f0)):
        f = k * f0
        x += (
            np.exp(-(((f - 700) / 200) ** 2))
            + 0.6 * np.exp(-(((f - 1200) / 250) ** 2))
            + 0.2 * np.exp(-(((f - 2500) / 300) ** 2))
            + 0.05
        ) * np.sin(2 * np.pi * f * t)
    ramp = np.minimum(1.0, np.arange(len(t)) / (0.002 * rate))
    fade = np.minimum(1.0, (len(t) - np.arange(len(t))) / (0.01 * rate))
    return (0.5 * x / np.abs(x).max() * ramp * fade).astype(np.float32)


def burst_train(bursts: int, rate: int) -> tuple[np.ndarray, list[int]]:
    """Silence, then bursts separated by gaps; returns the signal and the onset samples.

    Each gap is GAP_S plus 0.618 of a frame period (the golden ratio's fraction), so the
    onsets fall at evenly spread points of the frame grid rather than all at one: where an
    onset falls within a frame changes its latency by up to a frame period.
    """
    lead = np.zeros(int(LEAD_S * rate), np.float32)
    burst = vowel(BURST_S, rate)
    parts, onsets, pos, phase = [lead], [], len(lead), 0.0
    for _ in range(bursts):
        onsets.append(pos)
        phase += (np.sqrt(5) - 1) / 2 * rate / FPS
        gap = np.zeros(int(GAP_S * rate + phase), np.float32)
        phase -= int(phase)
        parts += [burst, gap]
        pos += len(burst) + len(gap)
    return np.concatenate(parts), onsets


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -- PulseAudio ------------------------------------------------------------------------------


@contextlib.contextmanager
def private_null_sink(name: str) -> Iterator[str]:
    """Load a null sink only this run uses, so other audio on the machine does not leak in."""
    out = subprocess.run(
        ["pactl", "load-module", "module-null-sink", f"sink_name={name}", f"rate={RATE}"],
        capture_output=True,
        text=True,
        check=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["pactl", "unload-module", out.stdout.strip()], check=False)


_RECEIVER = """
import sys, threading
from livelink import LiveLinkReceiver
from livelink.names import JAW_OPEN
rx = LiveLinkReceiver(port=0)
print(rx.port, flush=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
got = []
while not done.is_set():
    item = rx.receive(0.05)
    if item is not None:
        got.append((item[1], item[0].time.frame, float(item[0].values[JAW_OPEN])))
print("\\n".join(f"{t!r} {f} {j!r}" for t, f, j in got))
"""


class Receiver:
    """A separate process stamping packet arrivals (time.monotonic is system-wide), so this
    process's audio callbacks cannot delay the stamps. Yields (arrival, frame, JawOpen)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RECEIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port = int(self.proc.stdout.readline())

    def stop(self) -> list[tuple[float, int, float]]:
        out, _ = self.proc.communicate("", timeout=10)
        rows = (line.split() for line in out.splitlines() if line.strip())
        return [(float(t), int(f), float(j)) for t, f, j in rows]


class Player:
    """Plays a signal into the private sink and records the DAC time of chosen samples."""

    def __init__(self, signal: np.ndarray, marks: list[int]) -> None:
        import sounddevice as sd

        self.signal, self.marks, self.pos = signal, marks, 0
        self.dac: dict[int, float] = {}
        self.done = threading.Event()
        self.stream = sd.OutputStream(
            device="pulse",
            samplerate=RATE,
            channels=1,
            dtype="float32",
            latency="low",
            callback=self._callback,
        )

    def _callback(self, outdata: np.ndarray, frames: int, timing, status) -> None:
        now = time.monotonic()
        start = now + (timing.outputBufferDacTime - timing.currentTime)
        chunk = self.signal[self.pos : self.pos + frames]
        outdata[: len(chunk), 0] = chunk
        outdata[len(chunk) :] = 0.0
        for mark in self.marks:
            if self.pos <= mark < self.pos + frames:
                self.dac[mark] = start + (mark - self.pos) / RATE
        self.pos += frames
        if self.pos >= len(self.signal):
            self.done.set()


class Recorder:
    """A second recording of the monitor: when did each onset arrive there (ADC time)?"""

    def __init__(self) -> None:
        import sounddevice as sd

        self.blocks: list[tuple[float, np.ndarray]] = []
        self.stream = sd.InputStream(
            device="pulse",
            samplerate=RATE,
            channels=1,
            dtype="float32",
            blocksize=int(RATE * 0.02),
            latency="low",
            callback=self._callback,
        )

    def _callback(self, indata: np.ndarray, frames: int, timing, status) -> None:
        now = time.monotonic()
        self.blocks.append(
            (now - (timing.currentTime - timing.inputBufferAdcTime), indata[:, 0].copy())
        )

    def onsets(self) -> list[float]:
        """ADC times of every rise above ONSET_LEVEL after at least half a gap of quiet."""
        times, quiet_until = [], -1.0
        for adc, pcm in self.blocks:
            loud = np.flatnonzero(np.abs(pcm) > ONSET_LEVEL)
            if len(loud) and adc + loud[0] / RATE > quiet_until:
                times.append(adc + loud[0] / RATE)
            if len(loud):
                quiet_until = adc + loud[-1] / RATE + GAP_S / 2
        return times


# -- live ------------------------------------------------------------------------------------


def measure_live(bursts: int, extra: list[str]) -> dict[str, list[float]]:
    name = f"nsplayer_latency_{os.getpid()}"
    signal, onsets = burst_train(bursts, RATE)
    with private_null_sink(name), tempfile.TemporaryDirectory() as tmp:
        os.environ["PULSE_SINK"] = name
        os.environ["PULSE_SOURCE"] = f"{name}.monitor"
        stats_path = Path(tmp) / "stats.json"
        receiver = Receiver()
        duration = len(signal) / RATE + 2.0
        live = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nsplayer.cli",
                "live",
                "--input-device",
                "pulse",
                "--target",
                f"127.0.0.1:{receiver.port}",
                "--stats",
                str(stats_path),
                "--duration",
                f"{duration:.1f}",
                *extra,
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        banner = live.stderr.readline()
        recorder, player = Recorder(), Player(signal, onsets)
        with recorder.stream, player.stream:
            player.done.wait(len(signal) / RATE + 5.0)
            time.sleep(0.5)
        live.wait(timeout=duration + 10)
        packets = receiver.stop()
        if live.returncode != 0:
            raise SystemExit(f"live failed ({live.returncode}): {banner}{live.stderr.read()}")
        stats = json.loads(stats_path.read_text())
    print(f"<!-- {banner.strip()} -->")
    dacs = [player.dac[o] for o in onsets if o in player.dac]
    return split_live(dacs, recorder.onsets(), packets, stats)


def split_live(dacs, adcs, packets, stats) -> dict[str, list[float]]:
    frames = stats["frames"]
    by_number: dict[int, list[int]] = {}  # a timecode's frame number recurs every second
    for k, number in enumerate(frames["frame"]):
        by_number.setdefault(number, []).append(k)
    names = ("pulse", "total", "input", "lookahead", "response", "send")
    rows: dict[str, list[float]] = {name: [] for name in names}
    lookahead = stats["lookahead_s"]
    for dac in dacs:
        adc = min((a for a in adcs if a >= dac - 0.05), default=None, key=lambda a: abs(a - dac))
        hit = next((p for p in packets if p[0] > dac and p[2] > JAW_THRESHOLD), None)
        if adc is None or hit is None or hit[0] - dac > GAP_S or hit[1] not in by_number:
            continue
        # the packet, and its frame in --stats: of those with its number, the one sent then
        arrival = hit[0]
        k = min(by_number[hit[1]], key=lambda j: abs(arrival - frames["arrival"][j]))
        audio_needed = frames["capture"][k] + lookahead
        rows["pulse"].append(adc - dac)
        rows["total"].append(arrival - adc)
        rows["input"].append(frames["arrival"][k] - audio_needed)
        rows["lookahead"].append(lookahead)
        rows["response"].append(frames["capture"][k] - adc)
        rows["send"].append(arrival - frames["arrival"][k])
        if os.environ.get("LATENCY_DEBUG"):
            print(f"<!-- {' '.join(f'{n}={1000 * v[-1]:.1f}' for n, v in rows.items())} -->")
    return rows


# -- play - ----------------------------------------------------------------------------------


def speech(rate: int = ESPEAK_RATE) -> bytes:
    """espeak-ng's WAV stream, converted by sox to ``rate`` (its header stays "unknown length",
    as a TTS engine's on a pipe)."""
    data = subprocess.run(
        ["espeak-ng", "--stdout", "Ah, a father's car is far."], capture_output=True, check=True
    ).stdout
    if rate == ESPEAK_RATE:
        return data
    sox = ["sox", "-t", "wav", "-", "-r", str(rate), "-t", "wav", "-"]
    return subprocess.run(sox, input=data, capture_output=True, check=True).stdout


def measure_stdin(
    runs: int, sound: bool, extra: tuple[str, ...] = (), rate: int = ESPEAK_RATE
) -> list[float]:
    """First stdin byte -> the packet of the stream's first frame, for `play -`.

    espeak-ng speech is written to the player's stdin at once, after the player had time
    to start and block on stdin. `--stats` lists every packet sent (idle ticks have no
    index); the first with an index is audio frame 0, matched to the received packets by
    order. With sound, the frame is held until its audio is heard, so the output latency
    of the device is included.
    """
    data = speech(rate)
    results = []
    for _ in range(runs):
        receiver = Receiver()
        with tempfile.TemporaryDirectory() as tmp:
            stats_path = Path(tmp) / "stats.json"
            play = subprocess.Popen(
                [sys.executable, "-m", "nsplayer.cli", "play", "-", "--stats", str(stats_path),
                 "--target", f"127.0.0.1:{receiver.port}",
                 *([] if sound else ["--no-audio"]), *extra],
                stdin=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(3.0)  # imports done, blocked on stdin
            first_byte = time.monotonic()
            play.stdin.write(data)
            play.stdin.close()
            play.wait(timeout=30)
            packets = receiver.stop()
            frames = json.loads(stats_path.read_text())["frames"]
        first = next(k for k, f in enumerate(frames) if f["index"] is not None)
        if len(packets) == len(frames):
            results.append(packets[first][0] - first_byte)
    return results


def table(live: dict[str, list[float]] | None, stdin: dict[str, list[float]] | None) -> str:
    ms = lambda v, q: f"{1000 * percentile(v, q):.1f}"  # noqa: E731
    lines = [
        "| path | n | p50 ms | p95 ms | target |",
        "|---|---|---|---|---|",
    ]
    if live is not None:
        names = {
            "total": ("live: audio in -> packet out", "p95 <= 60"),
            "input": ("  input buffering (device + block)", ""),
            "lookahead": ("  model look-ahead", ""),
            "response": ("  response: onset to the frame whose jaw opens", ""),
            "send": ("  compute + send (model, gate, animator, UDP)", ""),
            "pulse": ("  PulseAudio null-sink path (not counted)", ""),
        }
        for key, (label, target) in names.items():
            v = live[key]
            lines.append(f"| {label} | {len(v)} | {ms(v, 50)} | {ms(v, 95)} | {target} |")
    for sink, values in (stdin or {}).items():
        lines.append(
            f"| play - ({sink}): first stdin byte -> first speech frame | {len(values)} "
            f"| {ms(values, 50)} | {ms(values, 95)} | <= 150 |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few bursts, one stdin run")
    parser.add_argument("--skip-live", action="store_true")
    parser.add_argument("--skip-stdin", action="store_true")
    parser.add_argument("--live-args", default="", help="extra `nsplayer live` options, quoted")
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # the receiver thread stamps arrivals without waiting for the GIL
    live = stdin = None
    pulse = (
        shutil.which("pactl") is not None
        and subprocess.run(["pactl", "info"], capture_output=True).returncode == 0
    )
    if not pulse:
        print("<!-- live and the sound device skipped: no PulseAudio server (pactl info) -->")
    elif not args.skip_live:
        live = measure_live(6 if args.quick else 40, args.live_args.split())
    if not args.skip_stdin:
        runs = 1 if args.quick else 10
        stdin = {"--no-audio": measure_stdin(runs, sound=False)}
        if pulse:  # also through the (null) sound device, opened before the header
            stdin["sound device"] = measure_stdin(runs, sound=True)
            early = ("--rate", str(ESPEAK_RATE))
            stdin[f"sound device, --rate {ESPEAK_RATE}"] = measure_stdin(runs, True, early)
            if shutil.which("sox"):  # a stream at another rate than the guess: converted
                stdin["sound device, 24 kHz"] = measure_stdin(runs, True, rate=24000)
    print(table(live, stdin))


if __name__ == "__main__":
    main()
