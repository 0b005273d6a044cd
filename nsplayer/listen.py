"""`nsplayer listen`: receive Live Link Face packets and show them (meter or JSON lines).

A debugging aid for the other end of the wire: it shows what UE would receive, so a silent
MetaHuman can be narrowed down to "nothing arrives" or "arrives but UE ignores it". Anyone on
the network can send to the port, so what it keeps is bounded (the latest ``MAX_SUBJECTS``
subjects) and names from packets reach the terminal escaped, never as control sequences.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, TextIO

import numpy as np

from livelink import FaceFrame, LiveLinkReceiver
from livelink import names as n
from nsplayer.errors import NsplayerError
from nsplayer.netaddr import bind_error, host_port, resolve
from nsplayer.stopping import stop_on_signals

REFRESH_S = 0.1  # meter redraw period on a terminal; also how often a signal is noticed
PLAIN_PERIOD_S = 1.0  # one status line per subject this often when not a terminal
BAR_WIDTH = 24
MAX_SUBJECTS = 64  # kept; a new one beyond this replaces the one heard longest ago
METER_SUBJECTS = 8  # with a full meter on a terminal; the others get a count
QUIET_S = 10.0  # a subject not heard for this long leaves the display
NAME_CHARS = 40  # of a subject name or device id, shown

# (label, channels averaged, signed rotation?)
METER: tuple[tuple[str, tuple[int, ...], bool], ...] = (
    ("jaw open", (n.JAW_OPEN,), False),
    ("mouth close", (n.MOUTH_CLOSE,), False),
    ("funnel", (n.MOUTH_FUNNEL,), False),
    ("smile", (n.MOUTH_SMILE_LEFT, n.MOUTH_SMILE_RIGHT), False),
    ("blink L", (n.EYE_BLINK_LEFT,), False),
    ("blink R", (n.EYE_BLINK_RIGHT,), False),
    ("brows up", (n.BROW_INNER_UP, n.BROW_OUTER_UP_LEFT, n.BROW_OUTER_UP_RIGHT), False),
    ("brows down", (n.BROW_DOWN_LEFT, n.BROW_DOWN_RIGHT), False),
    ("head yaw", (n.HEAD_YAW,), True),
    ("head pitch", (n.HEAD_PITCH,), True),
)


@dataclass
class SubjectStats:
    """What the meter shows for one subject: the latest frame and recent arrival times."""

    last: FaceFrame
    packets: int = 0
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=1000))

    def rate(self, now: float) -> float:
        """Packets per second over the last second."""
        return sum(1 for t in self.arrivals if now - t <= 1.0)


def printable(text: str, limit: int = NAME_CHARS) -> str:
    """Text from the network made safe to print: control and format characters (terminal
    escape sequences, bidi overrides) written as Python escapes, and at most ``limit``."""
    safe = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return safe + "…" if len(text) > limit else safe


class Subjects:
    """The subjects heard, at most ``cap``: a new one beyond it replaces the one heard
    longest ago, so a flood of names cannot grow memory."""

    def __init__(self, cap: int = MAX_SUBJECTS) -> None:
        self.cap = cap
        self.forgotten = 0
        self._by_name: OrderedDict[str, SubjectStats] = OrderedDict()  # last heard last

    def add(self, frame: FaceFrame, arrival: float) -> None:
        stats = self._by_name.pop(frame.subject, None) or SubjectStats(frame)
        stats.last, stats.packets = frame, stats.packets + 1
        stats.arrivals.append(arrival)
        self._by_name[frame.subject] = stats
        if len(self._by_name) > self.cap:
            self._by_name.popitem(last=False)
            self.forgotten += 1

    def __len__(self) -> int:
        return len(self._by_name)

    def shown(self, now: float) -> dict[str, SubjectStats]:
        """Those heard in the last QUIET_S, by name."""
        recent = {k: s for k, s in self._by_name.items() if now - s.arrivals[-1] <= QUIET_S}
        return dict(sorted(recent.items()))

    def names(self) -> str:
        """For the summary: the names kept, and how many more there were."""
        text = ", ".join(printable(name) for name in sorted(self._by_name)) or "none"
        return text + (f" and {self.forgotten} more" if self.forgotten else "")


@dataclass
class ListenResult:
    packets: int
    malformed: int
    subjects: Subjects
    seconds: float
    stopped_by: int | None  # SIGINT/SIGTERM, or None

    def summary(self) -> str:
        how = " (interrupted)" if self.stopped_by else ""
        return (
            f"listen: {self.packets} packets, {self.malformed} malformed, "
            f"subjects: {self.subjects.names()}, {self.seconds:.1f} s{how}"
        )

    @property
    def exit_code(self) -> int:
        """130/143 after Ctrl-C/SIGTERM, else 0."""
        return 128 + self.stopped_by if self.stopped_by else 0


def json_line(frame: FaceFrame) -> str:
    """One packet as the JSON object `listen --json` prints (see README); values in shortest
    float32 form."""
    head = json.dumps(
        {
            "subject": frame.subject,
            "device_id": frame.device_id,
            "frame": frame.time.frame,
            "subframe": frame.time.subframe,
            "rate": [frame.time.rate_num, frame.time.rate_den],
        }
    )
    return f'{head[:-1]}, "values": [{", ".join(frame.values.astype(str))}]}}'


def _bar(value: float, signed: bool) -> str:
    if signed:  # rotation / 180°: show ±0.1 (18°) as a full half bar, centred
        half = BAR_WIDTH // 2
        cells = round(min(abs(value) / 0.1, 1.0) * half)
        left = " " * (half - cells) + "█" * cells if value < 0 else " " * half
        right = "█" * cells + " " * (half - cells) if value >= 0 else " " * half
        return f"|{left}|{right}| {value * 180:+6.1f}°"
    cells = round(min(max(value, 0.0), 1.0) * BAR_WIDTH)
    return f"|{'█' * cells}{' ' * (BAR_WIDTH - cells)}| {value:5.2f}"


def meter_lines(subjects: dict[str, SubjectStats], now: float) -> list[str]:
    """The meter: a title line per subject, then one bar per key shape; at most
    METER_SUBJECTS subjects, then a count of the others."""
    lines = []
    for name, stats in list(subjects.items())[:METER_SUBJECTS]:
        t = stats.last.time
        lines.append(
            f"{printable(name)} [{printable(stats.last.device_id, 8)}] frame {t.frame} "
            f"@ {t.rate:g} fps, {stats.rate(now):.0f} pkt/s, {stats.packets} packets"
        )
        values = stats.last.values
        for label, channels, signed in METER:
            lines.append(f"  {label:<11}{_bar(float(np.mean(values[list(channels)])), signed)}")
    if len(subjects) > METER_SUBJECTS:
        lines.append(f"... and {len(subjects) - METER_SUBJECTS} more subjects")
    return lines


def status_line(subjects: dict[str, SubjectStats], now: float, malformed: int) -> str:
    """Plain one-line status for logs and pipes."""
    parts = [
        f"{printable(name)}: {s.rate(now):.0f} pkt/s jaw {s.last.values[n.JAW_OPEN]:.2f} "
        f"close {s.last.values[n.MOUTH_CLOSE]:.2f}"
        for name, s in subjects.items()
    ]
    return "; ".join(parts or ["no packets yet"]) + f"; malformed {malformed}"


class _Display:
    """Redraws the meter in place on a terminal, prints periodic lines otherwise."""

    def __init__(self, out: TextIO, tty: bool) -> None:
        self.out, self.tty = out, tty
        self.drawn = 0
        self.next_at = 0.0

    def update(self, subjects: Subjects, malformed: int, now: float) -> None:
        if now < self.next_at:
            return
        self.next_at = now + (REFRESH_S if self.tty else PLAIN_PERIOD_S)
        self.draw(subjects.shown(now), malformed, now)

    def draw(self, subjects: dict[str, SubjectStats], malformed: int, now: float) -> None:
        if not self.tty:
            self.out.write(status_line(subjects, now, malformed) + "\n")
        else:
            total = sum(s.packets for s in subjects.values())
            lines = [f"{total} packets, {malformed} malformed", *meter_lines(subjects, now)]
            up = f"\x1b[{self.drawn}F" if self.drawn else ""
            self.out.write(up + "\x1b[J" + "\n".join(lines) + "\n")
            self.drawn = len(lines)
        self.out.flush()


def _reader_gone(out: TextIO) -> NoReturn:
    """The reader closed the pipe (`| head -1`, a pager quit): stop at once, status 0, no
    message, as `yes | head -1` does. The stream's descriptor is pointed at devnull so the
    interpreter's final flush of the text still buffered cannot raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError, ValueError):  # no descriptor: nothing left to flush to
        os.dup2(devnull, out.fileno())
    os.close(devnull)
    sys.exit(0)


def listen(
    port: int,
    host: str,
    out: TextIO,
    *,
    as_json: bool = False,
    count: int | None = None,
    timeout: float | None = None,
    tty: bool = False,
    announce: Callable[[str], None] | None = None,
) -> ListenResult:
    """Receive until ``count`` packets, ``timeout`` seconds without one, or SIGINT/SIGTERM.
    Nothing at all before the timeout is an error (a script can ask "do packets arrive?").
    If the reader of ``out`` goes away, exit quietly with status 0 (see _reader_gone)."""
    resolve(host, port, socket.SOCK_DGRAM)  # a host that names nothing: its own line
    try:
        receiver = LiveLinkReceiver(port, host)
    except OSError as exc:
        raise bind_error(exc, "UDP", host, port) from None
    where = host_port(host, receiver.port)
    with receiver, stop_on_signals() as stop:
        if announce:
            announce(f"listening on UDP {where} (Ctrl-C to stop)")
        display = None if as_json else _Display(out, tty)
        subjects = Subjects()
        packets = 0
        start = last_packet = time.monotonic()
        try:
            while (count is None or packets < count) and stop.signum is None:
                now = time.monotonic()
                if timeout is not None and now - last_packet >= timeout:
                    break
                wait = REFRESH_S if timeout is None else timeout - (now - last_packet)
                item = receiver.receive(max(min(wait, REFRESH_S), 0.0))
                if item is not None:
                    frame, last_packet, _ = item
                    packets += 1
                    subjects.add(frame, last_packet)
                    if as_json:
                        out.write(json_line(frame) + "\n")
                        out.flush()
                if display:
                    display.update(subjects, receiver.malformed, time.monotonic())
        except BrokenPipeError:
            _reader_gone(out)
    seconds = time.monotonic() - start
    if not packets and not receiver.malformed and stop.signum is None:
        raise NsplayerError(
            f"nothing arrived on UDP {where} in {seconds:.1f} s — check the sender's "
            f"--target (this machine's address and port {receiver.port}) and firewalls"
        )
    return ListenResult(packets, receiver.malformed, subjects, seconds, stop.signum)
