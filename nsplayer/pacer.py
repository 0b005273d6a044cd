"""The pacer: a small process that sends each packet at its due time, and nothing else.

In one CPython process only one thread runs at a time. The player's other threads
(audio callback, file reading, model) hold the interpreter for a few hundred
microseconds at a time, so a packet released from the player's own thread is late
whenever one of them has it at the wrong moment (2-6 ms, a few times a minute). This
process owns its interpreter: it reads ``(due time, packet)`` records from stdin a few
milliseconds ahead of time, waits for each due time (``wait_until``) and sends to every
target.

Rules it shares with the in-process sender (``release_time``): packets go out at least
half a frame period apart, and one that would be more than a period late is dropped, its
frame number given to the next packet so the timecode stays consecutive.

Stdlib only, run as a script (``python -I -S pacer.py``) so it starts in ~20 ms.

Protocol (all little-endian). Parent -> child: one JSON line ``{"addresses": [[family,
sockaddr], ...], "frame_from_end": n, "wrap": frames_per_day, "period": s}``, then per packet
``<dHH`` (due on time.monotonic(), length, stream) + the packet; a stream is one subject,
whose packets keep their own spacing and consecutive frame numbers. EOF: send what is
queued, report, exit. Child -> parent: one byte when ready (READY_REALTIME or READY), then
``<Id`` per packet (sequence number, send time or NaN if dropped), and last ``(DONE, CPU
seconds used)``.

Where the OS allows it (Linux, as root or with an RLIMIT_RTPRIO), the process asks for the
lowest real-time priority: then no ordinary process, however busy, delays a wake-up, while
sound servers' real-time threads still come first. Elsewhere it runs as an ordinary process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

PACKET = struct.Struct("<dHH")  # due time, packet length, stream (subject)
RESULT = struct.Struct("<Id")  # sequence number, send time (NaN: dropped)
FRAME = struct.Struct(">i")  # the frame number inside a Live Link Face packet
DONE = 0xFFFFFFFF
REFUSED = 0xFFFFFFFE  # a result record saying: the target at this position refused a packet
READY = b"R"  # ready, ordinary scheduling
READY_REALTIME = b"T"  # ready, real-time scheduling
REALTIME_PRIORITY = 1  # SCHED_FIFO's lowest: above all ordinary processes only
EARLY_S = 0.003  # the one long sleep ends this long before the due time
SPIN_S = 0.0003  # spin for the rest below this (a sleep overshoots by ~0.1-0.3 ms here)
_FLUSH_EVERY = 30  # results per write back to the parent (half a second at 60 fps)


def release_time(due: float, last_sent: float, period: float, now: float) -> float | None:
    """When to send a packet due at ``due``: never within half a period of the last one
    (no bursts), and None (drop it) if that would make it more than a period late."""
    at = max(due, last_sent + 0.5 * period)
    return None if max(at, now) - due > period else at


def wait_until(
    clock: Callable[[], float], at: float, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Return ``clock()`` once it reaches ``at``.

    One sleep to EARLY_S before, then sleeps that halve the rest, then a spin for the last
    SPIN_S. Measured here with another process burning a core: waking 3 ms early and
    halving kept p99 lateness near 1 ms, where one sleep to 0.2 ms before gave 3-4 ms (the
    scheduler may let a busy core's task finish its slice before a woken one runs).
    """
    left = at - clock()
    if left > EARLY_S:
        sleep(left - EARLY_S)
    while (left := at - clock()) > SPIN_S:
        sleep(left / 2)
    while (now := clock()) < at:
        pass
    return now


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


class Pacer:
    """Sends packets at their due times on ``clock``, by the rules of ``release_time``.

    Used by this process on time.monotonic() and, when no pacer process can run, by the
    player's own thread on the sink clock. Each stream (one subject) keeps its own spacing;
    a dropped packet's frame number passes to the stream's next one (the int32 at
    ``len(packet) - frame_from_end``), so the timecode the receiver sees stays consecutive.
    """

    def __init__(
        self,
        send: Callable[[bytearray], None],
        *,
        period: float,
        wrap: int,
        frame_from_end: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._send, self.period, self._wrap = send, period, wrap
        self._from_end, self._clock, self._sleep = frame_from_end, clock, sleep
        self._last_sent: dict[int, float] = {}
        self._dropped: dict[int, int] = {}

    @property
    def dropped(self) -> int:
        return sum(self._dropped.values())

    def submit(self, due: float, packet: bytes, stream: int = 0) -> float | None:
        """Wait until the packet is due and send it; its send time, or None if dropped."""
        last = self._last_sent.get(stream, -math.inf)
        dropped = self._dropped.get(stream, 0)
        at = release_time(due, last, self.period, self._clock())
        if at is None:
            self._dropped[stream] = dropped + 1
            return None
        data = bytearray(packet)
        offset = len(data) - self._from_end
        (frame,) = FRAME.unpack_from(data, offset)
        FRAME.pack_into(data, offset, (frame - dropped) % self._wrap)
        sent = self._last_sent[stream] = wait_until(self._clock, at, self._sleep)
        self._send(data)
        return sent


def _sockets(addresses: list[list]) -> list[socket.socket]:
    sockets = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.connect(tuple(address))
        sockets.append(sock)
    return sockets


def _sender(sockets: list[socket.socket], refused: set[int]) -> Callable[[bytearray], None]:
    """Send to every target; note the targets that refused (nothing listens there)."""

    def send(packet: bytearray) -> None:
        for k, sock in enumerate(sockets):
            try:
                sock.send(packet)
            except ConnectionError:  # ICMP port unreachable: reported once, sending goes on
                refused.add(k)
            except OSError:  # buffer full, network down: the next frame retries
                pass

    return send


def go_realtime() -> bool:
    """Ask for real-time (SCHED_FIFO) scheduling; False where the OS refuses or lacks it.

    Safe here: the process sleeps until 3 ms before each due time and spins 0.3 ms at
    most, a few percent of a core, so it never starves the machine.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except (AttributeError, OSError):  # not Linux, or not permitted
        return False
    return True


def serve(inp: BinaryIO, out: BinaryIO) -> None:
    """Send every packet read from ``inp`` at its due time; write results to ``out``."""
    config = json.loads(inp.readline())
    refused: set[int] = set()
    reported: set[int] = set()
    pacer = Pacer(
        _sender(_sockets(config["addresses"]), refused),
        period=config["period"],
        wrap=config["wrap"],
        frame_from_end=config["frame_from_end"],
    )
    out.write(READY_REALTIME if go_realtime() else READY)
    out.flush()
    results, seq = bytearray(), 0
    while (head := _read(inp, PACKET.size)) is not None:
        due, length, stream = PACKET.unpack(head)
        packet = _read(inp, length)
        if packet is None:
            break
        sent = pacer.submit(due, packet, stream)
        results += RESULT.pack(seq, math.nan if sent is None else sent)
        seq += 1
        for k in refused - reported:
            results += RESULT.pack(REFUSED, k)
            reported.add(k)
        if seq % _FLUSH_EVERY == 0:
            out.write(results)
            out.flush()
            results.clear()
    out.write(results + RESULT.pack(DONE, time.process_time()))
    out.flush()


def main() -> None:
    # Ctrl-C reaches the whole process group: the player decides when to stop, and this
    # process sends its ease-out frames, then ends when its input closes.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):  # the player is gone (e.g. killed):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no report at exit


if __name__ == "__main__":
    main()
