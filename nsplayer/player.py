"""Orchestration: source -> model -> animation -> scheduler -> Live Link sender.

Reads top to bottom like a pipeline and owns no logic of its own: a worker thread
reads the source, feeds the model and queues the audio in the sink (the sink's bounded
ring is the backpressure: the worker never runs more than a second ahead, so memory
stays flat for any length); the main thread asks the scheduler for the next slot,
steps the animator and hands the packet over to the pacer process, which sends it on
time. Frames are computed before their audio is queued, so the face is ready when the
sound is heard.
"""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass, replace
from pathlib import Path

import numpy as np

from nsplayer.audio import SILENT_S
from nsplayer.audio.sinks import Sink, open_sink
from nsplayer.audio.sources import AudioSource, StreamFormat, to_mono
from nsplayer.config import Options
from nsplayer.engine import (
    Conductor,
    Look,
    Outcome,
    Performer,
    check_writable,
    fine_thread_switching,
    write_json,
)
from nsplayer.errors import NsplayerError
from nsplayer.models.base import FaceModel
from nsplayer.outlet import PROCESS_LEAD_S
from nsplayer.reporting import Reporter, clock
from nsplayer.stopping import Stop, stop_on_signals
from nsplayer.takes import load_rows

FILE_BLOCK_S = 0.25  # source blocks: the model costs ~4x less per second in 250 ms steps
STREAM_BLOCK_S = 0.02  # than in 20 ms ones, but a stream's first frames must not wait
FILE_CALLBACK_S = 0.02  # device callbacks for files: ~2.5x fewer than PulseAudio's ~9 ms
STREAM_START_NOTICE_S = 0.005  # a (re)start is known this long before the first frames'
FILE_START_NOTICE_S = 0.15  # plans are due; a file can wait longer (and absorb a slow start)
PREBUFFER_MARGIN_MS = 20.0  # audio queued at start beyond what the model must see
RING_PER_PREBUFFER = 2.5  # the sink's ring holds this many start buffers


@dataclass(frozen=True)
class PlayResult(Outcome):
    """What happened, for the CLI's exit code and summary line."""

    missing: int = 0  # speech frames the model had not produced by their due time
    underruns: int = 0
    sink: str = "null"


class _Feed(threading.Thread):
    """Worker: source blocks -> model frames (kept in order) and audio into the sink."""

    def __init__(
        self, source: AudioSource, sink: Sink, model: FaceModel | None, start: bool = False
    ) -> None:
        super().__init__(name="nsplayer-feed", daemon=True)
        self.source, self.sink, self.model = source, sink, model
        self.total: int | None = None  # frames in all, once known
        self.samples = 0
        self.error: BaseException | None = None
        self._rows: deque[np.ndarray] = deque()
        self._first = 0  # frame index of _rows[0]
        self._lock = threading.Lock()
        # The audio waits for the first frames (a model may answer late: HTTP) and for the
        # pacer process to start, so that neither misses the first frames' due times.
        self._waiting = {"frames", "pacer", *(["start"] if start else [])}
        sink.gate(True)

    def add(self, rows: np.ndarray) -> None:
        with self._lock:
            self._rows.extend(rows)
        if len(rows):
            self.ready("frames")

    @property
    def waiting_for_frames(self) -> bool:
        """The audio waits for the model's first frames (a remote model may take a while)."""
        return "frames" in self._waiting

    def ready(self, what: str) -> None:
        """``what`` ("frames", "pacer" or the "start" time) is ready; the audio starts once
        all are."""
        with self._lock:
            self._waiting.discard(what)
            if not self._waiting:
                self.sink.gate(False)

    def run(self) -> None:
        try:
            seconds = STREAM_BLOCK_S if self.source.frames is None else FILE_BLOCK_S
            block = max(1, round(self.source.sample_rate * seconds))
            for pcm in self.source.blocks(block):
                self.samples += len(pcm)
                if self.model is not None:
                    self.add(self.model.feed(to_mono(pcm)))
                if not self.sink.write(pcm):
                    return  # stopped
            if not self.samples:
                raise NsplayerError(f"{self.source.name}: no audio samples (the input was empty)")
            if self.model is not None:
                self.add(self.model.flush())
            with self._lock:
                self.total = self._first + len(self._rows)
        except BaseException as exc:  # reported by the main thread as one line
            self.error = exc
        finally:
            self.sink.gate(False)
            self.sink.end()

    def row(self, index: int) -> np.ndarray | None:
        """Frame ``index`` if computed; frames before it are forgotten (never needed again)."""
        if self.idling(index):
            return None
        with self._lock:
            while self._rows and self._first < index:
                self._rows.popleft()
                self._first += 1
            return self._rows[0] if self._rows and self._first == index else None

    def idling(self, index: int) -> bool:
        """True from the frame where a failed model was told to idle (--on-model-error idle)."""
        idle_from = None if self.model is None else self.model.idle_from_frame
        return idle_from is not None and index >= idle_from

    def finished(self, index: int, sample_rate: int, fps: int) -> bool:
        """True once speech frame ``index`` is past the last frame or the last sample."""
        if self.total is None:
            return False
        return index >= self.total or round(index * sample_rate / fps) >= self.sink.written


class _Track:
    """The feed's frames as a speech track, heard when the sink plays their samples."""

    def __init__(self, feed: _Feed, sink: Sink, sample_rate: int, fps: int) -> None:
        self.feed, self.sink, self.sample_rate, self.fps = feed, sink, sample_rate, fps
        self.missing = 0  # speech frames the model had not produced by their due time

    def due(self, index: int) -> float | None:
        return self.sink.dac_time(round(index * self.sample_rate / self.fps))

    def row(self, index: int) -> np.ndarray | None:
        row = self.feed.row(index)
        self.missing += row is None and not self.feed.idling(index)
        return row

    def done(self, index: int) -> bool:
        return self.feed.finished(index, self.sample_rate, self.fps)


@contextmanager
def _conducting(options: Options, reporter: Reporter) -> Iterator[Conductor]:
    """The conductor and its pacer process, started first: the pacer is up by the time the
    input is open (stdin may take a while to give its header) and the model is loaded."""
    check_writable(options.stats, "--stats")
    conductor = Conductor(
        time.monotonic,
        options.fps,
        options.targets,
        av_offset_ms=options.av_offset_ms,
        detailed=options.stats is not None,
        report=reporter.say,
    )
    try:
        yield conductor
    finally:
        conductor.close()
        reporter.done()


def _cast(conductor: Conductor, options: Options) -> Performer:
    """The one performer of play, replay and idle, as the options describe it."""
    look = Look(options.gains, options.idle, options.emotion, options.seed)
    return conductor.add(
        options.subject, look, device_id=options.device_id, save_csv=options.save_csv
    )


def _open_sink(
    rate: int,
    channels: int,
    streaming: bool,
    options: Options,
    model: FaceModel | None,
    reporter: Reporter,
) -> Sink:
    """The sink for audio of ``rate`` and ``channels``, its buffers sized for the model."""
    lookahead = model.lookahead_s if model is not None else 0.0
    early = max(0.0, -options.av_offset_ms / 1000.0)  # a face that leads the sound
    # Frames must be ready at the start: the model's look-ahead, and as far ahead as the
    # face leads the sound; the ring holds that much more.
    prebuffer_ms = max(options.buffer_ms, 1000.0 * (lookahead + early) + PREBUFFER_MARGIN_MS)
    # Announce every audio (re)start early enough for the conductor to plan the first
    # frames (and a face that leads the sound) on time. A file can afford a long notice,
    # which absorbs a slow first second on a busy machine; a stream starts at once.
    notice = STREAM_START_NOTICE_S if streaming else FILE_START_NOTICE_S
    return open_sink(
        rate,
        channels,
        no_audio=options.no_audio,
        device=options.device,
        buffer_ms=prebuffer_ms,
        underrun=options.underrun,
        capacity_s=max(1.0, RING_PER_PREBUFFER * prebuffer_ms / 1000.0),
        start_lead=notice + 1.5 / options.fps + PROCESS_LEAD_S + early,
        callback_s=None if streaming else FILE_CALLBACK_S,  # streams: low latency
        report=reporter.say,
    )


def _drive(
    source: AudioSource,
    sink: Sink,
    options: Options,
    model: FaceModel | None,
    rows: np.ndarray | None,
    conductor: Conductor,
    reporter: Reporter,
) -> PlayResult:
    feed = _Feed(source, sink, model, start=options.start_at is not None)
    if rows is not None:
        feed.add(rows)
    stopped_by = None
    try:
        conductor.use_clock(sink.now)
        performer = _cast(conductor, options)
        track = _Track(feed, sink, source.sample_rate, options.fps)
        performer.speak(track)
        reporter.say(_announcement(source, sink, options))
        status = _Status(reporter, source, feed, performer, options)
        with stop_on_signals() as stop, fine_thread_switching():
            feed.start()
            conductor.wait_ready()
            feed.ready("pacer")
            if options.start_at is not None:
                _start_at(options.start_at, feed, sink, reporter)
            failure = None
            try:
                conductor.run(
                    lambda: stop.signum is not None or _over(feed, sink, performer, status)
                )
            except Exception as exc:  # the source or model failed mid-stream: still ease out
                failure = exc
            if stop.signum is not None or failure is not None:
                sink.stop_audio()
            conductor.ease_out()
            if failure is None:
                _play_out(conductor, sink, stop)
            stopped_by = stop.signum
        conductor.close()
        _finish_files(conductor, performer, sink, track, options)
        if failure is not None:
            raise failure
        return _result(conductor, performer, sink, track, stopped_by)
    finally:
        sink.close()
        feed.join(timeout=1.0 if stopped_by is None else 0.2)  # may be stuck reading stdin
        if model is not None and not feed.is_alive():
            model.close()
        source.close()


def _start_at(when: str, feed: _Feed, sink: Sink, reporter: Reporter) -> None:
    """Open the audio so that its first sample (and frame 0) is heard at ``when``, a local
    time of day today: how a face lines up with sound that UE plays itself (--no-audio)."""
    today = datetime.date.today()
    target = datetime.datetime.combine(today, datetime.time.fromisoformat(when)).timestamp()
    delay = target - time.time() - sink.start_lead
    if delay < 0:
        raise NsplayerError(f"--start-at {when} is in the past — give a time later today")
    reporter.say(f"nsplayer: frame 0 at {when} (in {delay + sink.start_lead:.1f} s)")
    timer = threading.Timer(delay, feed.ready, ("start",))
    timer.daemon = True
    timer.start()


def _over(feed: _Feed, sink: Sink, performer: Performer, status: _Status) -> bool:
    """True once the speech has ended; raises what failed (the sink, the source, the model)."""
    if sink.failure is not None:
        raise sink.failure
    if feed.error is not None:
        raise feed.error
    status.update()
    return not performer.speaking


class _Status:
    """The terminal's status line: where playback is, and whether it waits for the model."""

    def __init__(
        self,
        reporter: Reporter,
        source: AudioSource,
        feed: _Feed,
        performer: Performer,
        options: Options,
    ) -> None:
        self.reporter, self.feed, self.performer, self.fps = reporter, feed, performer, options.fps
        frames = source.frames
        self.total = "" if frames is None else " / " + clock(frames / source.sample_rate)
        self.model = "frames from the CSV" if options.model is None else f"model {options.model}"
        self.started = time.monotonic()

    def update(self) -> None:
        if not self.reporter.due():
            return
        index = self.performer.index
        if self.feed.waiting_for_frames:
            waited = time.monotonic() - self.started
            state = f"waiting for the {self.model} ({waited:.1f} s)"
        else:
            state = self.model
        heard = clock(0 if index is None else index / self.fps)
        self.reporter.status(f"nsplayer: {heard}{self.total}  {state}  (Ctrl-C stops)")


def _play_out(conductor: Conductor, sink: Sink, stop: Stop) -> None:
    """Idle frames while the rest of the audio plays (e.g. a CSV shorter than its audio)."""
    progress, changed = -1, time.monotonic()

    def heard() -> bool:
        nonlocal progress, changed
        if sink.consumed != progress:
            progress, changed = sink.consumed, time.monotonic()
        stalled = time.monotonic() - changed > SILENT_S  # the device stopped taking samples
        return stop.signum is not None or sink.played() or stalled

    conductor.run(heard)


def _finish_files(
    conductor: Conductor, performer: Performer, sink: Sink, track: _Track, options: Options
) -> None:
    """``--stats`` and ``--save-csv``: written on every exit, errors included."""
    if options.stats is not None:
        report = conductor.stats_report(performer)
        report.update(
            sink=sink.kind,
            output_latency_s=sink.latency,
            measured_latency_s=sink.measured_latency,
            underruns=sink.underruns,
            device_status_errors=sink.status_errors,
            missing=track.missing,
            model_lookahead_s=None if track.feed.model is None else track.feed.model.lookahead_s,
        )
        write_json(options.stats, report)
    conductor.save(performer)


def _result(
    conductor: Conductor, performer: Performer, sink: Sink, track: _Track, stopped_by: int | None
) -> PlayResult:
    outcome = conductor.outcome(performer, stopped_by)
    return PlayResult(
        frames_sent=outcome.frames_sent,
        speech_frames=outcome.speech_frames,
        dropped=outcome.dropped,
        missing=track.missing,
        underruns=sink.underruns,
        sink=sink.kind,
        stopped_by=stopped_by,
    )


def _announcement(source: AudioSource, sink: Sink, options: Options) -> str:
    where = ", ".join(options.targets)
    device = getattr(sink, "device_name", "no sound" if sink.kind == "null" else sink.kind)
    return (
        f"nsplayer: {source.name} -> {where} as {options.subject!r} "
        f"(audio: {device}, latency {sink.latency * 1000:.0f} ms; Ctrl-C stops)"
    )


def play(
    open_audio: Callable[[], AudioSource],
    options: Options,
    expect: StreamFormat | None = None,
    reporter: Reporter | None = None,
) -> PlayResult:
    """Play the audio ``open_audio`` opens and stream the model's frames in sync with the
    sound as heard. ``expect``: see ``_open``."""
    return _play(open_audio, options, expect, None, reporter or Reporter(options.verbose))


def replay(
    open_audio: Callable[[], AudioSource],
    shapes: Path,
    options: Options,
    expect: StreamFormat | None = None,
    reporter: Reporter | None = None,
) -> PlayResult:
    """Play the audio with precomputed frames (CSV, JSON or npy), synced the same way."""
    rows = load_rows(shapes, options.fps)
    return _play(open_audio, options, expect, rows, reporter or Reporter(options.verbose))


def _play(
    open_audio: Callable[[], AudioSource],
    options: Options,
    expect: StreamFormat | None,
    rows: np.ndarray | None,
    reporter: Reporter,
) -> PlayResult:
    """Frames from ``rows`` if given, else from the model."""
    if rows is not None:
        options = replace(options, model=None)  # type: ignore[arg-type]
    with _conducting(options, reporter) as conductor:
        source, sink, model = _open(open_audio, options, expect, reporter)
        return _drive(source, sink, options, model, rows, conductor, reporter)


def _open(
    open_audio: Callable[[], AudioSource],
    options: Options,
    expect: StreamFormat | None,
    reporter: Reporter,
) -> tuple[AudioSource, Sink, FaceModel | None]:
    """The source, its sink and (unless ``options.model`` is None) the model, all open;
    none if one fails.

    ``expect`` (a stream's format as announced or guessed) opens the sink and the model
    before the stream's header arrives: a new output stream can take a while to play at a
    steady pace, and that wait then overlaps with the wait for the input. If the header
    says otherwise, the sink converts (``Sink.adopt``) and the model is made anew.
    """
    with_model = options.model is not None
    model = sink = source = None
    try:
        if expect is not None:
            model = _create_model(options, expect.rate, True, reporter) if with_model else None
            sink = _open_sink(expect.rate, expect.channels, True, options, model, reporter)
        source = open_audio()
        streaming = source.frames is None
        if expect is not None:
            sink, model = _fit(source, expect, sink, model, reporter)
        if with_model and model is None:
            model = _create_model(options, source.sample_rate, streaming, reporter)
        if sink is None:
            sink = _open_sink(
                source.sample_rate, source.channels, streaming, options, model, reporter
            )
    except BaseException:
        for opened in (sink, model, source):
            if opened is not None:
                opened.close()
        raise
    return source, sink, model


def _fit(
    source: AudioSource,
    expect: StreamFormat,
    sink: Sink | None,
    model: FaceModel | None,
    reporter: Reporter,
) -> tuple[Sink | None, FaceModel | None]:
    """The sink and model opened for ``expect``, kept for ``source``: the sink converts its
    format if it differs; the model, made for a rate, is closed if the rate does (None:
    ``_open`` makes it anew)."""
    if (source.sample_rate, source.channels) != (expect.rate, expect.channels):
        if expect.announced:
            reporter.say(_not_as_expected(source, expect))
        sink.adopt(source.sample_rate, source.channels)
    if model is not None and source.sample_rate != expect.rate:
        model.close()
        model = None
    return sink, model


def _create_model(options: Options, rate: int, streaming: bool, reporter: Reporter) -> FaceModel:
    from nsplayer.models import create_model  # replay and idle need no model

    return create_model(
        options.model,
        rate,
        options.fps,
        causal=streaming,
        settings=options.neurosync,
        report=reporter.say,
    )


def _not_as_expected(source: AudioSource, expect: StreamFormat) -> str:
    return (
        f"nsplayer: {source.name} is {_format(source.sample_rate, source.channels)}, not the "
        f"{_format(expect.rate, expect.channels)} that --rate/--channels announced; "
        "converting it (fix or drop them)"
    )


def _format(rate: int, channels: int) -> str:
    return f"{rate} Hz " + {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")


def idle(
    options: Options, duration: float | None = None, reporter: Reporter | None = None
) -> PlayResult:
    """Idle animation only, until a signal or ``duration`` seconds."""
    reporter = reporter or Reporter(options.verbose)
    limit = math.inf if duration is None else round(duration * options.fps)
    with _conducting(options, reporter) as conductor:
        performer = _cast(conductor, options)
        reporter.say(f"nsplayer: idle -> {', '.join(options.targets)} as {options.subject!r}")
        started = time.monotonic()

        def over() -> bool:
            if reporter.due():
                elapsed = clock(time.monotonic() - started)
                reporter.status(f"nsplayer: idle {elapsed} (Ctrl-C stops)")
            return stop.signum is not None or performer.sent >= limit

        with stop_on_signals() as stop, fine_thread_switching():
            conductor.wait_ready()
            conductor.run(over)
        conductor.close()
        if options.stats is not None:
            write_json(options.stats, conductor.stats_report(performer))
        conductor.save(performer)
        outcome = conductor.outcome(performer, stop.signum)
        return PlayResult(*astuple(outcome))
