"""Command line: parse options, build objects, report errors as one line. No logic lives here."""

from __future__ import annotations

import sys

import click

from nsplayer import __version__
from nsplayer.errors import NsplayerError


class _Group(click.Group):
    """Turns NsplayerError into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NsplayerError as exc:
            click.echo(f"nsplayer: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="nsplayer")
def main() -> None:
    """Speech audio to ARKit face animation, streamed to Unreal Engine over Live Link."""


# --- listen (livelink / monitor) ---------------------------------------------------------------

# --- export (embedded model) -------------------------------------------------------------------

# --- play / replay / idle / devices (player) ---------------------------------------------------

# --- serve (NeuroSync-compatible HTTP API) -----------------------------------------------------

# --- live (microphone) -------------------------------------------------------------------------


if __name__ == "__main__":
    main()
