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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--rows", type=click.Choice(["61", "68"]), default="61", show_default=True,
              help="61 values per row, or 68 with 7 emotion scores (constant Neutral=1).")
@click.option("--max-body-mb", default=50.0, show_default=True, type=click.FloatRange(0.001),
              help="Larger request bodies get 413.")
@click.option("--request-timeout", default=30.0, show_default=True,
              type=click.FloatRange(0.1), help="Seconds allowed to send a request.")
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def serve(host: str, port: int, rows: str, max_body_mb: float, request_timeout: float,
          verbose: bool) -> None:
    """NeuroSync-compatible HTTP API over the embedded model (POST /audio_to_blendshapes)."""
    from nsplayer.server import ServerSettings
    from nsplayer.server import serve as run_server

    settings = ServerSettings(host=host, port=port, rows=int(rows),
                              max_body=int(max_body_mb * 1024 * 1024),
                              request_timeout=request_timeout, verbose=verbose)
    run_server(settings, announce=lambda line: click.echo(line, err=True))


# --- live (microphone) -------------------------------------------------------------------------


if __name__ == "__main__":
    main()
