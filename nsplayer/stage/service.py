"""`nsplayer stage` running: the output, the engine, the cast, and uvicorn in front.

The service runs until Ctrl-C or SIGTERM. uvicorn would re-raise the signal once it has
shut down, which ends the process before anything else runs; here the signal is only
remembered, the connections close (their lines fade out), every face eases back to idle,
and only then does ``run`` return it for the exit code (130/143).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from nsplayer.asgi import BACKLOG, StoppableUvicorn, bind_tcp, in_background
from nsplayer.audio.mixer import Mixer
from nsplayer.audio.sinks import NullSink, open_sink
from nsplayer.engine import Conductor, Look, Performer, fine_thread_switching, write_json
from nsplayer.errors import NsplayerError
from nsplayer.netaddr import host_port, is_loopback
from nsplayer.stage.app import AppSettings, build_app
from nsplayer.stage.cast import Cast, CastSettings
from nsplayer.stage.protocol import MAX_MESSAGE_BYTES, ProtocolError, subject_name
from nsplayer.stopping import Stop, stop_on_signals

AUDIO_ROUTES = ("local", "none")
LOCAL_RATE = 48000  # the mixed output: what sound cards take without converting
TIMELINE_RATE = 24000  # --audio none: nothing is heard, the common TTS rate avoids resampling
WS_MAX_BYTES = 4 * MAX_MESSAGE_BYTES  # bigger frames close the connection; smaller: an error
JOIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StageSettings:
    host: str = "127.0.0.1"
    port: int = 8765
    subjects: tuple[str, ...] = ()
    targets: tuple[str, ...] = ("127.0.0.1:11111",)
    audio: str = "local"
    device: str | int | None = None
    av_offset_ms: float = 0.0
    cast: CastSettings = field(default_factory=CastSettings)
    app: AppSettings = field(default_factory=AppSettings)
    stats: Path | None = None  # every subject's per-frame timing report, written at the end
    verbose: int = 0
    quiet: bool = False  # no start line


class Stage:
    """The running parts: a mixer on the output, the conductor on its clock, the cast."""

    def __init__(self, settings: StageSettings) -> None:
        if settings.audio not in AUDIO_ROUTES:
            raise NsplayerError(f"--audio must be local or none, not {settings.audio!r}")
        self.settings = settings
        if settings.audio == "none":
            sink = NullSink(TIMELINE_RATE, buffer_ms=10)
        else:
            sink = open_sink(LOCAL_RATE, 1, device=settings.device, buffer_ms=10)
        self.mixer = Mixer(sink)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._perform, name="stage-conductor", daemon=True)
        self._joining: queue.SimpleQueue[tuple[str, Look, Future[Performer]]] = queue.SimpleQueue()
        try:
            self.conductor = Conductor(
                self.mixer.now,
                settings.cast.fps,
                settings.targets,
                av_offset_ms=settings.av_offset_ms,
                detailed=settings.stats is not None,
            )
            self.cast = Cast(settings.cast, self.conductor, self.mixer, self._join)
            for name in settings.subjects:
                _cast_subject(self.cast, name)
        except BaseException:
            self.mixer.close()
            raise

    def start(self) -> None:
        self.mixer.start()
        self.conductor.wait_ready()
        self._thread.start()
        self.cast.start()

    def close(self) -> None:
        """Fade every line out, ease every face back to idle, stop the output."""
        self.cast.close()
        self._stop.set()
        self.conductor.wake()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.conductor.close()
        self.mixer.close()
        if self.settings.stats is not None:
            reports = [self.conductor.stats_report(p) for p in self.conductor.performers]
            write_json(self.settings.stats, {"subjects": reports})

    def _join(self, subject: str, look: Look) -> Performer:
        """A new performer, added on the conductor's own thread once it runs: a step plans
        every performer, then picks one, and must not find one it has not planned."""
        if not self._thread.is_alive():
            return self.conductor.add(subject, look)
        joined: Future[Performer] = Future()
        self._joining.put((subject, look, joined))
        self.conductor.wake()
        return joined.result(timeout=JOIN_TIMEOUT_S)

    def _perform(self) -> None:
        """The conductor's thread: every subject's frames until the end, then the ease-out."""
        while not self._stop.is_set():
            while not self._joining.empty():
                subject, look, joined = self._joining.get()
                try:
                    joined.set_result(self.conductor.add(subject, look))
                except Exception as exc:  # e.g. a name the packet cannot carry
                    joined.set_exception(exc)
            if self.conductor.performers:
                self.conductor.step()
            else:
                self._stop.wait(0.01)
        self.conductor.ease_out()


class Service:
    """A bound service; ``run()`` serves in the calling thread until a signal or ``stop()``."""

    def __init__(self, settings: StageSettings, stop: Stop | None = None) -> None:
        if not is_loopback(settings.host) and not settings.app.token:
            raise NsplayerError(
                f"--host {settings.host} lets other machines drive the faces: give a --token "
                "(or NSPLAYER_TOKEN) that clients send as 'Authorization: Bearer ...'"
            )
        self.settings = settings
        self.socket = bind_tcp(settings.host, settings.port)
        try:
            self.stage = Stage(settings)
        except BaseException:
            self.socket.close()
            raise
        config = uvicorn.Config(
            build_app(self.stage.cast, settings.app),
            loop="asyncio",
            ws="websockets-sansio",
            ws_max_size=WS_MAX_BYTES,
            ws_per_message_deflate=False,  # PCM hardly compresses; deflate only costs CPU
            lifespan="off",
            log_config=None,
            access_log=settings.verbose > 0,
            server_header=False,
            backlog=BACKLOG,
            timeout_graceful_shutdown=2,
        )
        self._uvicorn = StoppableUvicorn(config, stop)

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    @property
    def started(self) -> bool:
        return self._uvicorn.started

    def run(self) -> int | None:
        """Serve; the faces are eased out before it returns the signal that stopped it."""
        try:
            self.stage.start()
            with fine_thread_switching():  # the conductor gets the GIL back within 0.5 ms
                asyncio.run(self._uvicorn.serve(sockets=[self.socket]))
        finally:
            self.stage.close()
            self.socket.close()
        return self._uvicorn.stop.signum

    def stop(self) -> None:
        """Ask ``run()`` to return (any thread)."""
        self._uvicorn.should_exit = True


def _cast_subject(cast: Cast, name: str) -> None:
    try:
        cast.subject(subject_name(name))
    except ProtocolError as exc:
        raise NsplayerError(f"--subject: {exc}") from None


@contextlib.contextmanager
def running(settings: StageSettings) -> Iterator[Service]:
    """The service in a background thread for the duration (tests, benchmarks, embedding)."""
    with in_background(Service(settings)) as service:
        yield service


def run_stage(settings: StageSettings, announce: Callable[[str], None]) -> int:
    """Serve until Ctrl-C/SIGTERM; the exit code (130/143 after a signal). The signals only
    set a flag from before the "serving" line on, so the faces always ease out."""
    with stop_on_signals() as stop:
        service = Service(settings, stop)
        where = host_port(settings.host, service.port)
        names = ", ".join(settings.subjects) or "created on first use"
        if not settings.quiet:
            announce(
                f"nsplayer: stage on ws://{where}/v1/stream and http://{where}/v1 -> "
                f"{', '.join(settings.targets)} (subjects: {names}; audio: {settings.audio}; "
                "Ctrl-C stops)"
            )
        signum = service.run()
    return 0 if signum is None else 128 + signum
