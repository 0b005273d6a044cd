"""Ctrl-C and SIGTERM as a flag, so every run can ease the face out before it exits."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Stop:
    """Set by SIGINT/SIGTERM; the main loop checks it every frame (portable: no tricks)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    """Catch SIGINT/SIGTERM for the duration (main thread only) and restore the old handlers."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    signals = [signal.SIGINT, signal.SIGTERM]
    previous = {s: signal.signal(s, stop) for s in signals}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
