"""The command line's entry point (`nsplayer`, `python -m nsplayer`).

A Ctrl-C before a run installs its own handlers must be a quiet exit 130, not a
KeyboardInterrupt traceback. It raises SystemExit, so that what is open closes on the way
out (``export`` deletes its ``.part`` file) — except inside an import, the program's own
at start-up or a command's later, where it ends the process at once: an exception raised
there can land inside a C extension's initialisation (seen: a segmentation fault in
soxr's). A signal handled inside a finalizer (seen: one of importlib's) has its exception
printed as "Exception ignored" and dropped, and the run would carry on as if never
stopped: such an interruption ends the process at once too. This module stays tiny so that
the window before the handler is as short as it can be.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _interrupted(signum: int, frame: FrameType | None) -> None:
    code = 128 + signum
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            os._exit(code)
        frame = frame.f_back
    raise SystemExit(code)


def _dropped(unraisable: sys.UnraisableHookArgs) -> None:
    """A SystemExit raised (by ``_interrupted``) where Python can only drop it still ends
    the process."""
    exc = unraisable.exc_value
    if isinstance(exc, SystemExit) and isinstance(exc.code, int):
        os._exit(exc.code)
    sys.__unraisablehook__(unraisable)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    sys.unraisablehook = _dropped
    if sys.stderr is None:  # started with stderr closed: nowhere to report, so run quietly
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the whole run)
    from nsplayer.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
