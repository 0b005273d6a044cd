"""Keep the audio C libraries' chatter out of the user's terminal.

PortAudio, ALSA (under PortAudio), JACK and mpg123 (under libsndfile, for MP3) write
diagnostics straight to file descriptor 2: ``ALSA lib pcm.c:8570:(snd_pcm_recover) underrun
occurred``, ``Expression '...' failed in 'src/hostapi/alsa/pa_linux_alsa.c'``, ``Note:
Illegal Audio-MPEG-Header``, dozens per file. Python cannot catch them, so on POSIX ``hush``
points descriptor 2 at a pipe read by a thread that drops those lines and passes every other
line on, and points ``sys.stderr`` at a copy of the original descriptor, so our own messages
go straight out as before. What the sink makes of it (an underrun) is counted and reported
by the player. With -v nothing is hidden; on Windows nothing is done (those libraries do not
write there).
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

_CHATTER = re.compile(
    rb"ALSA lib "
    rb"|Expression '.*' failed in '"  # PortAudio's ALSA host API
    rb"|\[src/libmpg123/"
    rb"|Note: (Illegal Audio-MPEG-Header|Trying to resync|Skipped \d+ bytes)"
    rb"|Cannot connect to server (socket|request channel)"  # JACK, probed by PortAudio
    rb"|jack server is not running"
    rb"|JackShmReadWritePtr"
)
_JOIN_S = 0.5  # at exit, how long the last lines may take to pass through
_hushed = False


class LineFilter:
    """Drops the chatter lines from a byte stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete lines of ``chunk`` (with what came before) that are not chatter."""
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        return b"".join(line + b"\n" for line in lines if not _CHATTER.match(line))

    def flush(self) -> bytes:
        """The last line, unterminated, unless it is chatter."""
        line, self._partial = self._partial, b""
        return b"" if _CHATTER.match(line) else line


def hush(verbose: bool) -> None:
    """From now on, drop the C libraries' chatter from stderr unless ``verbose``.

    Only when ``sys.stderr`` is descriptor 2 itself (not a test runner's capture), once per
    process; undone at exit, after the last lines have passed.
    """
    global _hushed
    if verbose or _hushed or os.name != "posix" or not _is_fd2(sys.stderr):
        return
    _hushed = True
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(  # noqa: SIM115 - the process's stderr from now on, never closed
        original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
    )
    pump = threading.Thread(target=_pump, args=(read_end, original), daemon=True)
    pump.start()
    atexit.register(_restore, original, pump)


def _is_fd2(stream) -> bool:
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


def _pump(read_end: int, out: int) -> None:
    """Pass what comes through the pipe on to ``out``, less the chatter, until EOF."""
    lines = LineFilter()
    while chunk := os.read(read_end, 65536):
        _write(out, lines.feed(chunk))
    _write(out, lines.flush())
    os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    try:
        while data:
            data = data[os.write(fd, data) :]
    except OSError:  # the terminal went away: nobody is left to read it
        pass


def _restore(original: int, pump: threading.Thread) -> None:
    """Give descriptor 2 back (closing the pipe's last write end here) and let the pump
    pass on what is left."""
    sys.stderr.flush()
    os.dup2(original, 2)
    pump.join(_JOIN_S)
