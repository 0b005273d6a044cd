"""The engine: performers that speak from speech tracks, all sent on one clock.

A ``Performer`` is one Live Link subject: its animator (idle layer, speech blending,
emotion), its frame schedule, its frame numbers, its statistics, its recording
(``--save-csv``) and its ease back to neutral. A ``Conductor`` sends every performer's
frames from one thread, on one clock, through one pacer process. Front-ends — play,
replay, idle, live, stage — supply only the clock and, per utterance, a ``SpeechTrack``:

    conductor = Conductor(clock, fps, targets)
    anna = conductor.add("anna")            # idle frames from the start
    anna.speak(track)                       # speech frames when track.due(i) comes
    conductor.run(until=lambda: not anna.speaking)
    conductor.ease_out(); conductor.close()

Frame i of a track describes the face at audio time i / fps and is sent when
``track.due(i)`` (plus ``--av-offset``) comes on the clock; while no speech frame is due
each performer sends idle ticks at the frame rate, so no face ever freezes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from livelink import CsvWriter, FrameTime, LiveLinkSender
from livelink.frametime import DAY_S
from livelink.names import N_VALUES
from nsplayer.animation import Animator, Gains, IdleSettings
from nsplayer.errors import NsplayerError
from nsplayer.outlet import Handed, InlineOutlet, ProcessOutlet
from nsplayer.scheduler import REFRESH_S, FrameScheduler, Slot

EASE_OUT_S = 0.5  # longest ease back to idle after speech or a stop, and a blink under way
AT_REST = 0.01  # speech weight below which the face counts as back at idle
TIMECODE_CHECK_S = 10.0  # how often frame numbers are compared with the time of day


class SpeechTrack(Protocol):
    """What a performer speaks from: one utterance's frames and when each is heard."""

    def due(self, index: int) -> float | None:
        """When speech frame ``index`` is heard on the conductor's clock (None: unknown)."""
        ...

    def row(self, index: int) -> np.ndarray | None:
        """Frame ``index`` (61 or 68 values) if ready, else None (the face idles)."""
        ...

    def done(self, index: int) -> bool:
        """True once ``index`` is past the end of the utterance."""
        ...


@dataclass(frozen=True)
class Look:
    """How a face moves besides the model: region gains, idle motion, a fixed emotion."""

    gains: Gains = field(default_factory=Gains)
    idle: IdleSettings = field(default_factory=IdleSettings)
    emotion: Mapping[str, float] | None = None
    seed: int | None = None

    def animator(self, fps: int) -> Animator:
        return Animator(fps, self.gains, self.idle, self.emotion, self.seed)


@dataclass(frozen=True)
class Outcome:
    """What one performer sent, for the exit code and the summary line."""

    frames_sent: int
    speech_frames: int
    dropped: int  # speech frames skipped as too late, by planning or by the pacer
    stopped_by: int | None = None  # SIGINT/SIGTERM, or None for a normal end

    @property
    def exit_code(self) -> int:
        return 0 if self.stopped_by is None else 128 + self.stopped_by


class Timecode:
    """Consecutive time-of-day frame numbers, anchored on when frames are sent.

    Numbers advance by exactly one per packet. Every ``check_s`` the send time is compared
    with the time of day; if the clocks have drifted a whole frame apart (they do over
    hours), the anchor moves, so the timecode never drifts away from the time of day.
    """

    def __init__(self, fps: int, check_s: float = TIMECODE_CHECK_S) -> None:
        self.fps = fps
        self._offset = FrameTime.now(fps, 1).to_seconds() - time.monotonic()
        self._anchor: tuple[int, FrameTime] | None = None  # (packet number, its frame time)
        self._check = max(1, round(check_s * fps))
        self._checked = 0

    def at(self, seq: int, when: float | None) -> FrameTime:
        """Frame time of packet ``seq`` sent at ``when`` (monotonic; None: just the next)."""
        if when is None and self._anchor is None:
            when = time.monotonic()
        if when is not None and (self._anchor is None or seq - self._checked >= self._check):
            self._checked = seq
            actual = (when + self._offset) % DAY_S
            if self._anchor is None or self._drift(seq, actual) >= 1.0 / self.fps:
                self._anchor = (seq, FrameTime.from_seconds(actual, self.fps, 1))
        first, time0 = self._anchor
        return time0.advance(seq - first)

    def _drift(self, seq: int, actual: float) -> float:
        first, time0 = self._anchor
        expected = time0.to_seconds() + (seq - first) / self.fps
        if expected >= DAY_S:  # midnight: start counting from zero again
            return math.inf
        return abs((actual - expected + DAY_S / 2) % DAY_S - DAY_S / 2)


class Recording:
    """Every frame a performer handed over (``--save-csv``). Full blocks go to an unnamed
    temporary file, so a day of ``live`` holds one block in memory, not a day of frames."""

    _BLOCK = 4096

    def __init__(self, path: Path) -> None:
        self.path = path
        self._spill = tempfile.TemporaryFile()  # noqa: SIM115 (closed by write)
        self._block = np.empty((self._BLOCK, N_VALUES), np.float32)
        self._n = 0
        self.start: FrameTime | None = None

    def add(self, values: np.ndarray, frame_time: FrameTime) -> None:
        if self.start is None:
            self.start = frame_time
        self._block[self._n % self._BLOCK] = values
        self._n += 1
        if self._n % self._BLOCK == 0:
            self._spill.write(self._block.tobytes())

    def write(self, lost: list[int], fps: int) -> None:
        """Write what was sent: every handed frame but those the pacer dropped."""
        self._spill.write(self._block[: self._n % self._BLOCK].tobytes())
        self._spill.seek(0)
        start = self.start or FrameTime(0, 0.0, fps, 1)
        lost_rows = np.asarray(lost, np.int64)
        try:
            with self.path.open("w", newline="", encoding="utf-8") as handle:
                writer = CsvWriter(handle, fps, start)
                for first in range(0, self._n, self._BLOCK):
                    raw = self._spill.read(self._BLOCK * N_VALUES * 4)
                    rows = np.frombuffer(raw, np.float32).reshape(-1, N_VALUES)
                    index = np.arange(first, first + len(rows))
                    writer.write(rows[~np.isin(index, lost_rows)])
        except OSError as exc:
            raise NsplayerError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        finally:
            self._spill.close()


class Performer:
    """One subject's face: speech over idle, scheduled on the conductor's clock."""

    def __init__(
        self,
        subject: str,
        stream: int,
        fps: int,
        scheduler: FrameScheduler,
        look: Look,
        recording: Recording | None = None,
    ) -> None:
        self.subject = subject
        self.stream = stream
        self.animator = look.animator(fps)
        self.scheduler = scheduler
        self.recording = recording
        self.timecode = Timecode(fps)
        self.sent = 0
        self.index: int | None = None  # next speech frame to ask the track for
        self.slot: Slot | None = None  # planned, not yet handed over
        self._track: SpeechTrack | None = None
        self._on_end: Callable[[], None] | None = None
        self._generation = 0  # changes with every speak/silence: a planned slot goes stale
        self._planned = 0  # the generation the pending slot was planned in
        self._lock = threading.Lock()

    @property
    def speaking(self) -> bool:
        return self._track is not None

    @property
    def speech_weight(self) -> float:
        return self.animator.speech_weight

    @property
    def at_rest(self) -> bool:
        """Idle, eyes open: a frame UE can be left holding."""
        return self.speech_weight < AT_REST and self.animator.eyes_open

    def speak(
        self,
        track: SpeechTrack,
        on_end: Callable[[], None] | None = None,
        *,
        patience: float = 1.0,
    ) -> None:
        """Speak from ``track`` from its frame 0 on (replacing any current track).
        ``patience``: frame periods to wait for a frame not yet known before an idle tick
        (1.5 for frames computed live, whose arrival jitters)."""
        with self._lock:
            self._track, self._on_end, self.index = track, on_end, 0
            self.scheduler.patience = patience
            self._generation += 1
            self.slot = None

    def silence(self) -> None:
        """Stop speaking now: the mouth eases back to idle (FAST_BLEND_S, 100 ms)."""
        with self._lock:
            self._track, self._on_end, self.index = None, None, None
            self._generation += 1
            self.slot = None

    def set_emotion(self, emotion: Mapping[str, float] | None) -> None:
        self.animator.set_emotion(emotion)

    # -- the conductor's side ---------------------------------------------------------------
    def plan(self) -> Slot:
        with self._lock:
            track = self._track
            if track is not None and self.index is not None and track.done(self.index):
                on_end, self._track, self._on_end, self.index = self._on_end, None, None, None
                track = None
                if on_end is not None:
                    on_end()
            self.slot = self.scheduler.plan(self.index if track else None, track)
            self._planned = self._generation
            return self.slot

    def refresh(self, slot: Slot) -> Slot:
        """A speech slot's due time read again just before hand-over (a sink may have
        turned an estimate into an exact DAC time)."""
        track = self._track
        if slot.index is None or track is None:
            return slot
        due = self.scheduler.due(track, slot.index)
        return slot if due is None else replace(slot, due=due)

    def frame(self, slot: Slot) -> np.ndarray:
        """The values of the slot's frame; the performer moves on past it."""
        with self._lock:
            track = self._track if self._planned == self._generation else None
            row = None if slot.index is None or track is None else track.row(slot.index)
            if track is not None and slot.next_index is not None:
                self.index = slot.next_index
        return self.animator.step(row)


class Conductor:
    """Sends every performer's frames on one clock, through one pacer.

    ``clock``: the engine's time (a sink's ``now``: its DAC clock; or time.monotonic).
    ``sleep`` is injectable so tests run on a fake clock shared with a NullSink.
    ``detailed`` keeps per-packet times for ``--stats``.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        fps: int,
        targets: tuple[str, ...],
        *,
        av_offset_ms: float = 0.0,
        detailed: bool = False,
        sleep: Callable[[float], None] | None = None,
        process: bool = True,
        report: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.clock = clock
        self._report = report
        self._told: set[int] = set()  # refusing targets already reported
        self.fps = fps
        self.av_offset_ms = av_offset_ms
        self.performers: list[Performer] = []
        try:
            self.sender = LiveLinkSender(targets)
        except (ValueError, OSError) as exc:
            raise NsplayerError(f"{exc} — use --target HOST:PORT") from None
        self._wake = threading.Event()
        self._sleep = sleep or self._nap
        if process:
            self.outlet: ProcessOutlet | InlineOutlet = ProcessOutlet(
                self.sender, fps, clock, detailed=detailed
            )
        else:
            self.outlet = InlineOutlet(self.sender, clock, fps, self._sleep, detailed=detailed)
        self._started = (time.monotonic(), time.process_time())  # for the CPU figure
        self._closed = False

    def add(
        self,
        subject: str,
        look: Look = Look(),
        *,
        device_id: str | None = None,
        save_csv: Path | None = None,
    ) -> Performer:
        """A new performer for ``subject``; it sends idle frames from the next tick on."""
        try:
            self.sender.add_subject(subject, device_id)
        except ValueError as exc:
            raise NsplayerError(f"{exc} — use a shorter --subject") from None
        check_writable(save_csv, "--save-csv")
        scheduler = FrameScheduler(self.clock, self.fps, self.av_offset_ms, self.outlet.lead)
        recording = None if save_csv is None else Recording(save_csv)
        performer = Performer(
            subject, len(self.performers), self.fps, scheduler, Look() if look is None else look,
            recording,
        )  # fmt: skip
        self.performers.append(performer)
        return performer

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Time everything on ``clock`` from now on (a sink opened after the conductor)."""
        self.clock = self.outlet.clock = clock
        for performer in self.performers:
            performer.scheduler.clock = clock

    def wait_ready(self) -> None:
        """Wait until the pacer process is up (or known not to start)."""
        self.outlet.wait_ready()
        for performer in self.performers:  # the lead is known only now
            performer.scheduler.lead = self.outlet.lead

    def wake(self) -> None:
        """New speech frames may be due now: replan idle ticks instead of waiting them out."""
        self._wake.set()

    def run(self, until: Callable[[], bool]) -> None:
        """Send packets until ``until()`` is true (checked before each packet)."""
        while not until():
            self.step()

    def step(self) -> None:
        """Send the next packet of whichever performer is due first. Performers may be added,
        and may speak or fall silent, from other threads meanwhile (stage): the slots are
        taken once, here."""
        planned = [(p, p.slot or p.plan()) for p in list(self.performers)]
        performer, slot = min(planned, key=lambda planned: planned[1].at)
        lead = self.outlet.lead
        while not self._wait(slot.at - lead - REFRESH_S):  # woken: new speech frames
            if slot.index is None:
                self._replan_idle()
                return
        slot = performer.refresh(slot)
        while not self._wait(slot.at - lead):
            if slot.index is None:
                self._replan_idle()
                return
        self._send(performer, slot)
        if len(self.outlet.refused) > len(self._told):  # no set built per packet
            self._tell_refused()

    def _tell_refused(self) -> None:
        """Once per target: UE is not listening there yet; sending goes on regardless."""
        for k in sorted(self.outlet.refused - self._told):
            self._told.add(k)
            self._report(
                f"nsplayer: nothing is listening on {self.sender.targets[k]} — is the Apple "
                "ARKit Live Link source added in UE (Window > Virtual Production > Live "
                "Link)? Sending goes on."
            )

    def _send(self, performer: Performer, slot: Slot) -> None:
        values = performer.frame(slot)
        when = time.monotonic() + max(0.0, slot.at - self.clock())
        frame_time = performer.timecode.at(performer.sent, when)
        packet = self.sender.packet(values, frame_time, performer.subject)
        audio_time = 0.0 if slot.index is None else slot.index / self.fps
        handed = Handed(performer.stream, slot.index, audio_time, slot.due, frame_time.frame)
        self.outlet.send(packet, handed)
        performer.scheduler.handed(slot)
        performer.slot = None
        performer.sent += 1
        if performer.recording is not None:
            performer.recording.add(values, frame_time)

    def _wait(self, until: float) -> bool:
        """Wait for the clock to reach ``until``; False if woken early by ``wake``."""
        while (left := until - self.clock()) > 0:
            if self._wake.is_set():
                self._wake.clear()
                return False
            self._sleep(left)
        return True

    def _nap(self, seconds: float) -> None:
        self._wake.wait(seconds)

    def _replan_idle(self) -> None:
        for performer in self.performers:
            if performer.slot is not None and performer.slot.index is None:
                performer.slot = None

    def ease_out(self) -> None:
        """Every face back to idle with its eyes open (at most EASE_OUT_S of frames), so UE
        never freezes a mouth open or an eye shut."""
        for performer in self.performers:
            performer.silence()
        limit = sum(p.sent for p in self.performers) + len(self.performers) * math.ceil(
            EASE_OUT_S * self.fps
        )
        self.run(
            lambda: (
                all(p.at_rest for p in self.performers)
                or sum(p.sent for p in self.performers) >= limit
            )
        )

    def close(self) -> None:
        """Let the pacer send what it was given and collect its results; close the socket."""
        if self._closed:
            return
        self._closed = True
        self.outlet.close()
        self.sender.close()

    def outcome(self, performer: Performer, stopped_by: int | None = None) -> Outcome:
        """What ``performer`` sent (after ``close``)."""
        stats = self.outlet.stats(performer.stream)
        dropped = performer.scheduler.skipped + len(self.outlet.lost(performer.stream))
        return Outcome(stats.frames_sent, stats.speech_frames, dropped, stopped_by)

    def stats_report(self, performer: Performer) -> dict[str, object]:
        """The ``--stats`` JSON of one performer (after ``close``)."""
        stats = self.outlet.stats(performer.stream)
        wall = time.monotonic() - self._started[0]
        cpu = time.process_time() - self._started[1] + self.outlet.cpu_seconds
        return {
            "subject": performer.subject,
            "fps": self.fps,
            "av_offset_ms": self.av_offset_ms,
            "dropped": self.outcome(performer).dropped,
            "pacer": self.outlet.mode,
            "cpu_percent": round(100.0 * cpu / wall, 2) if wall > 0 else None,
            "summary": stats.summary(),
            "frames": stats.frames(),
        }

    def save(self, performer: Performer) -> None:
        """Write ``performer``'s recording (after ``close``), if it has one."""
        if performer.recording is not None:
            performer.recording.write(self.outlet.lost(performer.stream), self.fps)

    def refused(self) -> list[str]:
        """Targets that refused packets (ICMP port unreachable: nothing listens there)."""
        return [self.sender.targets[k] for k in sorted(self.outlet.refused)]


@contextmanager
def fine_thread_switching() -> Iterator[None]:
    """Let the sending thread get the interpreter back within 0.5 ms instead of 5 ms while
    other threads (audio, input, models) run, so hand-overs stay well inside the pacer's
    lead."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def check_writable(path: Path | None, what: str) -> None:
    """Refuse an output path that cannot be written before the run, not after it (a long
    take lost to a typo)."""
    if path is None:
        return
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise NsplayerError(f"{what} {path} is a directory — give a file name")
    if not folder.is_dir():
        raise NsplayerError(f"{what} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise NsplayerError(f"{what} {path}: not writable (permission denied)")


def write_json(path: Path, report: Mapping[str, object]) -> None:
    try:
        Path(path).write_text(json.dumps(report, indent=1), encoding="utf-8")
    except OSError as exc:
        raise NsplayerError(f"cannot write {path}: {exc.strerror or exc}") from None
