"""The Starlette app of `nsplayer stage`: the WebSocket stream and the small REST API.

Each WebSocket connection reads its messages in order and writes its events from a queue
of its own, so a client that reads slowly only delays itself; for one that stops reading,
the queue holds OUTBOX_LIMIT events, drops the rest and ends in a hang-up. A client
streaming faster than real time is read only as fast as its audio plays (``buffer_s``
ahead at most).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import soundfile as sf
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from nsplayer.stage.cast import Cast, Utterance
from nsplayer.stage.protocol import (
    DEFAULT_FADE_MS,
    MAX_FADE_MS,
    MAX_NAME,
    MODES,
    AudioFormat,
    ExpressionSet,
    Interrupt,
    ProtocolError,
    SessionUpdate,
    UtteranceAudio,
    UtteranceEnd,
    UtteranceStart,
    parse,
    subject_name,
)

OUTBOX_LIMIT = 1000  # events waiting for a client that does not read: then it is cut off
REST_CHUNK_S = 0.1  # a REST body is fed to the cast in chunks like a stream's
ROOM_POLL_S = 0.02
_STATUS = {
    "unauthorized": 401,
    "unknown_subject": 404,
    "unknown_utterance": 404,
    "too_large": 413,
    "queue_full": 429,
    "too_many_subjects": 429,
}


@dataclass(frozen=True)
class AppSettings:
    token: str | None = None  # required from every client but /v1/health when set
    audio: str = "none"  # what the service does with the sound: local or none
    max_body_mb: float = 50.0
    max_audio_s: float = 600.0  # one REST utterance


def build_app(cast: Cast, settings: AppSettings) -> Starlette:
    """The ASGI app over ``cast``."""

    def authorized(conn: HTTPConnection) -> bool:
        if settings.token is None:
            return True
        header = conn.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        given = given or conn.query_params.get("token", "")
        return hmac.compare_digest(given.encode(), settings.token.encode())

    def guarded(handler: Callable[[Request], Awaitable[Response]]):
        async def guard(request: Request) -> Response:
            if not authorized(request):
                return _error(ProtocolError("unauthorized", "a valid token is required"))
            try:
                return await handler(request)
            except ProtocolError as exc:
                return _error(exc)

        return guard

    async def stream(websocket: WebSocket) -> None:
        if not authorized(websocket):
            await websocket.close(code=1008, reason="a valid token is required")
            return
        await websocket.accept()
        await _Connection(websocket, cast, settings).run()

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "audio": settings.audio, "fps": cast.settings.fps})

    async def subjects(_: Request) -> Response:
        return JSONResponse({"subjects": cast.describe()})

    async def speak(request: Request) -> Response:
        name = subject_name(request.path_params["subject"])
        mode = request.query_params.get("mode", "enqueue")
        if mode not in MODES:
            raise ProtocolError("bad_field", f"mode must be one of {', '.join(MODES)}")
        wait = _flag(request.query_params.get("wait", "false"), "wait")
        body = await _body(request, round(settings.max_body_mb * 1e6))
        pcm, rate = await asyncio.to_thread(_decode, body, settings.max_audio_s)
        done: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
        uid = "rest-" + uuid.uuid4().hex[:12]
        utterance = cast.start_utterance(name, uid, rate, _settle(done), mode)
        feeding = asyncio.create_task(_feed(cast, utterance, pcm))
        answer = {"utterance_id": uid, "subject": name, "duration_ms": len(pcm) * 1000 // rate}
        if not wait:
            _background.add(feeding)
            feeding.add_done_callback(_background.discard)
            return JSONResponse(answer, status_code=202)
        await feeding
        event = await done
        answer["status"] = event["type"].split(".")[1]
        if "played_ms" in event:
            answer["played_ms"] = event["played_ms"]
        return JSONResponse(answer)

    async def interrupt(request: Request) -> Response:
        name = subject_name(request.path_params["subject"])
        fade = _number(request.query_params.get("fade_ms", str(DEFAULT_FADE_MS)), "fade_ms")
        clear = _flag(request.query_params.get("clear_queue", "true"), "clear_queue")
        return JSONResponse({"interrupted": cast.interrupt(name, None, fade, clear)})

    return Starlette(
        routes=[
            WebSocketRoute("/v1/stream", stream),
            Route("/v1/health", health),
            Route("/v1/subjects", guarded(subjects)),
            Route("/v1/subjects/{subject}/speak", guarded(speak), methods=["POST"]),
            Route("/v1/subjects/{subject}/interrupt", guarded(interrupt), methods=["POST"]),
        ]
    )


_background: set[asyncio.Task] = set()  # REST feeders still running (kept from the GC)


class _Connection:
    """One WebSocket client: its format, its open utterances, its events."""

    def __init__(self, websocket: WebSocket, cast: Cast, settings: AppSettings) -> None:
        self.websocket = websocket
        self.cast = cast
        self.settings = settings
        self.format = AudioFormat()
        self.open: dict[str, tuple[Utterance, AudioFormat]] = {}
        self.latest: str | None = None  # where binary frames go
        self.outbox: asyncio.Queue[dict | None] = asyncio.Queue()
        self.overflowed = False
        self.loop = asyncio.get_running_loop()

    def emit(self, event: dict[str, object]) -> None:
        """Any thread: queue an event for this client (none once the server has stopped)."""
        with contextlib.suppress(RuntimeError):  # the event loop is closed
            self.loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: dict | None) -> None:
        if self.overflowed:
            return
        if self.outbox.qsize() < OUTBOX_LIMIT:
            self.outbox.put_nowait(event)
        else:  # not reading: drop what follows, hang up once the writer gets there
            self.overflowed = True
            self.outbox.put_nowait(None)

    async def run(self) -> None:
        writer = asyncio.create_task(self._write())
        self.emit(
            {
                "type": "session.created",
                "subjects": [s["subject"] for s in self.cast.describe()],
                "fps": self.cast.settings.fps,
                "lookahead_ms": self.cast.lookahead_ms,
                "cushion_ms": round(self.cast.cushion_s * 1000.0, 1),
                "audio": self.settings.audio,
            }
        )
        try:
            while not writer.done():
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                try:
                    if message.get("bytes") is not None:
                        await self._binary(message["bytes"])
                    else:
                        await self._handle(parse(message.get("text") or ""))
                except ProtocolError as exc:
                    self.emit(exc.event())
        except WebSocketDisconnect:
            pass
        finally:
            self.cast.drop(self.emit)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer

    async def _write(self) -> None:
        while (event := await self.outbox.get()) is not None:
            await self.websocket.send_text(json.dumps(event))
        await self.websocket.close(code=1008, reason="events not read")

    async def _handle(self, message: object) -> None:
        if isinstance(message, SessionUpdate):
            self.format = message.format
        elif isinstance(message, UtteranceStart):
            self._prune()
            if message.utterance_id in self.open:
                raise ProtocolError(
                    "duplicate_utterance", f"utterance {message.utterance_id!r} is already open"
                )
            utterance = self.cast.start_utterance(
                message.subject,
                message.utterance_id,
                self.format.sample_rate,
                self.emit,
                message.mode,
                message.emotion,
            )
            self.open[message.utterance_id] = (utterance, self.format)
            self.latest = message.utterance_id
        elif isinstance(message, UtteranceAudio):
            await self._audio(message.utterance_id, message.audio)
        elif isinstance(message, UtteranceEnd):
            utterance, _ = self._find(message.utterance_id)
            del self.open[message.utterance_id]
            if self.latest == message.utterance_id:
                self.latest = None
            self.cast.end(utterance)
        elif isinstance(message, Interrupt):
            self.cast.interrupt(
                message.subject, message.utterance_id, message.fade_ms, message.clear_queue
            )
        elif isinstance(message, ExpressionSet):
            self.cast.express(message.subject, message.emotion)

    async def _binary(self, data: bytes) -> None:
        if self.latest is None:
            raise ProtocolError(
                "audio_before_start", "binary audio needs an utterance.start first (or after end)"
            )
        await self._audio(self.latest, data)

    async def _audio(self, uid: str, data: bytes) -> None:
        utterance, fmt = self._find(uid)
        pcm = fmt.decode(data)
        await _room(self.cast, utterance, len(pcm) / fmt.sample_rate)
        self.cast.push(utterance, pcm)

    def _find(self, uid: str) -> tuple[Utterance, AudioFormat]:
        found = self.open.get(uid)
        if found is None:
            raise ProtocolError(
                "unknown_utterance", f"no open utterance {uid[:MAX_NAME]!r} on this connection"
            )
        return found

    def _prune(self) -> None:
        """Forget utterances that were interrupted before the client ended them."""
        for uid in [uid for uid, (u, _) in self.open.items() if u.over]:
            del self.open[uid]


async def _room(cast: Cast, utterance: Utterance, seconds: float) -> None:
    """Wait until ``utterance`` takes ``seconds`` more audio: a fast producer is read only
    as fast as its audio plays."""
    while not utterance.over and cast.room_s(utterance) < seconds:
        await asyncio.sleep(ROOM_POLL_S)


async def _feed(cast: Cast, utterance: Utterance, pcm: np.ndarray) -> None:
    """A REST body into the cast, as a stream of chunks."""
    step = max(1, round(REST_CHUNK_S * utterance.rate))
    for start in range(0, len(pcm), step):
        chunk = pcm[start : start + step]
        await _room(cast, utterance, len(chunk) / utterance.rate)
        if utterance.over:
            return
        cast.push(utterance, chunk)
    cast.end(utterance)


def _settle(done: asyncio.Future[dict]) -> Callable[[dict[str, object]], None]:
    """An owner that resolves ``done`` with the utterance's last event."""
    loop = done.get_loop()

    def settle(event: dict[str, object]) -> None:
        if event["type"] in ("utterance.finished", "utterance.interrupted"):
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(event))

    return settle


async def _body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise _too_large(limit)
    if not body:
        raise ProtocolError("bad_audio", "the body is empty — POST an audio file")
    return bytes(body)


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError("too_large", f"the body is over {limit / 1e6:g} MB (--max-body-mb)")


def _decode(body: bytes, max_audio_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 and its rate from any file soundfile reads, length checked first."""
    try:
        with sf.SoundFile(io.BytesIO(body)) as audio:
            if not 8000 <= audio.samplerate <= 96000:
                raise ProtocolError("bad_audio", f"{audio.samplerate} Hz: use 8-96 kHz audio")
            if audio.frames > max_audio_s * audio.samplerate:
                raise ProtocolError("too_large", f"audio over {max_audio_s:g} s (--max-audio-s)")
            pcm = audio.read(dtype="float32", always_2d=True)
            rate = audio.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise ProtocolError("bad_audio", f"not audio soundfile can read ({exc})") from None
    if not len(pcm):
        raise ProtocolError("bad_audio", "the audio has no samples")
    return np.nan_to_num(pcm.mean(axis=1)), rate


def _flag(value: str, name: str) -> bool:
    if value.lower() not in ("true", "false", "1", "0"):
        raise ProtocolError("bad_field", f"{name} must be true or false")
    return value.lower() in ("true", "1")


def _number(value: str, name: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= MAX_FADE_MS:
        raise ProtocolError("bad_field", f"{name} must be a number 0..{MAX_FADE_MS}")
    return number


def _error(exc: ProtocolError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": str(exc)}}, status_code=_STATUS.get(exc.code, 400)
    )
