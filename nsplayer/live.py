"""`nsplayer live`: microphone in, Live Link frames out, as soon as they are computed.

Unlike `play` there is no audio clock to follow: the face follows the voice, so what
matters is latency, the sum of what each stage holds back — the device's input buffering
plus one block, the model's look-ahead, the send. ``run_live`` prints that budget at
start. Everything is bounded (input queue, gate history, NeuroSync window, sample clock)
so the command runs for hours with flat memory; only ``--stats`` keeps per-frame records.

Threads: the PortAudio callback only copies blocks into a bounded queue; the main thread
runs model, gate, animator and sender. NeuroSync requests run on one worker thread.
"""

from __future__ import annotations

import bisect
import collections
import concurrent.futures
import contextlib
import json
import math
import queue
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from livelink import FrameTime, LiveLinkSender
from nsplayer.errors import NsplayerError
from nsplayer.vad import VoiceGate

QUEUE_S = 0.5  # input buffered at most; older blocks are dropped when the consumer lags
STALL_S = 2.0  # no input for this long: the device is gone
START_S = 10.0  # a new PulseAudio input stream may take seconds to deliver its first block
EASE_OUT_S = 0.2  # at most this long to ease the face back to idle
MONITOR_MAX_S = 0.2  # monitor output queued at most; more is dropped to keep it live
WINDOW_FRAMES = 128  # NeuroSync needs at least this much context per request
NEUROSYNC_FPS = 60
DAY_S = 86400.0


@dataclass(frozen=True)
class LiveSettings:
    """What only `live` has; the shared options travel in ``nsplayer.config.Options``."""

    rate: int | None = None  # None: the input device's default rate
    block_ms: float = 5.0
    monitor: bool = False
    hop_ms: float = 100.0  # neurosync: how often the newest window is re-sent
    duration: float | None = None  # stop after this many seconds of input
    gate: bool = True  # voice-activity gate in front of the animator


@dataclass
class LiveResult:
    frames: int = 0
    overflows: int = 0  # PortAudio reported lost input
    dropped: int = 0  # blocks dropped because the main thread fell behind
    stopped_by: int | None = None  # SIGINT/SIGTERM, or None when --duration ended it

    @property
    def exit_code(self) -> int:
        return 0 if self.stopped_by is None else 128 + self.stopped_by


@dataclass(frozen=True)
class Block:
    pcm: np.ndarray  # float32 mono
    adc: float  # time.monotonic() when its first sample was captured
    arrival: float  # time.monotonic() when the callback handed it over


# -- input -----------------------------------------------------------------------------------


class MicInput:
    """A sounddevice input stream feeding a bounded queue.

    The callback never blocks: when the main thread falls behind, the oldest block is
    dropped (counted), so latency cannot creep up over a long run. PortAudio's callback
    times are on their own clock; each block's capture time is converted to
    ``time.monotonic()`` from the age PortAudio reports for it.
    """

    def __init__(self, device: str | int | None, rate: int | None, block_ms: float) -> None:
        from nsplayer.audio.sinks import device_info, load_sounddevice, resolve_device

        sd = load_sounddevice()
        index = resolve_device(device, "input")
        info = device_info(sd, index, "input", "")
        self.rate = int(rate or info["default_samplerate"] or 16000)
        self.block = max(1, round(self.rate * block_ms / 1000.0))
        self.device_name = str(info["name"])
        self.overflows = 0
        self.dropped = 0
        self.finished = False
        self._queue: queue.Queue[Block] = queue.Queue(
            maxsize=max(2, math.ceil(QUEUE_S * self.rate / self.block))
        )
        try:
            self._stream = sd.InputStream(
                samplerate=self.rate,
                blocksize=self.block,
                channels=1,
                dtype="float32",
                device=index,
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
            self.latency = float(self._stream.latency)
        except (ValueError, sd.PortAudioError) as exc:
            raise NsplayerError(
                f"cannot record from {self.device_name!r} at {self.rate} Hz ({exc}) — try "
                "another --rate or --input-device (see `nsplayer devices`)"
            ) from None

    def start(self) -> None:
        """Start recording (after the model is built, so no stale audio queues up)."""
        self._stream.start()

    def read(self, timeout: float) -> Block | None:
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # the device may be gone already; closing is best-effort
            pass

    def _callback(self, indata: np.ndarray, frames: int, timing, status) -> None:
        now = time.monotonic()
        adc, current = float(timing.inputBufferAdcTime), float(timing.currentTime)
        age = current - adc if 0 < adc <= current else self.latency + frames / self.rate
        if status.input_overflow:
            self.overflows += 1
        block = Block(indata[:, 0].copy(), now - age, now)
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait(block)

    def _finished(self) -> None:
        self.finished = True


# -- frame producers -------------------------------------------------------------------------


class FrameProducer(Protocol):
    """Audio in, (frame index, row) out; frame i is audio time i / fps."""

    lookahead_s: float
    spacing: float  # least time between two sends: spreads bursts of frames

    def push(self, pcm: np.ndarray) -> list[tuple[int, np.ndarray | None]]: ...

    def close(self) -> None: ...


class StreamingFrames:
    """A streaming model (the embedded one, causal): each block yields the frames it completes."""

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
    request is in flight at a time; a hop that comes while it runs is skipped, so a slow
    server lowers the update rate instead of building a backlog.
    """

    def __init__(self, client, rate: int, fps: int, hop_s: float) -> None:
        self._client, self._rate, self._fps = client, rate, fps
        self._window = math.ceil(WINDOW_FRAMES * rate / NEUROSYNC_FPS) + rate // 10
        self._hop = max(1, round(hop_s * rate))
        self._keep = math.ceil(2 * hop_s * fps)  # older frames are stale: skipped, not sent late
        self._ring = np.zeros(self._window, np.float32)
        self._received = 0  # samples seen
        self._next_submit = self._window  # first request once a full window is in
        self._next_frame = 0
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="neurosync")
        self._pending: concurrent.futures.Future | None = None
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
        except Exception as exc:  # reported by the session as one line
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
        self._pool.shutdown(wait=False, cancel_futures=True)
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


class Timecode:
    """Consecutive time-of-day frame times anchored on the capture time of the audio.

    Frame numbers advance by exactly one per frame. Every ``check_s`` the capture time is
    compared with the timecode; if the input device's clock has drifted a whole frame from
    the system clock (it does over hours), the anchor moves, so the timecode never drifts
    away from the time of day. Checking rarely keeps the noisy capture times of a stream's
    first second (PulseAudio delivers them in a burst) from making the numbers jump.
    """

    def __init__(self, fps: int, check_s: float = 10.0) -> None:
        self.fps = fps
        self._offset = FrameTime.now(fps, 1).to_seconds() - time.monotonic()
        self._anchor: tuple[int, FrameTime] | None = None  # (frame index, its frame time)
        self._check = max(1, round(check_s * fps))
        self._checked = 0

    def at(self, index: int, capture: float | None) -> FrameTime:
        """Frame time of frame ``index`` captured at ``capture`` (None: just the next one)."""
        if capture is None and self._anchor is None:
            capture = time.monotonic()
        if capture is not None and (self._anchor is None or index - self._checked >= self._check):
            self._checked = index
            actual = (capture + self._offset) % DAY_S
            if self._anchor is None or self._drift(index, actual) >= 1.0 / self.fps:
                self._anchor = (index, FrameTime.from_seconds(actual, self.fps, 1))
        first, time0 = self._anchor
        return time0.advance(index - first)

    def _drift(self, index: int, actual: float) -> float:
        first, time0 = self._anchor
        expected = time0.to_seconds() + (index - first) / self.fps
        if expected >= DAY_S:  # midnight: start counting from zero again
            return math.inf
        return abs((actual - expected + DAY_S / 2) % DAY_S - DAY_S / 2)


@dataclass
class Stats:
    """Per-frame times (monotonic) for ``--stats``: what the latency benchmark splits."""

    index: array = field(default_factory=lambda: array("q"))
    frame: array = field(default_factory=lambda: array("q"))  # timecode frame number sent
    capture: array = field(default_factory=lambda: array("d"))  # when frame's audio was captured
    arrival: array = field(default_factory=lambda: array("d"))  # block completing it arrived
    ready: array = field(default_factory=lambda: array("d"))  # model returned it
    sent: array = field(default_factory=lambda: array("d"))
    speech: array = field(default_factory=lambda: array("b"))

    def write(self, path: Path, header: dict[str, object]) -> None:
        frames = {name: list(getattr(self, name)) for name in self.__dataclass_fields__}
        path.write_text(json.dumps({**header, "frames": frames}))


# -- session ---------------------------------------------------------------------------------


class LiveSession:
    """Input blocks -> frames -> gate -> animator -> sender, one frame sent per model frame."""

    def __init__(
        self,
        mic,
        producer: FrameProducer,
        animator,
        sender: LiveLinkSender,
        fps: int,
        *,
        gate: VoiceGate | None,
        monitor=None,
        stats: Stats | None = None,
        report: Callable[[str], None] = lambda line: None,
        banner: str = "",
        verbose: int = 0,
        on_model_error: str = "stop",
    ) -> None:
        self.mic, self.producer, self.animator, self.sender = mic, producer, animator, sender
        self.fps, self.gate, self.monitor, self.stats = fps, gate, monitor, stats
        self.report, self.banner, self.verbose = report, banner, verbose
        self.on_model_error = on_model_error
        self.clock = SampleClock(mic.rate)
        self.timecode = Timecode(fps)
        self.result = LiveResult()
        self._last_send = -math.inf
        self._next_index = 0
        self._last_input = time.monotonic() + START_S - STALL_S
        self._reported = (0, 0)  # overflows, dropped blocks at the last -v report
        self._report_due = 0.0

    def run(self, duration: float | None) -> LiveResult:
        """Until ``duration`` seconds of input, a signal or a device fault; always eases out."""
        from nsplayer.stopping import stop_on_signals

        limit = math.inf if duration is None else duration * self.mic.rate
        with stop_on_signals() as stop:  # a second Ctrl-C cannot cut the ease-out short
            try:
                while self.clock.samples < limit and stop.signum is None:
                    self._step()
            finally:
                self.ease_out()
                self.result.stopped_by = stop.signum
                self.result.overflows, self.result.dropped = self.mic.overflows, self.mic.dropped
        return self.result

    def _step(self) -> None:
        block = self.mic.read(0.05)
        now = time.monotonic()
        if block is None:
            if self.mic.finished or now - self._last_input > STALL_S:
                raise NsplayerError(
                    f"input device {self.mic.device_name!r} stopped delivering audio "
                    "(unplugged?) — reconnect it or pick another with --input-device "
                    "(see `nsplayer devices`)"
                )
            return
        if self.clock.samples == 0 and self.banner:
            self.report(self.banner)  # only now is the input really live
        self._last_input = now
        self.clock.add(block)
        if self.gate is not None:
            self.gate.push(block.pcm)
        if self.monitor is not None:
            self._play(block.pcm)
        for index, row in self.producer.push(block.pcm):
            self._send(index, row, block.arrival)
        self._check_faults()

    def _send(self, index: int, row: np.ndarray, arrival: float) -> None:
        ready = time.monotonic()
        audio_t = index / self.fps
        speech = self.gate is None or self.gate.active_at(audio_t + self.producer.lookahead_s)
        values = self.animator.step(row if speech else None)
        wait = self._last_send + self.producer.spacing - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        capture = self.clock.capture_time(audio_t * self.mic.rate)
        frame_time = self.timecode.at(index, capture)
        self.sender.send(values, frame_time)
        self._last_send = sent = time.monotonic()
        self._next_index = index + 1
        self.result.frames += 1
        if self.stats is not None:
            for name, value in zip(
                ("index", "frame", "capture", "arrival", "ready", "sent", "speech"),
                (index, frame_time.frame, capture, arrival, ready, sent, int(speech)),
                strict=True,
            ):
                getattr(self.stats, name).append(value)

    def _play(self, pcm: np.ndarray) -> None:
        """Monitor: hand the input to the output, dropping it if the output lags behind."""
        heard = self.monitor.dac_time(self.monitor.written - 1) if self.monitor.written else None
        if heard is None or heard - self.monitor.now() < MONITOR_MAX_S:
            self.monitor.write(pcm[:, None])

    def _check_faults(self) -> None:
        error = getattr(self.producer, "error", None)
        if error is not None:
            self._replace_failed_model(error)
        lost = (self.mic.overflows, self.mic.dropped)
        if self.verbose > 0 and lost != self._reported and time.monotonic() >= self._report_due:
            self._reported, self._report_due = lost, time.monotonic() + 10.0  # at most every 10 s
            self.report(f"live: input lost so far: {lost[0]} overflows, {lost[1]} blocks dropped")

    def _replace_failed_model(self, error: Exception) -> None:
        """NeuroSync failed mid-run: go on as ``on_model_error`` says (embedded, idle, stop)."""
        if self.on_model_error == "stop" or not getattr(self.producer, "answered", True):
            raise NsplayerError(str(error))
        first = math.ceil(self.clock.samples * self.fps / self.mic.rate)
        self.producer.close()
        if self.on_model_error == "embedded":
            from nsplayer.models import create_model

            model = create_model("embedded", self.mic.rate, self.fps, causal=True)
            self.producer = StreamingFrames(model, first)
        else:
            self.producer = IdleFrames(self.mic.rate, self.fps, first)
        instead = "the embedded model" if self.on_model_error == "embedded" else "the idle face"
        self.report(f"live: {error}; continuing with {instead}")

    def ease_out(self) -> None:
        """Step the idle face until speech has faded, at the frame rate, so UE never freezes
        a mouth open."""
        index = self._next_index
        for _ in range(math.ceil(EASE_OUT_S * self.fps)):
            if self.animator.speech_weight < 0.01:
                break
            time.sleep(1.0 / self.fps)
            values = self.animator.step(None)
            self.sender.send(values, self.timecode.at(index, None))
            index += 1
            self.result.frames += 1


def latency_line(mic: MicInput, lookahead_s: float, neurosync: bool) -> str:
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


def run_live(options, settings: LiveSettings, report: Callable[[str], None]) -> LiveResult:
    """Build input, model, animator and sender from the options, print the latency, run."""
    from nsplayer.animation import Animator
    from nsplayer.audio.sinks import DeviceSink

    if options.save_csv is not None:
        raise NsplayerError(
            "live does not support --save-csv (a live run has no end) — use --stats"
        )
    mic = MicInput(options.input_device, settings.rate, settings.block_ms)
    producer = _producer(options, settings, mic.rate)
    closers: list[Callable[[], None]] = [producer.close, mic.close]
    try:
        sender = _sender(options)
        closers.append(sender.close)
        monitor = None
        if settings.monitor and not options.no_audio:
            monitor = DeviceSink(  # room for the input that arrives while the output warms up
                mic.rate, 1, device=options.device, buffer_ms=2 * settings.block_ms, capacity_s=3.0
            )
            closers.append(monitor.close)
        animator = Animator(
            fps=options.fps,
            gains=options.gains,
            idle=options.idle,
            emotion=options.emotion,
            seed=options.seed,
        )
        gate = VoiceGate(mic.rate) if settings.gate else None
        stats = Stats() if options.stats else None
        session = LiveSession(
            mic,
            producer,
            animator,
            sender,
            options.fps,
            gate=gate,
            monitor=monitor,
            stats=stats,
            report=report,
            verbose=options.verbose,
            on_model_error=options.neurosync.on_model_error,
            banner=latency_line(mic, producer.lookahead_s, options.model == "neurosync"),
        )
        mic.start()
        result = session.run(settings.duration)
        if stats is not None:
            stats.write(Path(options.stats), _stats_header(mic, producer, options.fps, result))
        if options.verbose:
            report(
                f"live: {result.frames} frames sent, {result.overflows} input overflows, "
                f"{result.dropped} blocks dropped"
            )
        return result
    finally:
        for close in reversed(closers):
            close()


def _producer(options, settings: LiveSettings, rate: int) -> FrameProducer:
    from nsplayer.models import create_model

    if options.model == "neurosync":
        from nsplayer.models.neurosync import HttpClient

        client = HttpClient(options.neurosync)
        return SlidingWindows(client, rate, options.fps, settings.hop_ms / 1000)
    return StreamingFrames(create_model(options.model, rate, options.fps, causal=True))


def _sender(options) -> LiveLinkSender:
    try:
        return LiveLinkSender(options.targets, subject=options.subject, device_id=options.device_id)
    except ValueError as exc:
        raise NsplayerError(f"{exc} — give --target HOST:PORT") from None


def _stats_header(mic: MicInput, producer: FrameProducer, fps: int, result: LiveResult) -> dict:
    return {
        "rate": mic.rate,
        "fps": fps,
        "block_s": mic.block / mic.rate,
        "input_latency_s": mic.latency,
        "lookahead_s": producer.lookahead_s,
        "overflows": result.overflows,
        "dropped": result.dropped,
    }
