"""`nsplayer live`: microphone in, Live Link frames out, as soon as they are computed.

Unlike `play` there is no audio clock to follow: the face follows the voice, so what
matters is latency, the sum of what each stage holds back — the device's input buffering
plus one block, the model's look-ahead, the send. ``run_live`` prints that budget when
audio arrives. The engine sends each frame as soon as it is ready (its due time is when
it was computed) and idle ticks whenever no frame is, so the face keeps moving before the
input starts and through any gap. Everything is bounded (input queue, gate history,
NeuroSync window, track) so the command runs for hours with flat memory; only
``--stats`` keeps per-frame records.

Threads: the input's callback only queues blocks; a listener thread runs gate, monitor
and model and hands frames to the track; the main thread is the engine's conductor.
"""

from __future__ import annotations

import bisect
import collections
import math
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from nsplayer.audio import SILENT_S
from nsplayer.audio.mic import Block, FileInput, MicInput
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
from nsplayer.reporting import Reporter
from nsplayer.stopping import stop_on_signals
from nsplayer.vad import VoiceGate

if TYPE_CHECKING:
    from nsplayer.config import Options

START_S = 10.0  # a new PulseAudio input stream may take seconds to deliver its first block
MONITOR_MAX_S = 0.2  # monitor output queued at most; more is dropped to keep it live
WINDOW_FRAMES = 128  # NeuroSync needs at least this much context per request
NEUROSYNC_FPS = 60
TRACK_MAX_S = 1.0  # frames kept for the conductor at most (it takes them within a period)
# Frame periods the engine waits for the next computed frame before an idle tick: a
# period, the pacer's lead and the input's block jitter, so an on-time frame always wins.
LIVE_PATIENCE = 2.0


@dataclass(frozen=True)
class LiveSettings:
    """What only `live` has; the shared options travel in ``nsplayer.config.Options``."""

    rate: int | None = None  # None: the input device's default rate
    block_ms: float = 5.0
    monitor: bool = False
    hop_ms: float = 100.0  # neurosync: how often the newest window is re-sent
    duration: float | None = None  # stop after this many seconds of input
    gate: bool = True  # voice-activity gate in front of the animator
    input_file: Path | None = None  # play this file as if it were the microphone


@dataclass(frozen=True)
class LiveResult(Outcome):
    overflows: int = 0  # PortAudio reported lost input
    blocks_dropped: int = 0  # blocks dropped because the listener fell behind


class LiveInput(Protocol):
    rate: int
    block: int
    device_name: str
    latency: float
    overflows: int
    dropped: int
    finished: bool

    def start(self) -> None: ...

    def read(self, timeout: float) -> Block | None: ...

    def close(self) -> None: ...


# -- frame producers -------------------------------------------------------------------------


class FrameProducer(Protocol):
    """Audio in, (frame index, row) out; frame i is audio time i / fps."""

    lookahead_s: float
    spacing: float  # least time between two sends: spreads bursts of frames
    error: Exception | None  # a failure to report (the remote model went away)
    answered: bool  # the model has answered at least once (so a failure is mid-run)

    def push(self, pcm: np.ndarray) -> list[tuple[int, np.ndarray | None]]: ...

    def close(self) -> None: ...


class StreamingFrames:
    """A streaming model (the embedded one, causal): each block yields the frames it completes."""

    error = None
    answered = True

    def __init__(self, model, first: int = 0) -> None:
        self._model = model
        self._next = first  # index of the model's first frame (a fallback starts mid-run)
        self.lookahead_s = float(model.lookahead_s)
        self.spacing = 0.0  # frames follow the blocks: send each one at once

    def push(self, pcm: np.ndarray) -> list[tuple[int, np.ndarray]]:
        rows = self._model.feed(pcm)
        out = [(self._next + k, row) for k, row in enumerate(rows)]
        self._next += len(rows)
        return out

    def close(self) -> None:
        self._model.close()


class IdleFrames:
    """No model: one empty frame per frame period of input, so the idle face keeps going."""

    lookahead_s = 0.0
    spacing = 0.0
    error = None
    answered = True

    def __init__(self, rate: int, fps: int, first: int) -> None:
        self._rate, self._fps, self._next = rate, fps, first
        self._samples = first * rate / fps

    def push(self, pcm: np.ndarray) -> list[tuple[int, None]]:
        self._samples += len(pcm)
        end = math.floor(self._samples * self._fps / self._rate)
        out = [(i, None) for i in range(self._next, end)]
        self._next = max(self._next, end)
        return out

    def close(self) -> None:
        pass


class SlidingWindows:
    """NeuroSync needs >= 128 frames of context, so it cannot stream: every hop the newest
    window of audio is sent, and only the frames no earlier window delivered are kept.

    ``client`` is the NeuroSync HTTP client (retries, validation, API key handling). One
    request is in flight at a time, on the same daemon worker pool the NeuroSync model
    uses (a request stuck until its timeout never holds up the exit); a hop that comes
    while it runs is skipped, so a slow server lowers the update rate instead of building
    a backlog.
    """

    def __init__(self, client, rate: int, fps: int, hop_s: float) -> None:
        from nsplayer.models.neurosync import Workers

        self._client, self._rate, self._fps = client, rate, fps
        self._window = math.ceil(WINDOW_FRAMES * rate / NEUROSYNC_FPS) + rate // 10
        self._hop = max(1, round(hop_s * rate))
        self._keep = math.ceil(2 * hop_s * fps)  # older frames are stale: skipped, not sent late
        self._ring = np.zeros(self._window, np.float32)
        self._received = 0  # samples seen
        self._next_submit = self._window  # first request once a full window is in
        self._next_frame = 0
        self._pool = Workers(1)
        self._pending = None
        self._pending_start = 0
        self.lookahead_s = hop_s  # plus the request time, which is measured, not known
        self.answered = False  # a failure before the first answer means a wrong URL/server
        self.spacing = 0.9 / fps  # a window's frames go out at about the frame rate
        self.error: Exception | None = None

    def push(self, pcm: np.ndarray) -> list[tuple[int, np.ndarray]]:
        pcm = np.asarray(pcm, np.float32)[-self._window :]
        self._ring = np.concatenate([self._ring[len(pcm) :], pcm])
        self._received += len(pcm)
        out = self._collect()
        if self._pending is None and self._received >= self._next_submit:
            self._pending_start = self._received - self._window
            self._pending = self._pool.submit(self._request, self._ring.copy())
            self._next_submit = self._received + self._hop
        return out

    def _collect(self) -> list[tuple[int, np.ndarray]]:
        if self._pending is None or not self._pending.done():
            return []
        future, self._pending = self._pending, None
        try:
            rows = np.asarray(future.result(), np.float32)
        except Exception as exc:  # reported by the listener as one line
            self.error = exc
            return []
        start_s = self._pending_start / self._rate
        end = math.floor((self._pending_start + self._window) / self._rate * self._fps)
        first = max(self._next_frame, math.ceil(start_s * self._fps), end - self._keep)
        out = []
        for i in range(first, end):
            row = round((i / self._fps - start_s) * NEUROSYNC_FPS)
            if 0 <= row < len(rows):
                out.append((i, rows[row]))
        self._next_frame = max(self._next_frame, end)
        return out

    def _request(self, pcm: np.ndarray) -> np.ndarray:
        from nsplayer.models.neurosync import wav_bytes

        rows = math.ceil(len(pcm) / self._rate * NEUROSYNC_FPS)
        answer = self._client.post(wav_bytes(pcm, self._rate), rows)
        self.answered = True
        return answer

    def close(self) -> None:
        self._pool.close()
        self._client.close()


# -- timing ----------------------------------------------------------------------------------


class SampleClock:
    """Capture time (monotonic) of any recent sample: bounded history of block starts."""

    def __init__(self, rate: int, history: int = 2048) -> None:
        self.rate = rate
        self.samples = 0
        self._starts: collections.deque[int] = collections.deque(maxlen=history)
        self._adcs: collections.deque[float] = collections.deque(maxlen=history)

    def add(self, block: Block) -> None:
        self._starts.append(self.samples)
        self._adcs.append(block.adc)
        self.samples += len(block.pcm)

    def capture_time(self, sample: float) -> float:
        k = max(0, bisect.bisect_right(self._starts, sample) - 1)
        return self._adcs[k] + (sample - self._starts[k]) / self.rate


@dataclass
class FrameTimes:
    """Per speech frame (``--stats``): model index, capture, block arrival and ready times."""

    model_index: array = field(default_factory=lambda: array("q"))
    capture: array = field(default_factory=lambda: array("d"))
    arrival: array = field(default_factory=lambda: array("d"))
    ready: array = field(default_factory=lambda: array("d"))
    speech: array = field(default_factory=lambda: array("b"))


class LiveTrack:
    """Frames as the listener computes them, each due when it is ready (spread by the
    producer's spacing); the conductor takes them in order. Bounded: a frame not taken
    within TRACK_MAX_S is forgotten (the conductor would drop it as late anyway)."""

    def __init__(self, fps: int, times: FrameTimes | None) -> None:
        self._due: collections.deque[float] = collections.deque()
        self._rows: collections.deque[np.ndarray | None] = collections.deque()
        self._first = 0  # track index of _rows[0]
        self._keep = math.ceil(TRACK_MAX_S * fps)
        self._lock = threading.Lock()
        self._last_due = -math.inf
        self.times = times
        self.ended = False

    def add(self, row: np.ndarray | None, ready: float, spacing: float) -> None:
        """A new frame: ``row`` (None: the gate says no speech, the face idles)."""
        with self._lock:
            self._last_due = max(ready, self._last_due + spacing)
            self._due.append(self._last_due)
            self._rows.append(row)
            while len(self._rows) > self._keep:
                self._drop()

    def _drop(self) -> None:
        self._due.popleft()
        self._rows.popleft()
        self._first += 1

    def due(self, index: int) -> float | None:
        with self._lock:
            k = index - self._first
            if k < 0:
                return -math.inf  # forgotten: long overdue
            return self._due[k] if k < len(self._due) else None

    def row(self, index: int) -> np.ndarray | None:
        with self._lock:
            while self._rows and self._first < index:
                self._drop()
            return self._rows[0] if self._rows and self._first == index else None

    def done(self, index: int) -> bool:
        with self._lock:
            return self.ended and index >= self._first + len(self._rows)


# -- session ---------------------------------------------------------------------------------


class Listener(threading.Thread):
    """Input blocks -> gate, monitor, model -> frames on the track; the conductor sends."""

    def __init__(
        self,
        mic: LiveInput,
        producer: FrameProducer,
        track: LiveTrack,
        wake: Callable[[], None],
        *,
        fps: int,
        gate: VoiceGate | None,
        monitor=None,
        reporter: Reporter,
        banner: str = "",
        on_model_error: str = "stop",
        duration: float | None = None,
    ) -> None:
        super().__init__(name="nsplayer-listener", daemon=True)
        self.mic, self.producer, self.track, self.wake = mic, producer, track, wake
        self.fps, self.gate, self.monitor = fps, gate, monitor
        self.reporter, self.banner = reporter, banner
        self.on_model_error = on_model_error
        self.clock = SampleClock(mic.rate)
        self.error: BaseException | None = None
        self._limit = math.inf if duration is None else duration * mic.rate
        self._halt = threading.Event()
        self._last_input = time.monotonic() + START_S - SILENT_S
        self._reported = (0, 0)  # overflows, dropped blocks at the last -v report
        self._report_due = 0.0

    def run(self) -> None:
        try:
            while self.clock.samples < self._limit and not self._halt.is_set():
                self._step()
        except BaseException as exc:  # reported by the main thread as one line
            self.error = exc
        finally:
            self.track.ended = True
            self.wake()

    def stop(self) -> None:
        self._halt.set()

    def _step(self) -> None:
        block = self.mic.read(0.05)
        now = time.monotonic()
        if block is None:
            if isinstance(self.mic, FileInput) and self.mic.finished:
                self._halt.set()  # the whole file was heard
            elif self.mic.finished or now - self._last_input > SILENT_S:
                raise NsplayerError(
                    f"input device {self.mic.device_name!r} stopped delivering audio "
                    "(unplugged?) — reconnect it or pick another with --input-device "
                    "(see `nsplayer devices`)"
                )
            return
        if self.clock.samples == 0 and self.banner:
            self.reporter.say(self.banner)  # only now is the input really live
        self._last_input = now
        self.clock.add(block)
        if self.gate is not None:
            self.gate.push(block.pcm)
        if self.monitor is not None:
            self._play(block.pcm)
        frames = self.producer.push(block.pcm)
        for index, row in frames:
            self._add(index, row, block.arrival)
        if frames:
            self.wake()
        self._check_faults()

    def _add(self, index: int, row: np.ndarray | None, arrival: float) -> None:
        ready = time.monotonic()
        audio_t = index / self.fps
        speech = self.gate is None or self.gate.active_at(audio_t + self.producer.lookahead_s)
        self.track.add(row if speech else None, ready, self.producer.spacing)
        times = self.track.times
        if times is not None:
            capture = self.clock.capture_time(audio_t * self.mic.rate)
            for column, value in zip(
                (times.model_index, times.capture, times.arrival, times.ready, times.speech),
                (index, capture, arrival, ready, int(speech)),
                strict=True,
            ):
                column.append(value)

    def _play(self, pcm: np.ndarray) -> None:
        """Monitor: hand the input to the output, dropping it if the output lags behind."""
        heard = self.monitor.dac_time(self.monitor.written - 1) if self.monitor.written else None
        if heard is None or heard - self.monitor.now() < MONITOR_MAX_S:
            self.monitor.write(pcm[:, None])

    def _check_faults(self) -> None:
        if self.producer.error is not None:
            self._replace_failed_model(self.producer.error)
        lost = (self.mic.overflows, self.mic.dropped)
        if lost != self._reported and time.monotonic() >= self._report_due:
            self._reported, self._report_due = lost, time.monotonic() + 10.0  # at most every 10 s
            self.reporter.detail(
                f"live: input lost so far: {lost[0]} overflows, {lost[1]} blocks dropped"
            )

    def _replace_failed_model(self, error: Exception) -> None:
        """NeuroSync failed mid-run: go on as ``on_model_error`` says (models.fallback's rule)."""
        from nsplayer.models.fallback import after_failure

        failure = error if isinstance(error, NsplayerError) else NsplayerError(str(error))
        instead, line = after_failure(self.on_model_error, self.producer.answered, failure)
        first = math.ceil(self.clock.samples * self.fps / self.mic.rate)
        self.producer.close()
        if instead == "embedded":
            from nsplayer.models import create_model

            model = create_model("embedded", self.mic.rate, self.fps, causal=True)
            self.producer = StreamingFrames(model, first)
        else:
            self.producer = IdleFrames(self.mic.rate, self.fps, first)
        self.reporter.say(line)


def latency_line(mic: LiveInput, lookahead_s: float, neurosync: bool) -> str:
    """The budget printed at start: what each stage adds before a frame can leave."""
    block = mic.block / mic.rate
    model = "hop" if neurosync else "model look-ahead"
    total = f"{(mic.latency + block + lookahead_s) * 1000:.0f} ms"
    if neurosync:
        total += " + the request time"
    return (
        f"live: {mic.device_name!r} at {mic.rate} Hz; latency ≈ {mic.latency * 1000:.0f} ms input"
        f" + {block * 1000:.0f} ms block + {lookahead_s * 1000:.0f} ms {model} + <1 ms send"
        f" = {total} (Ctrl-C stops)"
    )


def run_live(options: Options, reporter: Reporter) -> LiveResult:
    """Build input, model and engine from the options, print the latency, run until the
    input ends, ``--duration`` passes, a signal or a fault; always ease the face out."""
    settings = options.live
    check_writable(options.stats, "--stats")
    if settings.input_file is not None:
        mic: LiveInput = FileInput(settings.input_file, settings.rate, settings.block_ms)
    else:
        mic = MicInput(options.input_device, settings.rate, settings.block_ms)
    closers: list[Callable[[], None]] = [mic.close]
    listener: Listener | None = None
    try:
        producer = _producer(options, settings, mic.rate)
        closers.append(lambda: (producer if listener is None else listener.producer).close())
        monitor = _monitor(options, settings, mic.rate)
        if monitor is not None:
            closers.append(monitor.close)
        conductor = Conductor(
            time.monotonic,
            options.fps,
            options.targets,
            detailed=options.stats is not None,
            report=reporter.say,
        )
        closers.append(conductor.close)
        look = Look(options.gains, options.idle, options.emotion, options.seed)
        performer = conductor.add(
            options.subject, look, device_id=options.device_id, save_csv=options.save_csv
        )
        track = LiveTrack(options.fps, FrameTimes() if options.stats is not None else None)
        performer.speak(track, patience=LIVE_PATIENCE)
        listener = Listener(
            mic,
            producer,
            track,
            conductor.wake,
            fps=options.fps,
            gate=VoiceGate(mic.rate) if settings.gate else None,
            monitor=monitor,
            reporter=reporter,
            on_model_error=options.neurosync.on_model_error,
            banner=latency_line(mic, producer.lookahead_s, options.model == "neurosync"),
            duration=settings.duration,
        )
        return _run(conductor, performer, listener, mic, options, reporter)
    finally:
        for close in reversed(closers):
            close()


def _run(
    conductor: Conductor,
    performer: Performer,
    listener: Listener,
    mic: LiveInput,
    options: Options,
    reporter: Reporter,
) -> LiveResult:
    conductor.wait_ready()
    mic.start()
    listener.start()
    failure: BaseException | None = None
    with stop_on_signals() as stop, fine_thread_switching():  # a 2nd Ctrl-C cannot cut it short
        try:
            conductor.run(lambda: stop.signum is not None or _over(listener, performer))
        except Exception as exc:  # the input or the model failed: still ease out
            failure = exc
        listener.stop()
        conductor.ease_out()
    conductor.close()
    listener.join(1.0)
    _write_files(conductor, performer, listener, mic, options)
    if failure is not None:
        raise failure
    outcome = conductor.outcome(performer, stop.signum)
    result = LiveResult(
        outcome.frames_sent,
        outcome.speech_frames,
        outcome.dropped,
        outcome.stopped_by,
        overflows=mic.overflows,
        blocks_dropped=mic.dropped,
    )
    reporter.detail(
        f"live: {result.frames_sent} frames sent, {result.overflows} input overflows, "
        f"{result.blocks_dropped} blocks dropped"
    )
    return result


def _over(listener: Listener, performer: Performer) -> bool:
    if listener.error is not None:
        raise listener.error
    return not performer.speaking


def _write_files(
    conductor: Conductor, performer: Performer, listener: Listener, mic: LiveInput, options
) -> None:
    """``--stats`` (per speech frame: capture, arrival, ready, sent) and ``--save-csv``."""
    conductor.save(performer)
    times = listener.track.times
    if options.stats is None or times is None:
        return
    report = conductor.stats_report(performer)
    sent = [f for f in report.pop("frames") if f["index"] is not None]
    frames: dict[str, list] = {"index": [], "frame": [], "sent": []}
    for name in ("capture", "arrival", "ready", "speech"):
        frames[name] = []
    for f in sent:
        k = f["index"]
        if k >= len(times.model_index):
            continue
        frames["index"].append(times.model_index[k])
        frames["frame"].append(f["frame"])
        frames["sent"].append(f["sent"])
        for name in ("capture", "arrival", "ready", "speech"):
            frames[name].append(getattr(times, name)[k])
    header = {
        "rate": mic.rate,
        "block_s": mic.block / mic.rate,
        "input_latency_s": mic.latency,
        "lookahead_s": listener.producer.lookahead_s,
        "overflows": mic.overflows,
        "blocks_dropped": mic.dropped,
    }
    write_json(options.stats, {**report, **header, "frames": frames})


def _producer(options: Options, settings: LiveSettings, rate: int) -> FrameProducer:
    from nsplayer.models import create_model

    if options.model == "neurosync":
        from nsplayer.models.neurosync import HttpClient

        client = HttpClient(options.neurosync)
        return SlidingWindows(client, rate, options.fps, settings.hop_ms / 1000)
    return StreamingFrames(create_model(options.model, rate, options.fps, causal=True))


def _monitor(options: Options, settings: LiveSettings, rate: int):
    """The output that plays the input back (``--monitor``), or None."""
    if not settings.monitor or options.no_audio:
        return None
    from nsplayer.audio.sinks import DeviceSink

    # room for the input that arrives while the output warms up
    return DeviceSink(
        rate, 1, device=options.device, buffer_ms=2 * settings.block_ms, capacity_s=3.0
    )
