"""NeuroSync-compatible HTTP API over the embedded model (`nsplayer serve`).

Speaks the NeuroSync Local API contract — ``POST /audio_to_blendshapes`` with the audio
file bytes as the body, answer ``{"blendshapes": [[61 or 68 floats], ...]}`` at 60 rows/s —
so NeuroSync-style clients can use the embedded model, and so our own HTTP client is tested
against a real server over a real socket.

It runs on Starlette and uvicorn (asyncio, h11): one event loop holds every connection, so
slow or idle clients cost a socket, not a thread. What a hostile or careless client can do is
bounded: each request's head and body must arrive within ``request_timeout``; connections
are capped (uvicorn's ``limit_concurrency``); at most ``workers + queue`` requests are
admitted, the rest get 503 with Retry-After; a body is capped at ``max_body`` bytes, and its
audio is checked from the header (rate, channels, declared length) before any decoding, then
decoded in one-second blocks straight into the model, so memory is flat in duration. The
model runs in a worker thread (``workers=1``) or in a pool of processes, each with its own
embedded model, so throughput grows with clients past the interpreter lock. A client that
hangs up stops its inference at the next block.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial

import numpy as np
import soundfile as sf
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from nsplayer.asgi import BACKLOG, DeadlineProtocol, StoppableUvicorn, bind_tcp, in_background
from nsplayer.audio.sources import MAX_RATE, MIN_RATE
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.base import N_SHAPES, with_neutral_emotions
from nsplayer.netaddr import host_port, is_loopback
from nsplayer.stopping import Stop, stop_on_signals

API_PATH = "/audio_to_blendshapes"
HEALTH_PATH = "/health"
ALLOWED = {API_PATH: "POST, OPTIONS", HEALTH_PATH: "GET, HEAD, OPTIONS"}
FPS = 60
RAW_DEFAULT_RATE = 22050  # what NeuroSync assumes for headerless PCM
MAX_CHANNELS = 64
RETRY_AFTER_S = 1
# Magic numbers of containers libsndfile reads: a body starting with one of these that does
# not decode is broken audio (400), not raw PCM.
_CONTAINER_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b".snd", b"caff")
_UNKNOWN_LENGTH = 2**62  # libsndfile's frame count for "not known" is 2**63 - 1

log = logging.getLogger(__name__)


class BadAudio(ValueError):
    """The request body is not audio we can decode (HTTP 400)."""


class _HungUp(Exception):
    """The client went away; the inference stopped early (nobody to answer)."""


@dataclass(frozen=True)
class ServerSettings:
    """What `nsplayer serve` is configured with."""

    host: str = "127.0.0.1"
    port: int = 5000
    rows: int = N_SHAPES  # 61, or 68 with emotion scores appended
    max_body: int = 50 * 1024 * 1024
    max_audio_s: float = 600.0
    request_timeout: float = 30.0  # to send a request's head and body
    workers: int = 1  # model workers: 1 is a thread, more are processes
    queue: int = 8  # requests admitted beyond those running; more get 503
    max_connections: int = 512
    shutdown_timeout: float = 5.0  # requests in progress get this long after a stop
    verbose: bool = False
    quiet: bool = False  # no start and stop lines (warnings stay)


# --- audio and the model (in a worker thread or process) ---------------------------------------


def audio_blocks(
    body: bytes, raw_rate: int = RAW_DEFAULT_RATE, max_audio_s: float = 600.0
) -> tuple[int, Iterator[np.ndarray]]:
    """The rate of a request body and its mono float32 audio in one-second blocks.

    Containers (WAV, FLAC, OGG, ...) go through libsndfile, with rate, channels and declared
    length checked from the header before anything is decoded; anything else is taken as raw
    16-bit little-endian mono PCM at ``raw_rate``, as the NeuroSync Local API does.
    """
    if not body:
        raise BadAudio("empty body — send WAV/FLAC/OGG bytes or raw 16-bit PCM")
    try:
        audio = sf.SoundFile(io.BytesIO(body))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        if body[:4] in _CONTAINER_MAGIC:
            raise BadAudio(f"could not decode audio: {_reason(exc)}") from None
        if len(body) % 2:
            raise BadAudio(
                "not a known audio container, and an odd byte count for raw 16-bit PCM"
            ) from None
        _check_length(len(body) // 2, raw_rate, max_audio_s)
        return raw_rate, _raw_blocks(body, raw_rate)
    try:
        _check_header(audio, max_audio_s)
    except BadAudio:
        audio.close()
        raise
    return audio.samplerate, _file_blocks(audio, max_audio_s)


def _check_header(audio: sf.SoundFile, max_audio_s: float) -> None:
    rate, channels = audio.samplerate, audio.channels
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"sample rate {rate} Hz is out of range ({MIN_RATE}–{MAX_RATE})")
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(f"{channels} channels is out of range (1–{MAX_CHANNELS})")
    _check_length(audio.frames, rate, max_audio_s)


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's repr of the buffer (a heap address)."""
    return getattr(exc, "error_string", None) or type(exc).__name__


def _check_length(frames: int, rate: int, max_audio_s: float) -> None:
    if frames >= _UNKNOWN_LENGTH:  # e.g. a FLAC stream whose header gives no length
        raise BadAudio("the audio header gives no length — send WAV, or FLAC with its length")
    if frames > max_audio_s * rate:
        raise BadAudio(
            f"audio of {frames / rate:.0f} s is longer than the limit of {max_audio_s:g} s — "
            f"send it in parts"
        )


def _raw_blocks(body: bytes, rate: int) -> Iterator[np.ndarray]:
    pcm = np.frombuffer(body, dtype="<i2")
    for i in range(0, len(pcm), rate):
        yield pcm[i : i + rate].astype(np.float32) / 32768.0


def _file_blocks(audio: sf.SoundFile, max_audio_s: float) -> Iterator[np.ndarray]:
    """Decode block by block; a header that lied about the length is caught as it goes."""
    rate, total = audio.samplerate, 0
    with audio:
        try:
            for block in audio.blocks(blocksize=rate, dtype="float32", always_2d=True):
                total += len(block)
                _check_length(total, rate, max_audio_s)
                yield block.mean(axis=1, dtype=np.float32)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise BadAudio(f"could not decode audio: {_reason(exc)}") from None
    if total == 0:
        raise BadAudio("audio has no samples")


def infer_blocks(
    blocks: Iterator[np.ndarray],
    rate: int,
    rows: int = N_SHAPES,
    hung_up: Callable[[], bool] = lambda: False,
) -> np.ndarray:
    """Run the embedded model offline over a clip's blocks: ceil(duration * 60) rows.

    For 68-value rows the emotion scores are a constant Neutral = 1: the embedded model
    estimates no emotion, and a fixed neutral keeps the emotion overlay of clients inert.
    """
    model = create_model("embedded", rate, FPS, causal=False)
    try:
        parts = []
        for block in blocks:
            if hung_up():
                raise _HungUp
            parts.append(model.feed(block))
        parts.append(model.flush())
    finally:
        model.close()
    frames = np.concatenate(parts).astype(np.float32)[:, :N_SHAPES]
    return frames if rows == N_SHAPES else with_neutral_emotions(frames)


def infer(pcm: np.ndarray, rate: int, rows: int = N_SHAPES) -> np.ndarray:
    """A whole clip in memory, fed as the server feeds it (one-second blocks)."""
    return infer_blocks((pcm[i : i + rate] for i in range(0, len(pcm), rate)), rate, rows)


_worker_flags: bytearray | None = None  # in a worker process: the server's hang-up flags


def _init_worker(flags: bytearray) -> None:
    """One BLAS thread per worker process: the pool already has a process per core, and
    more threads each would fight over them (2 workers on 2 cores: 40 instead of 140-300 s
    of audio per second with the learned model)."""
    global _worker_flags
    _worker_flags = flags
    threadpool_limits(1)


def _job(
    flags: bytearray | None,
    slot: int,
    body: bytes,
    raw_rate: int,
    rows: int,
    max_audio_s: float,
) -> bytes:
    """One request's answer as JSON bytes (encoded here, off the event loop)."""
    flags = flags if flags is not None else _worker_flags
    rate, blocks = audio_blocks(body, raw_rate, max_audio_s)
    return answer_json(infer_blocks(blocks, rate, rows, lambda: bool(flags[slot])))


def answer_json(frames: np.ndarray) -> bytes:
    """``{"blendshapes": [[...], ...]}``, values to 5 decimals, encoded a second of rows at a
    time: the whole answer as Python floats would take ~9x its JSON (90 MB for 10 minutes)."""
    parts = (
        json.dumps(np.round(frames[i : i + FPS].astype(np.float64), 5).tolist(), separators=",:")
        for i in range(0, len(frames), FPS)
    )
    return ('{"blendshapes":[' + ",".join(p[1:-1] for p in parts) + "]}").encode()


# --- admission and the worker pool -------------------------------------------------------------


class _Service:
    """Admits at most ``workers + queue`` requests and runs them on the worker pool."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        slots = settings.workers + settings.queue
        self._free = list(range(slots))
        self._processes = settings.workers > 1
        if self._processes:  # spawn: no fork of a threaded process, and the same on Windows
            context = multiprocessing.get_context("spawn")
            self.flags = context.RawArray("b", slots)
        else:
            self.flags = bytearray(slots)
        self._pool = self._new_pool()

    def _new_pool(self) -> Executor:
        if not self._processes:
            return ThreadPoolExecutor(1, thread_name_prefix="nsplayer-model")
        return ProcessPoolExecutor(
            self.settings.workers,
            multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.flags,),
        )

    def admit(self) -> int | None:
        """A free slot, or None when the server is full (the caller answers 503)."""
        return self._free.pop() if self._free else None

    def release(self, slot: int) -> None:
        self.flags[slot] = 0
        self._free.append(slot)

    async def run(self, slot: int, body: bytes, raw_rate: int, hangup: asyncio.Task) -> bytes:
        """The JSON answer; if ``hangup`` finishes first, the job is told to stop."""
        s = self.settings
        flags = None if self._processes else self.flags
        job = asyncio.get_running_loop().run_in_executor(
            self._pool, _job, flags, slot, body, raw_rate, s.rows, s.max_audio_s
        )
        await asyncio.wait({job, hangup}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():
            self.flags[slot] = 1
        try:
            return await job
        except BrokenProcessPool:  # a worker died (e.g. killed): start a fresh pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            raise

    def close(self) -> None:
        for slot in range(len(self.flags)):
            self.flags[slot] = 1  # jobs still running stop at their next block
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- HTTP --------------------------------------------------------------------------------------


def _error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status, headers=headers or None)


def _parse_rate(values: list[str]) -> int:
    if not values:
        return RAW_DEFAULT_RATE
    text = values[-1]
    if not (text.isascii() and text.isdigit()):  # int() would take "1_6000", "+16000", "١٦"
        raise BadAudio(f"rate must be an integer number of Hz, got {text[:20]!r}")
    rate = int(text)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(f"rate {rate} Hz is out of range ({MIN_RATE}–{MAX_RATE})")
    return rate


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past ``limit`` (chunked bodies declare no length).
    As bytes, which BytesIO and numpy read in place (a bytearray would be copied)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return None
    return b"".join(chunks)


async def _hung_up(request: Request) -> None:
    """Returns when the client disconnects (the body has been read: nothing else comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def build_app(settings: ServerSettings, service: _Service) -> Starlette:
    """The ASGI app: the two routes, JSON errors for everything else."""
    limit = settings.max_body

    async def health(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ALLOWED[HEALTH_PATH]})
        body = {"status": "ok", "model": "embedded", "rows": settings.rows, "fps": FPS}
        return JSONResponse(body)

    async def blendshapes(request: Request) -> Response:
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": ALLOWED[API_PATH]})
        declared = request.headers.get("content-length")
        chunked = "transfer-encoding" in request.headers
        if declared is None and not chunked:
            return _error(411, "send a Content-Length header", Connection="close")
        if declared is not None and chunked:  # a request-smuggling pattern: refuse, not guess
            return _error(
                400, "send Content-Length or Transfer-Encoding, not both", Connection="close"
            )
        if declared is not None and int(declared) > limit:  # h11 let only digits through
            return _too_large(int(declared))
        try:
            raw_rate = _parse_rate(request.query_params.getlist("rate"))
        except BadAudio as exc:
            return _error(400, str(exc), Connection="close")
        slot = service.admit()
        if slot is None:
            return _error(
                503,
                "server busy — retry in a moment",
                Connection="close",
                **{"Retry-After": str(RETRY_AFTER_S)},
            )
        try:
            return await _answer(request, slot, raw_rate)
        finally:
            service.release(slot)

    async def _answer(request: Request, slot: int, raw_rate: int) -> Response:
        try:
            body = await _read_body(request, limit)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        if body is None:
            return _too_large(None)
        hangup = asyncio.ensure_future(_hung_up(request))
        try:
            data = await service.run(slot, body, raw_rate, hangup)
        except (BadAudio, NsplayerError) as exc:
            return _error(400, str(exc))
        except _HungUp:
            return Response(status_code=400)
        except asyncio.CancelledError:  # shutdown deadline passed
            return _error(503, "server is shutting down", Connection="close")
        except Exception as exc:  # a model bug must still get an answer, not a dropped socket
            log.error("nsplayer serve: model failed: %s", type(exc).__name__)
            return _error(500, f"model failed: {type(exc).__name__}")
        finally:
            hangup.cancel()
        return Response(data, media_type="application/json")

    def _too_large(length: int | None) -> Response:
        size = f"body of {length} bytes" if length is not None else "body"
        return _error(413, f"{size} exceeds the limit of {limit} bytes", Connection="close")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        if exc.status_code == 405 and path in ALLOWED:
            return _error(405, f"use {ALLOWED[path].split(',')[0]}", Allow=ALLOWED[path])
        if exc.status_code == 404:
            return _error(404, f"no such endpoint; use POST {API_PATH}")
        return _error(exc.status_code, str(exc.detail))

    routes = [
        Route(API_PATH, blendshapes, methods=["POST", "OPTIONS"]),
        Route(HEALTH_PATH, health, methods=["GET", "OPTIONS"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})


class Server:
    """A bound server; ``run()`` serves in the calling thread until ``stop`` is set (by
    stop_on_signals) or ``stop()`` is called."""

    def __init__(self, settings: ServerSettings, stop: Stop | None = None) -> None:
        self.settings = settings
        self.socket = bind_tcp(settings.host, settings.port)
        self._service = _Service(settings)
        config = uvicorn.Config(
            build_app(settings, self._service),
            loop="asyncio",
            http=partial(DeadlineProtocol, request_timeout=settings.request_timeout),
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=settings.verbose,
            server_header=False,
            limit_concurrency=settings.max_connections,
            backlog=BACKLOG,  # as bind_tcp's listen()
            timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout)),
        )
        self._uvicorn = StoppableUvicorn(config, stop)

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        """The URL clients should POST to."""
        return f"http://{host_port(self.socket.getsockname()[0], self.port)}{API_PATH}"

    def run(self) -> int | None:
        """Serve; return the signal that stopped it (None for ``stop()``)."""
        try:
            asyncio.run(self._uvicorn.serve(sockets=[self.socket]))
        finally:
            self._service.close()
            self.socket.close()
        return self._uvicorn.stop.signum

    def stop(self) -> None:
        """Ask ``run()`` to finish the requests in progress and return (any thread)."""
        self._uvicorn.should_exit = True

    @property
    def started(self) -> bool:
        return self._uvicorn.started


@contextlib.contextmanager
def running(settings: ServerSettings) -> Iterator[Server]:
    """A server in a background thread for the duration (tests, benchmarks, embedding)."""
    with in_background(Server(settings)) as server:
        yield server


def serve(settings: ServerSettings, announce: Callable[[str], None] = print) -> int:
    """Serve until SIGINT/SIGTERM, finish the requests in progress (at most
    ``shutdown_timeout``), and return the exit code: 130 for Ctrl-C, 143 for SIGTERM."""
    with stop_on_signals() as stop:
        server = Server(settings, stop)
        if not is_loopback(settings.host):
            announce(
                f"warning: listening on {settings.host}: other machines can reach this "
                f"server (no authentication)"
            )
        _log_to_stderr(settings.verbose)
        if not settings.quiet:
            announce(f"serving the embedded model on {server.url} (Ctrl-C to stop)")
        signum = server.run()
    if not settings.quiet:
        announce("stopped")
    return 0 if signum is None else 128 + signum


def _log_to_stderr(verbose: bool) -> None:
    """uvicorn's lines (and ours) as plain text: warnings always, requests with -v."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("uvicorn", __name__):
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if verbose else logging.WARNING)
        logger.propagate = False
