"""The packets' way out: handed to the pacer process, or sent from this thread.

The conductor decides what is due when, on its clock; the pacer (``nsplayer/pacer.py``:
its ``Pacer`` keeps the rules of when a packet may leave) sends it. ``ProcessOutlet``
hands each packet to the pacer process ``lead`` seconds early, so the player's threads
may run late by that much without the face being late; the times it gets back are on
time.monotonic(), converted from the conductor's clock at each hand-over.
``InlineOutlet`` runs a ``Pacer`` in the calling thread; it serves deterministic tests on
a fake clock and is the fallback when no pacer process can run (it stops, or cannot
start).

Every packet belongs to a stream (one subject): spacing, drops and frame renumbering are
per stream, and so are the statistics.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from livelink import LiveLinkSender
from livelink.codec import FRAME_FROM_END
from livelink.frametime import DAY_S
from nsplayer import pacer as pacer_script
from nsplayer.pacer import DONE, PACKET, READY, READY_REALTIME, REFUSED, RESULT, Pacer

PROCESS_LEAD_S = 0.008  # hand packets over this early: covers the player's own hiccups
_READY_TIMEOUT_S = 3.0


class Handed(NamedTuple):
    """A packet handed to a pacer: whose, which speech frame (None: idle), when due."""

    stream: int
    index: int | None
    audio_time: float
    due: float
    frame: int  # its timecode frame number


class SendStats:
    """Per sent packet of one stream: speech frame index (-1 idle), audio time, due, sent.

    Counts always; the per-packet columns only when ``detailed`` (``--stats``), so a run
    of any length keeps flat memory.
    """

    def __init__(self, detailed: bool = True) -> None:
        self.detailed = detailed
        self.frames_sent = 0
        self.speech_frames = 0
        self.index = array("q")
        self.audio_time = array("d")
        self.due = array("d")
        self.sent = array("d")
        self.frame = array("q")  # the timecode frame number the packet carried

    def add(self, packet: Handed, sent: float, renumbered: int = 0) -> None:
        """``packet`` went out at ``sent``, its frame number lowered by ``renumbered``."""
        self.frames_sent += 1
        self.speech_frames += packet.index is not None
        if self.detailed:
            self.index.append(-1 if packet.index is None else packet.index)
            self.audio_time.append(packet.audio_time)
            self.due.append(packet.due)
            self.sent.append(sent)
            self.frame.append(packet.frame - renumbered)

    def summary(self) -> dict[str, float | int | None]:
        """Send error of speech frames (sent - due) and the spread of send intervals, in ms."""
        speech = np.frombuffer(self.index, np.int64) >= 0
        error = (np.asarray(self.sent) - np.asarray(self.due))[speech] * 1000.0
        intervals = np.diff(np.asarray(self.sent)) * 1000.0
        return {
            "frames_sent": self.frames_sent,
            "speech_frames": self.speech_frames,
            "error_ms_p50": _pct(np.abs(error), 50),
            "error_ms_p99": _pct(np.abs(error), 99),
            "error_ms_max": _pct(np.abs(error), 100),
            "error_ms_mean": float(error.mean()) if len(error) else None,
            "interval_ms_p50": _pct(intervals, 50),
            "interval_ms_min": _pct(intervals, 0),
            "interval_ms_max": _pct(intervals, 100),
        }

    def frames(self) -> list[dict[str, float | int | None]]:
        columns = (self.index, self.audio_time, self.due, self.sent, self.frame)
        return [
            {
                "index": None if i < 0 else i,
                "audio_time": None if i < 0 else a,
                "due": d,
                "sent": s,
                "frame": f,
            }
            for i, a, d, s, f in zip(*columns, strict=True)
        ]


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


class _Streams:
    """Per-stream statistics and lost packets (as the stream's own hand-over numbers)."""

    def __init__(self, detailed: bool) -> None:
        self._detailed = detailed
        self._stats: dict[int, SendStats] = {}
        self._lost: dict[int, list[int]] = {}
        self.refused: set[int] = set()  # targets (by position) that refused a packet

    def stats(self, stream: int) -> SendStats:
        if stream not in self._stats:
            self._stats[stream] = SendStats(self._detailed)
        return self._stats[stream]

    def lost(self, stream: int) -> list[int]:
        return self._lost.setdefault(stream, [])


class InlineOutlet(_Streams):
    """Sends from the calling thread, waiting on the conductor's clock (``sleep`` injectable)."""

    lead = 0.0
    mode = "inline"

    def __init__(
        self,
        sender: LiveLinkSender,
        clock: Callable[[], float],
        fps: int,
        sleep: Callable[[float], None] = time.sleep,
        detailed: bool = True,
    ) -> None:
        super().__init__(detailed)
        self.cpu_seconds = 0.0  # used by another process (none here)
        self._sender = sender
        self._handed: dict[int, int] = {}
        self._pacer = Pacer(
            self._send,
            period=1.0 / fps,
            wrap=round(DAY_S * fps),
            frame_from_end=FRAME_FROM_END,
            clock=clock,
            sleep=sleep,
        )

    def _send(self, packet: bytearray) -> None:
        errors = self._sender.errors
        self._sender.send_packet(packet)
        if self._sender.errors > errors and isinstance(self._sender.last_error, ConnectionError):
            self.refused.add(0)

    def wait_ready(self) -> None:
        """Nothing to wait for."""

    def send(self, packet: bytes, handed: Handed) -> None:
        stream = handed.stream
        number = self._handed.get(stream, 0)
        self._handed[stream] = number + 1
        sent = self._pacer.submit(handed.due, packet, stream)
        if sent is None:
            self.lost(stream).append(number)
        else:
            self.stats(stream).add(handed, sent, len(self.lost(stream)))

    def close(self) -> None:
        """Nothing to close: the sender belongs to the caller."""


class ProcessOutlet(_Streams):
    """Sends through a pacer process; falls back to an InlineOutlet if it cannot.

    The pacer's results are taken in as they come back (a reader thread), so what is kept
    per packet is bounded by what is in flight, plus the statistics asked for.
    """

    def __init__(
        self,
        sender: LiveLinkSender,
        fps: int,
        clock: Callable[[], float] = time.monotonic,
        detailed: bool = True,
    ) -> None:
        super().__init__(detailed)
        self._sender, self._fps = sender, fps
        self.clock = clock  # the conductor's: due times are on it
        # per packet in flight: (what, its hand-over number in its stream, clock offset);
        # appended before writing, taken by the reader as results come back
        self._queued: deque[tuple[Handed, int, float]] = deque()
        self._handed: dict[int, int] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()  # set once the process said it is ready, or failed
        self._started = False
        self._realtime = False
        self._inline: InlineOutlet | None = None
        self.cpu_seconds = 0.0
        self._closed = False
        try:
            self._proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-I", "-S", str(Path(pacer_script.__file__))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                # Its own session (POSIX): a terminal's Ctrl-C never reaches it, not even while
                # it starts, before it can ignore signals; it ends when its input closes.
                start_new_session=True,
            )
            config = {
                "addresses": sender.addresses,
                "frame_from_end": FRAME_FROM_END,
                "wrap": round(DAY_S * fps),
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

    def send(self, packet: bytes, handed: Handed) -> None:
        if self._inline is None:
            offset = self._offset()
            number = self._handed.get(handed.stream, 0)
            self._queued.append((handed, number, offset))
            try:
                self._write(PACKET.pack(handed.due - offset, len(packet), handed.stream) + packet)
                self._handed[handed.stream] = number + 1
                return
            except OSError:  # the pacer process died: carry on from this thread
                self._queued.pop()
                self._fall_back()
        self._inline.send(packet, handed)  # type: ignore[union-attr]

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
        if self._inline is not None:
            self._merge_inline()

    def _merge_inline(self) -> None:
        inline = self._inline
        for stream, stats in inline._stats.items():
            mine = self.stats(stream)
            mine.frames_sent += stats.frames_sent
            mine.speech_frames += stats.speech_frames
            for ours, theirs in zip(
                (mine.index, mine.audio_time, mine.due, mine.sent, mine.frame),
                (stats.index, stats.audio_time, stats.due, stats.sent, stats.frame),
                strict=True,
            ):
                ours.extend(theirs)
        for stream, lost in inline._lost.items():
            before = self._handed.get(stream, 0)
            self.lost(stream).extend(before + n for n in lost)
        self.refused |= inline.refused

    def _offset(self) -> float:
        """Conductor clock minus time.monotonic(), read close together."""
        for _ in range(3):
            before = time.monotonic()
            clock_now = self.clock()
            after = time.monotonic()
            if after - before < 0.0002:
                break
        return clock_now - (before + after) / 2

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
        pending = bytearray()
        while self._started and (chunk := out.read(65536)):  # type: ignore[union-attr]
            pending += chunk
            whole = len(pending) - len(pending) % RESULT.size
            for start in range(0, whole, RESULT.size):
                self._take(*RESULT.unpack_from(pending, start))
            del pending[:whole]

    def _take(self, seq: int, value: float) -> None:
        """One result from the pacer process: a send time, a drop, a refusal or the end."""
        if seq == DONE:
            self.cpu_seconds = value
            return
        if seq == REFUSED:
            self.refused.add(int(value))
            return
        if not self._queued:
            return
        handed, number, offset = self._queued.popleft()
        lost = self.lost(handed.stream)
        if math.isnan(value):
            lost.append(number)
        else:
            self.stats(handed.stream).add(handed, value + offset, len(lost))

    def _fall_back(self) -> None:
        if self._inline is None:
            self._inline = InlineOutlet(
                self._sender, self.clock, self._fps, detailed=self._detailed
            )
            if self._proc is not None:
                self._proc.kill()
