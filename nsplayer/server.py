"""NeuroSync-compatible HTTP API over the embedded model (`nsplayer serve`).

Speaks the NeuroSync Local API contract — ``POST /audio_to_blendshapes`` with the audio
file bytes as the body, answer ``{"blendshapes": [[61 or 68 floats], ...]}`` at 60 rows/s —
so NeuroSync-style clients can use the embedded model, and so our own HTTP client is tested
against a real server over a real socket. Standard library only (``http.server``): the
load is a handful of local clients, and it keeps the dependency list short.
"""

from __future__ import annotations

import io
import ipaddress
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np
import soundfile as sf

from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.base import EMOTION_NAMES, N_SHAPES

API_PATH = "/audio_to_blendshapes"
HEALTH_PATH = "/health"
FPS = 60
RAW_DEFAULT_RATE = 22050  # what NeuroSync assumes for headerless PCM
# Magic numbers of containers libsndfile reads: a body starting with one of these that does
# not decode is broken audio (400), not raw PCM.
_CONTAINER_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b".snd", b"caff")
_NEUTRAL = EMOTION_NAMES.index("Neutral")


class BadAudio(ValueError):
    """The request body is not audio we can decode (HTTP 400)."""


@dataclass(frozen=True)
class ServerSettings:
    """What `nsplayer serve` is configured with."""

    host: str = "127.0.0.1"
    port: int = 5000
    rows: int = N_SHAPES  # 61, or 68 with emotion scores appended
    max_body: int = 50 * 1024 * 1024
    request_timeout: float = 30.0
    verbose: bool = False


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (no key or audio leaves it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def decode_audio(body: bytes, raw_rate: int = RAW_DEFAULT_RATE) -> tuple[np.ndarray, int]:
    """Decode a request body to mono float32 and its rate.

    Containers (WAV, FLAC, OGG, ...) go through libsndfile; anything else is taken as raw
    16-bit little-endian mono PCM at ``raw_rate``, as the NeuroSync Local API does.
    """
    if not body:
        raise BadAudio("empty body — send WAV/FLAC/OGG bytes or raw 16-bit PCM")
    try:
        data, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if body[:4] in _CONTAINER_MAGIC:
            raise BadAudio(f"could not decode audio: {exc}") from None
        if len(body) % 2:
            raise BadAudio(
                "not a known audio container, and an odd byte count for raw 16-bit PCM"
            ) from None
        pcm = np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0
        return pcm, raw_rate
    if data.shape[0] == 0:
        raise BadAudio("audio has no samples")
    return data.mean(axis=1, dtype=np.float32), int(rate)


def infer(pcm: np.ndarray, rate: int, rows: int = N_SHAPES) -> np.ndarray:
    """Run the embedded model offline over a whole clip: ceil(duration * 60) rows.

    For 68-value rows the emotion scores are a constant Neutral = 1: the embedded model
    estimates no emotion, and a fixed neutral keeps the emotion overlay of clients inert.
    """
    model = create_model("embedded", rate, FPS, causal=False)
    try:  # fed in 1 s blocks: the model streams, so memory stays flat for long clips
        parts = [model.feed(pcm[i : i + rate]) for i in range(0, len(pcm), rate)]
        frames = np.concatenate([*parts, model.flush()]).astype(np.float32)
    finally:
        model.close()
    frames = frames[:, :N_SHAPES]
    return frames if rows == N_SHAPES else with_neutral_emotions(frames)


def with_neutral_emotions(frames: np.ndarray) -> np.ndarray:
    """61-value rows to 68: emotion scores Neutral = 1, the others 0."""
    emotions = np.zeros((len(frames), len(EMOTION_NAMES)), np.float32)
    emotions[:, _NEUTRAL] = 1.0
    return np.hstack([frames, emotions])


def _parse_rate(query: str) -> int:
    values = parse_qs(query).get("rate")
    if not values:
        return RAW_DEFAULT_RATE
    try:
        rate = int(values[-1])
    except ValueError:
        raise BadAudio(f"rate must be an integer number of Hz, got {values[-1]!r}") from None
    if not 4000 <= rate <= 384000:
        raise BadAudio(f"rate {rate} Hz is out of range (4000–384000)")
    return rate


class _Handler(BaseHTTPRequestHandler):
    """One request: route, read the bounded body, run the model, answer JSON."""

    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "nsplayer-serve"

    def setup(self) -> None:
        self.timeout = self.server.settings.request_timeout  # socket read timeout
        super().setup()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == HEALTH_PATH:
            s = self.server.settings
            self._json(
                HTTPStatus.OK, {"status": "ok", "model": "embedded", "rows": s.rows, "fps": FPS}
            )
        else:
            self._other_method()

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path != API_PATH:
            self._other_method()
            return
        body = self._read_body()
        if body is None:
            return
        try:
            pcm, rate = decode_audio(body, _parse_rate(url.query))
        except BadAudio as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        try:
            frames = infer(pcm, rate, self.server.settings.rows)
        except NsplayerError as exc:
            self._error(HTTPStatus.BAD_REQUEST, str(exc))
            return
        except Exception as exc:  # a model bug must still get an answer, not a dropped socket
            self.log_error("model failed: %r", exc)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"model failed: {type(exc).__name__}")
            return
        self._json(HTTPStatus.OK, {"blendshapes": np.round(frames, 5).tolist()})

    def _other_method(self) -> None:
        path = urlsplit(self.path).path
        if path in (API_PATH, HEALTH_PATH):
            allowed = "POST" if path == API_PATH else "GET"
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"use {allowed}", allow=allowed)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such endpoint; use POST {API_PATH}")

    do_PUT = do_DELETE = do_PATCH = _other_method

    def _read_body(self) -> bytes | None:
        """Read Content-Length bytes within the size limit and the request deadline."""
        limit = self.server.settings.max_body
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            self._error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length header")
            return None
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0:
            self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length")
            return None
        if length > limit:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {length} bytes exceeds the limit of {limit} bytes",
            )
            return None
        deadline = time.monotonic() + self.server.settings.request_timeout
        chunks, remaining = [], length
        while remaining:
            chunk = self.rfile.read(min(remaining, 1 << 16))
            if not chunk or time.monotonic() > deadline:
                self.close_connection = True
                return None  # client gave up or too slow: nobody to answer
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _json(self, status: HTTPStatus, payload: dict, allow: str | None = None) -> None:
        data = json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if allow:
            self.send_header("Allow", allow)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def _error(self, status: HTTPStatus, message: str, allow: str | None = None) -> None:
        self._json(status, {"error": message, "status": int(status)}, allow)

    def log_message(self, format: str, *args: object) -> None:
        """Access lines only with --verbose; errors (log_error) always."""
        if self.server.settings.verbose:
            super().log_message(format, *args)

    def log_error(self, format: str, *args: object) -> None:
        super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    """Threaded: one thread per request; close() waits for requests in progress."""

    daemon_threads = False
    block_on_close = True
    # On Windows SO_REUSEADDR lets a second server take a port in use: report it instead.
    allow_reuse_address = sys.platform != "win32"

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        super().__init__((settings.host, settings.port), _Handler)


def make_server(settings: ServerSettings) -> _Server:
    """Bind the server (port 0 picks a free port: see ``server.server_address``)."""
    try:
        return _Server(settings)
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        if exc.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            raise NsplayerError(
                f"port {settings.port} on {settings.host} is already in use — "
                f"stop the other server or pick another with --port"
            ) from None
        raise NsplayerError(
            f"cannot listen on {where}: {exc.strerror or exc} — check --host/--port"
        ) from None


def api_url(server: _Server) -> str:
    """The URL clients should POST to."""
    host, port = server.server_address[:2]
    if ":" in str(host):
        host = f"[{host}]"
    return f"http://{host}:{port}{API_PATH}"


def serve(settings: ServerSettings, announce: Callable[[str], None] = print) -> None:
    """Serve until SIGINT/SIGTERM, then finish the requests in progress and return."""
    if not is_loopback(settings.host):
        announce(
            f"warning: listening on {settings.host}: other machines can reach this "
            f"server (no authentication)"
        )
    server = make_server(settings)
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    worker = threading.Thread(target=server.serve_forever, name="nsplayer-serve", daemon=True)
    worker.start()
    announce(f"serving the embedded model on {api_url(server)} (Ctrl-C to stop)")
    try:
        while not stop.wait(0.5):  # a timed wait keeps Ctrl-C responsive on Windows
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        _restore_handlers(previous)
    announce("stopped")


def _install_stop_handlers(stop: threading.Event) -> dict[int, object]:
    """SIGINT and SIGTERM set ``stop`` (both exist on Windows too); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    return previous


def _restore_handlers(previous: dict[int, object]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
