"""Shared test helpers: a threaded UDP capture, a fake clock, markers for optional tools."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import settings

from livelink import LiveLinkReceiver
from nsplayer.audio.sinks import NullSink

# CI (.ci/run sets CI=true) runs the same examples every time: a red build is reproducible
# and never random. Locally Hypothesis explores anew each run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A shell without job control starts a background job (`pytest &`, `nohup ... &`) with
# SIGINT ignored, and every process pytest starts would inherit that: Python
# leaves an inherited SIG_IGN alone, so a Ctrl-C test would wait for a player that never
# hears it. A handler here is reset to the default in each child, as from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


class Capture:
    """Receives Live Link packets on a loopback port in a thread until stopped (a thread,
    so a burst of packets never overflows the socket buffer); keeps each with its arrival
    time (time.monotonic)."""

    def __init__(self) -> None:
        self.receiver = LiveLinkReceiver(port=0, timeout=0.1)
        self.got: list[tuple[float, object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.receiver.port}"

    @property
    def frames(self) -> list:
        return [frame for _, frame in list(self.got)]

    def of(self, subject: str, since: float = 0.0, until: float = float("inf")) -> list:
        """The frames of ``subject`` that arrived in [since, until)."""
        return [f for t, f in list(self.got) if f.subject == subject and since <= t < until]

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.receiver.receive(0.1)
            if got is not None:
                self.got.append((time.monotonic(), got[0]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.receiver.close()

    def stop(self) -> list:
        """Wait for the last packets, stop, and return every frame."""
        time.sleep(0.2)
        self.close()
        return self.frames


class SteppingClock:
    """Time moves when someone sleeps, and by 1 us per reading (so spinning ends)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def now(self) -> float:
        self.t += 1e-6
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(dt, 1e-5)


class ManualClock:
    """Time stands still until a test moves ``t``."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t


class CaptureSink(NullSink):
    """A null sink that keeps what each virtual callback played (mono: channel 0) and when
    it was heard."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.played: list[np.ndarray] = []
        self.heard: list[float] = []

    def _consume(self, out, dac):
        super()._consume(out, dac)
        self.played.append(out[:, 0].copy())
        self.heard.append(dac)

    def at(self, t: float) -> float:
        """The sample heard at time t."""
        k = int(np.searchsorted(self.heard, t, side="right")) - 1
        return float(self.played[k][round((t - self.heard[k]) * self.sample_rate)])


def start_listen(*args: str) -> tuple[subprocess.Popen, int]:
    """`nsplayer listen` on a free loopback port; the process and the port it announced."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsplayer", "listen", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
    )
    line = proc.stderr.readline()
    assert "listening on UDP 127.0.0.1:" in line, line
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


def pulse_running() -> bool:
    """A PulseAudio server answers (CI starts one with a null sink)."""
    if shutil.which("pactl") is None:
        return False
    return subprocess.run(["pactl", "info"], capture_output=True).returncode == 0


needs_pulse = pytest.mark.skipif(
    not pulse_running(), reason="no PulseAudio server (CI starts a null sink)"
)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture
def capture():
    cap = Capture()
    yield cap
    if not cap._stop.is_set():
        cap.stop()
