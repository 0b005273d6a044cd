"""The command line's entry point (`nsplayer`, `python -m nsplayer`).

A Ctrl-C while Python is still importing the program (numpy, soxr, sounddevice...) must be a
quiet exit 130, not a KeyboardInterrupt traceback. Until the imports are done the handler
ends the process at once: an exception raised there can land inside a C extension's
initialisation (seen: a segmentation fault in soxr's), and nothing has started yet that
needs cleaning up. After that, until a run installs its own handlers, it raises SystemExit,
so that the open parts close on the way out. A signal handled inside a finalizer (seen: one
of importlib's) has its exception printed as "Exception ignored" and dropped, and the run
would carry on as if never stopped: such an interruption ends the process at once too.
This module stays tiny so that the window before the first handler is as short as it can be.
"""

from __future__ import annotations

import os
import signal
import sys


def _exit_now(signum: int, _frame: object) -> None:
    os._exit(128 + signum)


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """An interruption raised where Python can only drop it still ends the process."""
    exc = unraisable.exc_value
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        os._exit(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        os._exit(128 + signal.SIGINT)
    sys.__unraisablehook__(unraisable)


def main() -> None:
    signal.signal(signal.SIGINT, _exit_now)
    sys.unraisablehook = _dropped
    from nsplayer.cli import main as cli

    signal.signal(signal.SIGINT, _interrupted)
    cli()


if __name__ == "__main__":
    main()
