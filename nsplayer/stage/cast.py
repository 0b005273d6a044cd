"""A cast of subjects: their queues of utterances, played over the engine, with events.

Each subject is one engine ``Performer`` (idle frames from the start) and one queue. An
utterance's audio goes, as it arrives, into a fresh streaming model (its frames) and, once
it is the subject's turn, into a mixer ``Voice`` (its sound and its timeline): its frame i
is due when the voice's sample i·rate/fps is heard. A director thread watches the voices
and tells each utterance's owner what happened: queued, started (first audio heard),
progress, underrun, finished (last audio heard) or interrupted (with what was heard).

Locks: the cast's lock guards queues and owners and is never taken from the engine's
thread; tracks answer the engine from their own state and the mixer's lock only.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nsplayer.animation.compose import FAST_BLEND_S
from nsplayer.audio.mixer import Mixer, Voice
from nsplayer.engine import Conductor, Look, Performer
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.base import FaceModel
from nsplayer.stage.protocol import ProtocolError

CUSHION_EXTRA_S = 0.06  # jitter cushion on top of the model's look-ahead
FEED_S = 0.08  # model blocks: two 40 ms chunks; a frame's audio then waits <= 40 ms more,
HORIZON_S = 0.04  # within the cushion's 60 ms spare, unless a frame is due this soon
QUEUED_FEED_S = 0.25  # a queued line's audio goes to the model in big blocks
MAX_FEED_S = 0.25  # and no more at once: ~1 ms of model time
PROGRESS_S = 0.1  # utterance.progress every this often
TICK_S = 0.01  # the director's step: events are this late at most

Emit = Callable[[dict[str, object]], None]


@dataclass(frozen=True)
class CastSettings:
    """What the service was started with (the CLI builds it)."""

    fps: int = 60
    model: str = "embedded"
    look: Look = field(default_factory=Look)
    cushion_ms: float | None = None  # None: the model's look-ahead + CUSHION_EXTRA_S
    max_subjects: int = 16
    max_queue: int = 16  # utterances waiting per subject
    buffer_s: float = 10.0  # audio buffered per utterance before its producer must wait


class Track:
    """One utterance as the engine sees it: the model's frames, due on the voice's timeline.

    The voice comes when the utterance's turn comes; until then nothing is due. Audio
    reaches the model in blocks of FEED_S or more (a model call costs about twice as much
    per second of audio in 40 ms chunks as in 80 ms ones), or sooner when a frame it
    holds would otherwise miss its due time: the director calls ``feed`` every tick, so
    the model never runs in the event loop.
    """

    def __init__(self, model: FaceModel, rate: int, fps: int) -> None:
        self.model = model
        self.rate = rate
        self.fps = fps
        self.voice: Voice | None = None
        self._rows: list[np.ndarray] = []
        self._total: int | None = None  # frames in all, once the audio has ended
        self._audio: list[np.ndarray] = []  # not yet given to the model
        self._waiting = 0  # samples in _audio
        self._fed = 0  # samples given to the model
        self._ending = False
        self._limit: int | None = None  # cut short: the model gets no audio past this sample
        self._ease_at: float | None = None  # cut short: no frame due from then on is spoken
        self._lock = threading.Lock()  # the producer adds, the director feeds

    def add(self, pcm: np.ndarray) -> None:
        with self._lock:
            if self._limit is not None:
                return
            self._audio.append(pcm)
            self._waiting += len(pcm)

    def end(self) -> None:
        """The audio has ended: the director runs the rest and the model's flush."""
        with self._lock:
            self._ending = True

    def feed(self, now: float, block_s: float = FEED_S) -> None:
        """Run the model over waiting audio (at most MAX_FEED_S a call, so one long line
        never holds up the others): a block of it, or less if the first frame without a
        row is due within HORIZON_S or the audio has ended."""
        with self._lock:
            if self._total is not None:
                return
            last = self._ending or self._limit is not None
            if self._waiting and (last or self._waiting >= block_s * self.rate):
                self._run()
            elif self._waiting:
                due = self.due(len(self._rows))
                if due is not None and due - now <= HORIZON_S:
                    self._run()
            if last and not self._waiting:
                self._finish()

    @property
    def finished(self) -> bool:
        """No more frames will come (and the model is closed)."""
        return self._total is not None

    def close(self, until: int | None = None, ease_at: float | None = None) -> None:
        """Cut short: the model gets the audio up to sample ``until`` (what a fading voice
        still plays; default: none beyond what it has), then no more; the frames due from
        ``ease_at`` on are not spoken (the performer eases to idle). The first call counts."""
        with self._lock:
            if self._limit is not None or self._total is not None:
                return
            self._ease_at = ease_at
            self._limit = self._fed if until is None else max(self._fed, until)
            if self._waiting:
                pcm = np.concatenate(self._audio)[: self._limit - self._fed]
                self._audio, self._waiting = ([pcm] if len(pcm) else []), len(pcm)
            if not self._waiting:
                self._finish()

    def _finish(self) -> None:
        """No more audio: the model's last frames (all of them unless cut short)."""
        if self._limit is None:
            self._rows.extend(self.model.flush())
        self._total = len(self._rows)
        self.model.close()

    def _run(self) -> None:
        pcm = self._audio[0] if len(self._audio) == 1 else np.concatenate(self._audio)
        most = round(MAX_FEED_S * self.rate)
        self._audio = [pcm[most:]] if len(pcm) > most else []
        self._waiting = len(pcm) - len(pcm[:most])
        self._fed += len(pcm[:most])
        self._rows.extend(self.model.feed(pcm[:most]))

    def due(self, index: int) -> float | None:
        voice = self.voice
        return None if voice is None else voice.dac_time(index * self.rate // self.fps)

    def row(self, index: int) -> np.ndarray | None:
        """Frame ``index``, scaled by the voice's fade at its time: an interrupted line's
        mouth fades out with its sound."""
        rows, voice = self._rows, self.voice
        if index >= len(rows):
            return None
        gain = 1.0 if voice is None else voice.gain(index * self.rate // self.fps)
        return rows[index] if gain >= 1.0 else rows[index] * np.float32(gain)

    def done(self, index: int) -> bool:
        """Also true for frames due from ``ease_at`` (see ``close``) on."""
        voice = self.voice
        if voice is not None and voice.cut:
            return True
        if self._ease_at is not None:
            due = self.due(index)
            if due is None or due >= self._ease_at:
                return True
        return self._total is not None and (
            index >= self._total or voice is None or index * self.rate // self.fps >= voice.samples
        )


@dataclass(eq=False)
class Utterance:
    """One line of one subject, from ``utterance.start`` to its last event."""

    id: str
    subject: Subject
    rate: int
    track: Track
    owner: Emit | None
    emotion: dict[str, float] | None = None
    ended: bool = False
    over: bool = False  # finished or interrupted: no more audio, no more events
    _pending: list[np.ndarray] = field(default_factory=list)  # audio before its turn
    _pending_samples: int = 0
    _started: bool = False
    _progress_at: float = 0.0
    _underruns: int = 0

    @property
    def voice(self) -> Voice | None:
        return self.track.voice

    def emit(self, kind: str, **fields: object) -> None:
        if self.owner is not None:
            self.owner(
                {"type": kind, "subject": self.subject.name, "utterance_id": self.id, **fields}
            )

    def buffered_s(self) -> float:
        """Audio waiting to be played."""
        if self.voice is not None:
            return self.voice.samples / self.rate - self.voice.heard() / self.rate
        return self._pending_samples / self.rate

    def played_ms(self, heard: int | None = None) -> float:
        if heard is None:
            heard = 0 if self.voice is None else self.voice.heard()
        return round(1000.0 * heard / self.rate, 1)


@dataclass(eq=False)
class Subject:
    name: str
    performer: Performer
    emotion: dict[str, float] | None = None  # expression.set: held between lines
    current: Utterance | None = None
    queue: deque[Utterance] = field(default_factory=deque)

    def state(self) -> str:
        if self.current is None:
            return "idle"
        voice = self.current.voice
        return "underrun" if voice is not None and voice.underrun else "speaking"


class Cast:
    """Every subject of the service, over one conductor and one mixer."""

    def __init__(
        self,
        settings: CastSettings,
        conductor: Conductor,
        mixer: Mixer,
        join: Callable[[str, Look], Performer],
    ) -> None:
        """``join`` adds a performer to the conductor (safely, while it runs)."""
        self.settings = settings
        self.conductor = conductor
        self.join = join
        self.mixer = mixer
        self.subjects: dict[str, Subject] = {}
        self._fading: list[Track] = []  # interrupted lines still fading out (see _cut)
        self.lock = threading.RLock()
        self._closing = threading.Event()
        self._director = threading.Thread(target=self._direct, name="stage-director", daemon=True)
        model = self._model(24000)
        self._lookahead_s = model.lookahead_s
        model.close()

    @property
    def lookahead_ms(self) -> float:
        return round(1000.0 * self._lookahead_s, 1)

    @property
    def cushion_s(self) -> float:
        if self.settings.cushion_ms is not None:
            return self.settings.cushion_ms / 1000.0
        return self._lookahead_s + CUSHION_EXTRA_S

    def start(self) -> None:
        self._director.start()

    # -- commands (any thread but the engine's) -------------------------------------------------
    def subject(self, name: str) -> Subject:
        """The subject called ``name``, created on first use up to ``max_subjects``."""
        with self.lock:
            subject = self.subjects.get(name)
            if subject is None:
                if len(self.subjects) >= self.settings.max_subjects:
                    raise ProtocolError(
                        "too_many_subjects",
                        f"at most {self.settings.max_subjects} subjects (--max-subjects); "
                        f"{name!r} would be one more",
                    )
                try:
                    performer = self.join(name, self.settings.look)
                except NsplayerError as exc:  # a name the packet cannot carry
                    raise ProtocolError("bad_field", str(exc)) from None
                subject = self.subjects[name] = Subject(name, performer)
            return subject

    def start_utterance(
        self,
        name: str,
        uid: str,
        rate: int,
        owner: Emit | None,
        mode: str = "enqueue",
        emotion: dict[str, float] | None = None,
    ) -> Utterance:
        """Queue (enqueue), or play now after fading the current line (interrupt: the queue
        stays; replace: the queue is cleared too)."""
        with self.lock:
            subject = self.subject(name)
            if len(subject.queue) >= self.settings.max_queue and mode == "enqueue":
                raise ProtocolError(
                    "queue_full",
                    f"{name!r} has {len(subject.queue)} utterances waiting; wait or interrupt",
                )
            track = Track(self._model(rate), rate, self.settings.fps)
            utterance = Utterance(uid, subject, rate, track, owner, emotion)
            if mode != "enqueue":
                self._cut(subject, None, 0.15, clear_queue=mode == "replace")
            if mode == "interrupt":
                subject.queue.appendleft(utterance)
            else:
                subject.queue.append(utterance)
            position = subject.queue.index(utterance) + (subject.current is not None)
            utterance.emit("utterance.queued", position=position)
            self._next(subject)
            return utterance

    def push(self, utterance: Utterance, pcm: np.ndarray) -> None:
        """Audio for ``utterance`` (mono float32 at its rate); dropped once it is over."""
        if utterance.over or utterance.ended or not len(pcm):
            return
        utterance.track.add(pcm)
        with self.lock:
            if utterance.voice is not None:
                utterance.voice.push(pcm)
            elif not utterance.over:
                utterance._pending.append(pcm)
                utterance._pending_samples += len(pcm)

    def end(self, utterance: Utterance) -> None:
        """No more audio for ``utterance``: it plays out and finishes."""
        if utterance.ended:
            return
        utterance.ended = True
        utterance.track.end()
        with self.lock:
            if utterance.voice is not None:
                utterance.voice.end()

    def room_s(self, utterance: Utterance) -> float:
        """How much more audio ``utterance`` takes before its producer should wait."""
        return self.settings.buffer_s - utterance.buffered_s()

    def interrupt(
        self,
        name: str,
        uid: str | None = None,
        fade_ms: float = 150.0,
        clear_queue: bool = True,
    ) -> list[str]:
        """Fade out the current line (or only ``uid``, current or queued); returns the ids
        interrupted."""
        with self.lock:
            subject = self.subjects.get(name)
            if subject is None:
                raise ProtocolError("unknown_subject", f"no subject {name!r}")
            ids = [u.id for u in self._cut(subject, uid, fade_ms / 1000.0, clear_queue)]
            if uid is not None and not ids:
                raise ProtocolError(
                    "unknown_utterance", f"{name!r} has no utterance {uid!r} playing or queued"
                )
            self._next(subject)
            return ids

    def express(self, name: str, emotion: dict[str, float]) -> None:
        """Hold ``emotion`` on ``name`` (an utterance's own emotion wins while it plays)."""
        with self.lock:
            subject = self.subject(name)
            subject.emotion = emotion or None
            if subject.current is None or subject.current.emotion is None:
                subject.performer.set_emotion(subject.emotion)

    def drop(self, owner: Emit) -> None:
        """The owner went away: its lines end as if interrupted, without events."""
        with self.lock:
            for subject in self.subjects.values():
                mine = [u for u in (subject.current, *subject.queue) if u and u.owner == owner]
                for utterance in mine:
                    utterance.owner = None
                    self._cut(subject, utterance.id, 0.15, clear_queue=False)
                self._next(subject)

    def describe(self) -> list[dict[str, object]]:
        """Every subject's state for ``GET /v1/subjects``."""
        with self.lock:
            return [
                {
                    "subject": s.name,
                    "state": s.state(),
                    "utterance_id": None if s.current is None else s.current.id,
                    "queue": len(s.queue),
                }
                for s in self.subjects.values()
            ]

    def close(self) -> None:
        """Fade every line out and stop the director (the engine eases the faces after)."""
        with self.lock:
            for subject in self.subjects.values():
                self._cut(subject, None, 0.1, clear_queue=True)
        self._closing.set()
        if self._director.is_alive():
            self._director.join(timeout=1.0)

    # -- internals (lock held) -----------------------------------------------------------------
    def _model(self, rate: int) -> FaceModel:
        return create_model(self.settings.model, rate, self.settings.fps, causal=True)

    def _cut(
        self, subject: Subject, uid: str | None, fade_s: float, clear_queue: bool
    ) -> list[Utterance]:
        """Interrupt the current line (if ``uid`` is None or its id) and the queued ones
        (``clear_queue``, or only ``uid``); each gets its event."""
        cut = []
        current = subject.current
        if current is not None and uid in (None, current.id):
            voice = current.voice
            heard = voice.fade(fade_s) if voice is not None else 0
            end = None if voice is None else voice.fade_end()
            if end is None or fade_s <= 2 * FAST_BLEND_S:  # hardly longer than the face's ease
                subject.performer.silence()
            else:  # it speaks on, ever smaller (Track.row), then eases: at rest within fade_s
                current.track.close(end, ease_at=self.mixer.now() + fade_s - FAST_BLEND_S)
                self._fading.append(current.track)  # the director feeds it to the end
            subject.current = None
            self._over(current, "utterance.interrupted", played_ms=current.played_ms(heard))
            cut.append(current)
        for queued in list(subject.queue):
            if (uid is None and clear_queue) or queued.id == uid:
                subject.queue.remove(queued)
                self._over(queued, "utterance.interrupted", played_ms=0.0)
                cut.append(queued)
        return cut

    def _over(self, utterance: Utterance, kind: str, **fields: object) -> None:
        utterance.over = True
        utterance._pending.clear()
        if not utterance.ended:
            utterance.ended = True
            utterance.track.close()
        utterance.emit(kind, **fields)
        utterance.owner = None
        subject = utterance.subject
        if subject.current is None:
            subject.performer.set_emotion(subject.emotion)

    def _next(self, subject: Subject) -> None:
        """Give the turn to the next queued line."""
        if subject.current is not None or not subject.queue:
            return
        utterance = subject.current = subject.queue.popleft()
        voice = self.mixer.voice(
            utterance.rate, cushion_s=self.cushion_s, capacity_s=self.settings.buffer_s
        )
        for pcm in utterance._pending:
            voice.push(pcm)
        utterance._pending.clear()
        utterance._pending_samples = 0
        if utterance.ended:
            voice.end()
        utterance.track.voice = voice
        if utterance.emotion is not None:
            subject.performer.set_emotion({**(subject.emotion or {}), **utterance.emotion})
        subject.performer.speak(utterance.track)
        self.conductor.wake()

    def _watch(self, subject: Subject, now: float) -> None:
        """Events of the current line; the next one's turn when it has been heard."""
        utterance = subject.current
        voice = None if utterance is None else utterance.voice
        if utterance is None or voice is None:
            return
        first = voice.dac_time(0)
        if not utterance._started and first is not None and first <= now and voice.heard():
            utterance._started = True
            utterance._progress_at = now
            utterance.emit("utterance.started", audio_clock_ms=round(first * 1000.0, 1))
        if voice.underruns > utterance._underruns:
            utterance._underruns = voice.underruns
            utterance.emit("buffer.underrun")
        if voice.done and voice.ended:
            last = voice.last_heard()
            if last is None or last <= now:
                subject.current = None
                duration = round(1000.0 * voice.samples / utterance.rate, 1)
                self._over(utterance, "utterance.finished", duration_ms=duration)
                self._next(subject)
            return
        if utterance._started and now - utterance._progress_at >= PROGRESS_S:
            utterance._progress_at = now
            utterance.emit("utterance.progress", played_ms=utterance.played_ms())

    def _direct(self) -> None:
        while not self._closing.wait(TICK_S):
            now = self.mixer.now()
            with self.lock:
                subjects = list(self.subjects.values())
                for subject in subjects:
                    self._watch(subject, now)
                tracks = [(s.current, *s.queue) for s in subjects]
                self._fading = fading = [t for t in self._fading if not t.finished]
            for track in fading:  # the model runs outside the cast's lock
                track.feed(now)
            for current, *queued in tracks:
                if current is not None:
                    current.track.feed(now)
                for utterance in queued:
                    utterance.track.feed(now, QUEUED_FEED_S)
