"""How a run talks to the user: one reporter, made by the CLI from -v/-q, passed down.

Lines go to stderr (stdout stays for data, e.g. ``export -o -``): ``say`` unless -q,
``detail`` only with -v. On a terminal a one-line status (elapsed, total, what the model
is doing) is redrawn in place at most a few times a second, and wiped before any other
line; it never appears in a pipe, a log or with -q.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

STATUS_EVERY_S = 0.25


class Reporter:
    """``verbose``: -1 quiet, 0 normal, 1+ verbose. ``tty``: draw the status line (default:
    whether ``stream`` is a terminal)."""

    def __init__(self, verbose: int = 0, stream: TextIO | None = None, tty: bool | None = None):
        self.verbose = verbose
        self._stream = stream if stream is not None else sys.stderr
        self._tty = self._stream.isatty() if tty is None else tty
        self._status = ""  # what the status line shows now
        self._next = 0.0
        self._lock = threading.Lock()

    def say(self, line: str) -> None:
        """A normal message (not with -q)."""
        if self.verbose >= 0:
            self._line(line)

    def detail(self, line: str) -> None:
        """A message for -v."""
        if self.verbose > 0:
            self._line(line)

    def due(self) -> bool:
        """Whether a status update would be drawn now (cheap: call it every frame)."""
        return self._tty and self.verbose >= 0 and time.monotonic() >= self._next

    def status(self, text: str) -> None:
        """Redraw the status line in place (on a terminal, not with -q)."""
        if not (self._tty and self.verbose >= 0):
            return
        with self._lock:
            self._next = time.monotonic() + STATUS_EVERY_S
            pad = " " * max(0, len(self._status) - len(text))
            self._stream.write(f"\r{text}{pad}")
            self._stream.flush()
            self._status = text

    def done(self) -> None:
        """Wipe the status line (end of the run)."""
        with self._lock:
            self._wipe()

    def _line(self, line: str) -> None:
        with self._lock:
            self._wipe()
            self._stream.write(line + "\n")
            self._stream.flush()

    def _wipe(self) -> None:
        if self._status:
            self._stream.write("\r" + " " * len(self._status) + "\r")
            self._status = ""


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for the status line."""
    whole = int(max(0.0, seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
