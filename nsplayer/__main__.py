"""The command line's entry point (`nsplayer`, `python -m nsplayer`).

A Ctrl-C while Python is still importing the program (numpy, sounddevice...) would print a
KeyboardInterrupt traceback; until a run installs its own handlers, it is a quiet exit 130.
This module stays tiny so that the window before the handler is as short as it can be.
"""

from __future__ import annotations

import signal


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)
    from nsplayer.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
