"""Command line: parse options, build objects, report errors as one line. No logic lives here."""

from __future__ import annotations

import sys
from functools import partial

import click

from nsplayer import __version__
from nsplayer.animation.compose import GAIN_REGIONS
from nsplayer.audio.sinks import UNDERRUN_MODES
from nsplayer.audio.sources import MAX_RATE, MIN_RATE, SAMPLE_FORMATS
from nsplayer.errors import NsplayerError
from nsplayer.models import MODEL_NAMES
from nsplayer.models.base import ON_MODEL_ERROR


class _Group(click.Group):
    """Turns NsplayerError into one line on stderr and a non-zero exit, and a Ctrl-C before
    playback takes over the signals (e.g. while stdin has not sent a header) into exit 130."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NsplayerError as exc:
            click.echo(f"nsplayer: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:  # one line, like every other error
            command = exc.ctx.info_name if exc.ctx is not None else ""
            hint = f" — see `nsplayer {command} --help`" if exc.ctx is not ctx else ""
            click.echo(f"nsplayer: error: {exc.format_message()}{hint}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nsplayer")
def main() -> None:
    """Speech audio to ARKit face animation, streamed to Unreal Engine over Live Link."""


# --- listen (livelink) -------------------------------------------------------------------------


@main.command()
@click.option(
    "--port",
    default=11111,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="UDP port to listen on (0: any free port, printed on stderr).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0 or :: for other machines).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object per packet instead of the meter."
)
@click.option("--count", type=click.IntRange(1), help="Stop after N packets.")
@click.option(
    "--timeout",
    type=click.FloatRange(0, min_open=True),
    metavar="S",
    help="Stop after S seconds without a packet.",
)
def listen(port: int, host: str, as_json: bool, count: int | None, timeout: float | None) -> None:
    """Receive Live Link Face packets: live meter of key shapes per subject, or --json lines.

    Exits 1 when nothing arrives before --timeout, 130 on Ctrl-C, 143 on SIGTERM."""
    from nsplayer.listen import listen as run_listen

    if sys.stdout is None:
        raise NsplayerError(
            "stdout is closed: listen prints what it receives there — give it a terminal, "
            "a file (> packets.jsonl) or a pipe"
        )
    result = run_listen(
        port,
        host,
        sys.stdout,
        as_json=as_json,
        count=count,
        timeout=timeout,
        tty=sys.stdout.isatty(),
        announce=lambda line: click.echo(line, err=True),
    )
    click.echo(result.summary(), err=True)
    if result.exit_code:
        sys.exit(result.exit_code)


# --- options shared by the commands below ------------------------------------------------------

_FILE = click.Path(dir_okay=False)
_OUTPUT_OPTIONS = (  # every command that sends frames
    click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="HOST:PORT",
        help="Where UE listens (repeatable; IPv6 as [::1]:11111). [default: 127.0.0.1:11111]",
    ),
    click.option("--subject", help="Live Link subject name shown in UE. [default: nsplayer]"),
    click.option("--fps", type=click.IntRange(1, 240), help="Frames per second. [default: 60]"),
    click.option("--config", "config_path", type=_FILE, help="YAML config file."),
    click.option("--stats", type=_FILE, help="Write send-timing statistics (JSON) here."),
    click.option("--save-csv", type=_FILE, help="Record the sent frames as Live Link Face CSV."),
    click.option("--seed", type=int, help="Seed for the idle animation (reproducible runs)."),
    click.option(
        "--gain",
        "gains",
        multiple=True,
        metavar="REGION=X",
        help=f"Scale the model's motion, e.g. jaw=1.2 ({', '.join(GAIN_REGIONS)}).",
    ),
    click.option("--emotion", metavar="NAME:W,...", help="Emotion overlay, e.g. happy:0.4."),
    click.option("-v", "--verbose", count=True, help="More output."),
    click.option("-q", "--quiet", count=True, help="Less output."),
)
_MODEL_OPTIONS = (  # commands that run a model on audio
    click.option("--model", type=click.Choice(MODEL_NAMES), help="Face model."),
    click.option("--url", help="NeuroSync API URL (--model neurosync)."),
    click.option("--api-key", help="API key for a remote NeuroSync API (or NSPLAYER_API_KEY)."),
    click.option(
        "--max-inflight",
        "neurosync_max_inflight",
        type=click.IntRange(1, 16),
        help="NeuroSync requests in flight at once. [default: 2]",
    ),
    click.option(
        "--on-model-error",
        "neurosync_on_model_error",
        type=click.Choice(ON_MODEL_ERROR),
        help="If the NeuroSync server fails mid-play. [default: embedded]",
    ),
    click.option(
        "--allow-insecure",
        "neurosync_allow_insecure",
        is_flag=True,
        default=None,
        help="Allow sending --api-key over plain http to a non-local host.",
    ),
    click.option(
        "--connect-timeout",
        "neurosync_connect_timeout",
        type=click.FloatRange(0.1),
        metavar="S",
        help="NeuroSync connect timeout. [default: 3]",
    ),
    click.option(
        "--read-timeout",
        "neurosync_read_timeout",
        type=click.FloatRange(0.1),
        metavar="S",
        help="NeuroSync answer timeout per segment. [default: 30]",
    ),
)
_DEVICE_OPTIONS = (  # commands that play sound
    click.option("--device", help="Audio output: index or name (see `nsplayer devices`)."),
    click.option("--no-audio", is_flag=True, help="Play no sound; keep time on the null sink."),
)
_SYNC_OPTIONS = (  # commands that follow the sound card's clock
    click.option(
        "--av-offset",
        "av_offset_ms",
        type=float,
        metavar="MS",
        help="Face later (+) / earlier (-).",
    ),
    click.option(
        "--start-at",
        metavar="HH:MM:SS.mmm",
        help="Start the sound and frame 0 at this local time (line up with UE's own audio).",
    ),
)
_RATE = click.IntRange(MIN_RATE, MAX_RATE)
_STREAM_OPTIONS = (
    click.option("--raw", is_flag=True, help="stdin is raw PCM (needs --rate)."),
    click.option(
        "--rate",
        type=_RATE,
        help="Sample rate in Hz: of raw PCM, or of a WAV stream on stdin (then the sound "
        "device opens before the header arrives, for a quicker start).",
    ),
    click.option("--channels", type=int, help="Channels of raw PCM or a WAV stream. [default: 1]"),
    click.option(
        "--sample-format",
        type=click.Choice(list(SAMPLE_FORMATS)),
        help="Raw PCM sample format. [default: s16le]",
    ),
    click.option(
        "--buffer", "buffer_ms", type=click.FloatRange(0), metavar="MS", help="Jitter buffer."
    ),
    click.option(
        "--underrun",
        type=click.Choice(UNDERRUN_MODES),
        help="On a stdin gap: resume at once (silence) or refill the buffer first (pause).",
    ),
)


def _apply(options: tuple, func):
    for option in reversed(options):
        func = option(func)
    return func


def common_options(func):
    """The options of commands that play audio through a model (play, and stage's base);
    turn them into Options with build_options."""
    return _apply(_OUTPUT_OPTIONS + _MODEL_OPTIONS + _DEVICE_OPTIONS + _SYNC_OPTIONS, func)


def output_options(func):
    """The options every frame-sending command takes (idle has only these)."""
    return _apply(_OUTPUT_OPTIONS, func)


def replay_options(func):
    """replay: frames come from a file, so no model options."""
    return _apply(_OUTPUT_OPTIONS + _DEVICE_OPTIONS + _SYNC_OPTIONS, func)


def live_options(func):
    """live: frames go out as computed (no sound-card clock); the output is only --monitor's."""
    return _apply(_OUTPUT_OPTIONS + _MODEL_OPTIONS + _DEVICE_OPTIONS, func)


def model_options(func):
    """export: a model on audio, and nothing sent."""
    return _apply(_MODEL_OPTIONS, func)


def stream_options(func):
    """stdin format and jitter-buffer options (play, replay)."""
    return _apply(_STREAM_OPTIONS, func)


def build_options(ctx: click.Context, params: dict):
    """Options from the flags the user actually gave (pops them from ``params``); the rest
    (precedence, renames, checks) is ``options_from_cli``'s."""
    from click.core import ParameterSource

    from nsplayer.config import options_from_cli

    names = [p.name for p in ctx.command.params if p.name in params]
    given = {
        name: params.pop(name)
        for name in names
        if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE
    }
    for name in names:
        params.pop(name, None)
    return options_from_cli(given)


def _finish(result, reporter) -> None:
    """The -v summary (counts as sent, the same the receiver sees) and the exit code."""
    reporter.detail(
        f"nsplayer: sent {result.frames_sent} frames ({result.speech_frames} speech) "
        f"on the {result.sink} sink; dropped {result.dropped}, model late "
        f"{result.missing}, underruns {result.underruns}"
    )
    if result.dropped and result.stopped_by is None:
        reporter.say(
            f"nsplayer: {result.dropped} speech frames were too late to send and were dropped "
            "(a busy machine, or the model too slow); -v tells more"
        )
    if result.exit_code:
        sys.exit(result.exit_code)


def _reporter(options):
    from nsplayer.audio.quiet import hush
    from nsplayer.reporting import Reporter

    hush(verbose=options.verbose > 0)  # the C libraries' chatter only with -v
    return Reporter(options.verbose)


# --- export (offline) --------------------------------------------------------------------------


@main.command()
@click.argument("audio")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="File to write (shapes.csv, shapes.json or shapes.npy), or - for stdout.",
)
@click.option("--fps", type=click.IntRange(1, 240), help="Frames per second. [default: 60]")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "npy"]),
    help="Output format. [default: from the output's extension, else csv]",
)
@click.option("--causal", is_flag=True, help="Use the live (low look-ahead) model output.")
@click.option("--raw", is_flag=True, help="stdin is raw PCM (needs --rate).")
@click.option("--rate", type=int, help="Sample rate of raw PCM on stdin, in Hz.")
@click.option("--channels", type=int, help="Channels of raw PCM on stdin. [default: 1]")
@click.option("--sample-format", metavar="FMT", help="Raw PCM sample format. [default: s16le]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or summary line.")
@click.pass_context
@model_options
def export(
    ctx: click.Context,
    audio: str,
    output: str,
    fmt: str | None,
    causal: bool,
    quiet: bool,
    **params,
) -> None:
    """AUDIO (a file, or - for stdin) to Live Link Face CSV, JSON or .npy, offline."""
    from pathlib import Path

    from nsplayer.audio.sources import expected_format
    from nsplayer.export import STDOUT, output_format
    from nsplayer.export import export as run_export

    stdin = {k: params.pop(k) for k in ("raw", "rate", "channels", "sample_format")}
    options = build_options(ctx, params)
    fps = options.fps
    expected_format(audio, stdin["raw"], stdin["rate"], stdin["channels"])  # stdin only
    out = Path(output)
    fmt = output_format(out, fmt)
    bars: list = []

    def progress_factory(total: int | None):
        if quiet or total is None or total < 1_000_000 or not sys.stderr.isatty():  # long files
            return lambda n: None
        bar = click.progressbar(length=total, label="export", file=sys.stderr)
        bars.append(bar.__enter__())
        return bar.update

    try:
        n = run_export(
            audio,
            out,
            fps,
            fmt,
            causal=causal,
            model=options.model,
            settings=options.neurosync,
            report=lambda line: click.echo(line, err=True),
            progress_factory=progress_factory,
            **stdin,
        )
    finally:
        for bar in bars:
            bar.__exit__(None, None, None)
    if not quiet:
        where = "stdout" if output == STDOUT else out
        click.echo(f"wrote {n} frames at {fps} fps to {where}", err=True)


# --- play / replay / idle / devices (player) ---------------------------------------------------


@main.command()
@click.argument("source")
@common_options
@stream_options
@click.pass_context
def play(ctx: click.Context, source: str, raw: bool, rate, channels, sample_format, **params):
    """Play SOURCE (an audio file, or - for stdin) and stream synced face frames."""
    from nsplayer import player
    from nsplayer.audio.sources import expected_format, open_source

    options = build_options(ctx, params)
    audio = partial(open_source, source, raw, rate, channels, sample_format)  # opened by play
    expect = expected_format(source, raw, rate, channels)
    reporter = _reporter(options)
    _finish(player.play(audio, options, expect, reporter), reporter)


@main.command()
@click.argument("audio")
@click.argument("shapes")
@replay_options
@stream_options
@click.pass_context
def replay(
    ctx: click.Context, audio: str, shapes: str, raw: bool, rate, channels, sample_format, **params
):
    """Play AUDIO with precomputed frames from SHAPES (Live Link Face CSV)."""
    from pathlib import Path

    from nsplayer import player
    from nsplayer.audio.sources import expected_format, open_source

    options = build_options(ctx, params)
    sound = partial(open_source, audio, raw, rate, channels, sample_format)
    expect = expected_format(audio, raw, rate, channels)
    reporter = _reporter(options)
    _finish(player.replay(sound, Path(shapes), options, expect, reporter), reporter)


@main.command()
@output_options
@click.option("--duration", type=click.FloatRange(0), help="Seconds (default: until Ctrl-C).")
@click.pass_context
def idle(ctx: click.Context, duration: float | None, **params):
    """Send the idle animation only (blinks, gaze, breathing) until Ctrl-C."""
    from nsplayer import player

    options = build_options(ctx, params)
    reporter = _reporter(options)
    _finish(player.idle(options, duration, reporter), reporter)


@main.command()
def devices() -> None:
    """List audio devices (outputs for --device, inputs for live --input-device)."""
    from nsplayer.audio.devices import list_devices
    from nsplayer.audio.quiet import hush

    hush(verbose=False)  # PortAudio probing every host API is no news for the user
    for d in list_devices():
        marks = ("<" if d["default_output"] else " ") + (">" if d["default_input"] else " ")
        click.echo(
            f"{marks}{d['index']:3d} {d['name']} ({d['hostapi']}): "
            f"{d['outputs']} out, {d['inputs']} in, {d['rate']:.0f} Hz"
        )
    click.echo("< default output, > default input")


# --- serve (NeuroSync-compatible HTTP API) -----------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--rows",
    type=click.Choice(["61", "68"]),
    default="61",
    show_default=True,
    help="61 values per row, or 68 with 7 emotion scores (constant Neutral=1).",
)
@click.option(
    "--max-body-mb",
    default=50.0,
    show_default=True,
    type=click.FloatRange(0.001),
    help="Larger request bodies get 413.",
)
@click.option(
    "--request-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0.1),
    help="Seconds a client has to send a request (head and body); slower ones are dropped.",
)
@click.option(
    "--max-audio-s",
    default=600.0,
    show_default=True,
    type=click.FloatRange(1),
    help="Longer audio gets 400.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Model workers (more than 1: processes, for many clients).",
)
@click.option(
    "--queue",
    default=8,
    show_default=True,
    type=click.IntRange(0, 1024),
    help="Requests that may wait for a worker; more get 503 with Retry-After.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
@click.option("-q", "--quiet", is_flag=True, help="No start and stop lines (warnings stay).")
def serve(host: str, port: int, rows: str, max_body_mb: float, **params) -> None:
    """NeuroSync-compatible HTTP API over the embedded model (POST /audio_to_blendshapes).

    Ctrl-C or SIGTERM finishes the requests in progress (at most 5 s) and exits 130/143."""
    from nsplayer.server import ServerSettings
    from nsplayer.server import serve as run_server

    settings = ServerSettings(
        host=host, port=port, rows=int(rows), max_body=int(max_body_mb * 1024 * 1024), **params
    )
    code = run_server(settings, announce=lambda line: click.echo(line, err=True))
    if code:
        sys.exit(code)


# --- live (microphone) -------------------------------------------------------------------------


@main.command()
@live_options
@click.option("--input-device", metavar="NAME|INDEX", help="Microphone (see `nsplayer devices`).")
@click.option("--rate", "live_rate", type=_RATE, help="Input rate. [default: device's]")
@click.option(
    "--block",
    "live_block_ms",
    type=click.FloatRange(1, 100),
    metavar="MS",
    help="Input block size. [default: 5]",
)
@click.option(
    "--monitor", "live_monitor", is_flag=True, default=None, help="Play the input on --device."
)
@click.option(
    "--hop",
    "live_hop_ms",
    type=click.FloatRange(10),
    metavar="MS",
    help="--model neurosync: re-send the newest window this often. [default: 100]",
)
@click.option(
    "--duration", "live_duration", type=click.FloatRange(0), help="Stop after S seconds of input."
)
@click.option(
    "--vad/--no-vad",
    "live_gate",
    default=None,
    help="Animate voice only (default), or every sound.",
)
@click.option(
    "--input-file",
    "live_input_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Play this audio file in real time as if it were the microphone (try live anywhere).",
)
@click.pass_context
def live(ctx: click.Context, **params):
    """Microphone in, face frames out as soon as computed (Ctrl-C to stop). Every option can
    also be set in nsplayer.yaml's live section or as NSPLAYER_LIVE_*."""
    from nsplayer.live import run_live

    options = build_options(ctx, params)
    result = run_live(options, _reporter(options))
    if result.exit_code:
        sys.exit(result.exit_code)


# --- stage (speech service for a cast) ---------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--subject", "subjects", multiple=True, metavar="NAME", help="Exists from the start.")
@click.option(
    "--audio",
    type=click.Choice(["local", "none"]),
    default="local",
    show_default=True,
    help="local: mix every voice into one output; none: play nothing (the client does).",
)
@click.option("--device", metavar="NAME|INDEX", help="Audio output for --audio local.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="HOST:PORT",
    help="Live Link receiver (repeatable). [default: 127.0.0.1:11111]",
)
@click.option("--fps", type=click.IntRange(1, 240), default=60, show_default=True)
@click.option("--model", default="embedded", show_default=True, help="Model per utterance.")
@click.option("--av-offset", "av_offset_ms", type=float, default=0.0, metavar="MS")
@click.option(
    "--cushion",
    "cushion_ms",
    type=click.FloatRange(0, 2000),
    metavar="MS",
    help="Jitter cushion before a line starts. [default: model look-ahead + 60]",
)
@click.option("--token", envvar="NSPLAYER_TOKEN", help="Required off loopback; never printed.")
@click.option("--max-subjects", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--max-queue", type=click.IntRange(1, 1000), default=16, show_default=True)
@click.option("--max-body-mb", type=click.FloatRange(0, min_open=True), default=50.0)
@click.option(
    "--stats", type=click.Path(dir_okay=False), help="JSON timing report of every sent frame."
)
@click.option("-v", "--verbose", count=True, help="Log every request.")
@click.option("-q", "--quiet", is_flag=True, help="No start line.")
def stage(
    host, port, subjects, audio, device, targets, av_offset_ms, stats, verbose, quiet, **params
):
    """Speech service for a cast of characters: WebSocket /v1/stream and a REST API."""
    from pathlib import Path

    from nsplayer.stage.app import AppSettings
    from nsplayer.stage.cast import CastSettings
    from nsplayer.stage.service import StageSettings, run_stage

    token, max_body_mb = params.pop("token"), params.pop("max_body_mb")
    settings = StageSettings(
        host=host,
        port=port,
        subjects=subjects,
        targets=targets or ("127.0.0.1:11111",),
        audio=audio,
        device=device,
        av_offset_ms=av_offset_ms,
        cast=CastSettings(**params),
        app=AppSettings(token=token, audio=audio, max_body_mb=max_body_mb),
        stats=None if stats is None else Path(stats),
        verbose=verbose,
        quiet=quiet,
    )
    code = run_stage(settings, announce=lambda line: click.echo(line, err=True))
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
