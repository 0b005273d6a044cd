"""Hand packets to whoever sends them on time: the pacer process, or this thread.

The scheduler decides what is due when, on the sink clock; a pacer sends it. The
process pacer (``nsplayer/pacer.py``) gets each packet ``lead`` seconds early, so the
player's threads may run late by that much without the face being late. Its times are
on time.monotonic(), converted from the sink clock at each hand-over. The inline pacer
waits in the calling thread; it serves deterministic tests on a fake clock and is the
fallback when no pacer process can run (it stops, or cannot start).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from array import array
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livelink import LiveLinkSender
from livelink.codec import FRAME_FROM_END
from nsplayer import pacer as pacer_script
from nsplayer.pacer import DONE, PACKET, READY, READY_REALTIME, RESULT, Pacer

PROCESS_LEAD_S = 0.008  # hand packets over this early: covers the player's own hiccups
_READY_TIMEOUT_S = 3.0
_DAY_S = 86400


class SendStats:
    """Per sent packet: speech frame index (-1 idle), audio time, due and send time."""

    def __init__(self) -> None:
        self.index = array("q")
        self.audio_time = array("d")
        self.due = array("d")
        self.sent = array("d")

    def add(self, index: int | None, audio_time: float, due: float, sent: float) -> None:
        self.index.append(-1 if index is None else index)
        self.audio_time.append(audio_time)
        self.due.append(due)
        self.sent.append(sent)

    def extend(self, other: SendStats) -> None:
        for mine, theirs in zip(self._columns(), other._columns(), strict=True):
            mine.extend(theirs)

    def _columns(self) -> tuple[array, ...]:
        return self.index, self.audio_time, self.due, self.sent

    def summary(self) -> dict[str, float | int | None]:
        """Send error of speech frames (sent - due) and the spread of send intervals, in ms."""
        speech = np.frombuffer(self.index, np.int64) >= 0
        error = (np.asarray(self.sent) - np.asarray(self.due))[speech] * 1000.0
        intervals = np.diff(np.asarray(self.sent)) * 1000.0
        return {
            "frames_sent": len(self.index),
            "speech_frames": int(speech.sum()),
            "error_ms_p50": _pct(np.abs(error), 50),
            "error_ms_p99": _pct(np.abs(error), 99),
            "error_ms_max": _pct(np.abs(error), 100),
            "error_ms_mean": float(error.mean()) if len(error) else None,
            "interval_ms_p50": _pct(intervals, 50),
            "interval_ms_min": _pct(intervals, 0),
            "interval_ms_max": _pct(intervals, 100),
        }

    def frames(self) -> list[dict[str, float | int | None]]:
        return [
            {
                "index": None if i < 0 else i,
                "audio_time": None if i < 0 else a,
                "due": d,
                "sent": s,
            }
            for i, a, d, s in zip(*self._columns(), strict=True)
        ]


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


class InlinePacer:
    """Sends from the calling thread, waiting on the sink clock (``sleep`` injectable)."""

    lead = 0.0
    mode = "inline"

    def __init__(
        self,
        sender: LiveLinkSender,
        clock: Callable[[], float],
        fps: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.stats = SendStats()
        self.lost: list[int] = []  # hand-over numbers of the packets dropped as too late
        self.cpu_seconds = 0.0  # used by another process (none here)
        self._handed = 0
        self._pacer = Pacer(
            sender.send_packet,
            period=1.0 / fps,
            wrap=_DAY_S * fps,
            frame_from_end=FRAME_FROM_END,
            clock=clock,
            sleep=sleep,
        )

    @property
    def dropped(self) -> int:
        return len(self.lost)

    def wait_ready(self) -> None:
        """Nothing to wait for."""

    def send(self, packet: bytes, due: float, index: int | None, audio_time: float) -> None:
        sent = self._pacer.submit(due, packet)
        if sent is None:
            self.lost.append(self._handed)
        else:
            self.stats.add(index, audio_time, due, sent)
        self._handed += 1

    def close(self) -> None:
        """Nothing to close: the sender belongs to the caller."""


class ProcessPacer:
    """Sends through a pacer process; falls back to an InlinePacer if it cannot."""

    def __init__(
        self, sender: LiveLinkSender, fps: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._sender, self._fps = sender, fps
        self.clock = clock  # the sink's: due times are on it (set once the sink is open)
        self._queued = SendStats()  # what was handed over; ``sent`` holds the clock offsets
        self._results = bytearray()
        self._ready = threading.Event()  # set once the process said it is ready, or failed
        self._started = False
        self._realtime = False
        self._inline: InlinePacer | None = None
        self.stats = SendStats()
        self.lost: list[int] = []  # hand-over numbers of the packets dropped as too late
        self.cpu_seconds = 0.0
        self._closed = False
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", str(Path(pacer_script.__file__))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
            )
            config = {
                "addresses": sender.addresses,
                "frame_from_end": FRAME_FROM_END,
                "wrap": _DAY_S * fps,
                "period": 1.0 / fps,
            }
            self._write(json.dumps(config).encode() + b"\n")
        except OSError:  # no interpreter to start (embedded Python) or no processes left
            self._proc = None
        self._reader = threading.Thread(target=self._read, name="nsplayer-pacer", daemon=True)
        self._reader.start()

    @property
    def lead(self) -> float:
        return PROCESS_LEAD_S if self._inline is None else 0.0

    @property
    def mode(self) -> str:
        """Who sends: "process (real-time)", "process" or "inline" (this thread)."""
        if self._inline is not None:
            return "inline"
        return "process (real-time)" if self._realtime else "process"

    def wait_ready(self) -> None:
        """Wait for the pacer process to start; without one, send from this thread."""
        self._ready.wait(_READY_TIMEOUT_S if self._proc is not None else 0.0)
        if not self._started:
            self._fall_back()

    def send(self, packet: bytes, due: float, index: int | None, audio_time: float) -> None:
        if self._inline is None:
            offset = self._offset()
            try:
                self._write(PACKET.pack(due - offset, len(packet)) + packet)
                self._queued.add(index, audio_time, due, offset)
                return
            except OSError:  # the pacer process died: carry on from this thread
                self._fall_back()
        self._inline.send(packet, due, index, audio_time)  # type: ignore[union-attr]

    def close(self) -> None:
        """Let the pacer send what it has, then collect its results (drops, times, CPU)."""
        if self._closed:
            return
        self._closed = True
        if self._proc is not None:
            try:
                self._proc.stdin.close()  # type: ignore[union-attr]
                self._proc.wait(timeout=1.0 + PROCESS_LEAD_S)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
            self._reader.join(timeout=1.0)
        self._collect()
        if self._inline is not None:
            self.stats.extend(self._inline.stats)
            self.lost += [len(self._queued.index) + n for n in self._inline.lost]

    @property
    def dropped(self) -> int:
        return len(self.lost)

    def _offset(self) -> float:
        """Sink clock minus time.monotonic(), read close together."""
        for _ in range(3):
            before = time.monotonic()
            sink_now = self.clock()
            after = time.monotonic()
            if after - before < 0.0002:
                break
        return sink_now - (before + after) / 2

    def _write(self, data: bytes) -> None:
        if self._proc is None or self._proc.stdin is None:
            raise BrokenPipeError("no pacer process")
        self._proc.stdin.write(data)

    def _read(self) -> None:
        out = self._proc.stdout if self._proc is not None else None
        ready = out.read(1) if out is not None else b""
        self._started = ready in (READY, READY_REALTIME)
        self._realtime = ready == READY_REALTIME
        self._ready.set()
        while self._started and (chunk := out.read(65536)):  # type: ignore[union-attr]
            self._results += chunk

    def _fall_back(self) -> None:
        if self._inline is None:
            self._inline = InlinePacer(self._sender, self.clock, self._fps)
            if self._proc is not None:
                self._proc.kill()

    def _collect(self) -> None:
        """Turn the pacer's (sequence, monotonic send time) records into sink-clock stats."""
        queued = self._queued
        for start in range(0, len(self._results) - RESULT.size + 1, RESULT.size):
            seq, value = RESULT.unpack_from(self._results, start)
            if seq == DONE:
                self.cpu_seconds = value
            elif seq < len(queued.index) and math.isnan(value):
                self.lost.append(seq)
            elif seq < len(queued.index):
                index = queued.index[seq]
                due, offset = queued.due[seq], queued.sent[seq]
                self.stats.add(
                    None if index < 0 else index, queued.audio_time[seq], due, value + offset
                )
