"""The NeuroSync model over HTTP (`--model neurosync`): local or hosted NeuroSync Local API.

The NeuroSync Local API contract: ``POST <url>`` with a WAV file as the body, answer
``{"blendshapes": [[61 or 68 floats], ...]}`` at 60 rows/s. The model needs about 2 s of
context, so audio is sent in overlapping segments (cut at quiet points) that are cross-faded
on the overlap. ``feed`` waits only for the first answer (so playback starts once the first
segment is back, not after the whole file); later segments are requested ahead of playback
by at most ``max_inflight`` worker threads and ``feed`` returns whatever is ready. Frames
are stitched at 60 fps (exactly ceil(duration * 60)), then resampled to the requested fps.

A failure raises NsplayerError; ``answered`` tells whether the server had answered before.
What happens then (``on_model_error``) is ``models.fallback``'s one rule, which
``create_model`` wraps this model in.

The API key goes only into the ``API-Key`` request header: never into messages or logs.
"""

from __future__ import annotations

import io
import json
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import soundfile as sf

from nsplayer.errors import NsplayerError
from nsplayer.framerate import RowResampler
from nsplayer.models.base import (
    N_SHAPES,
    N_WITH_EMOTIONS,
    ON_MODEL_ERROR,
    FaceModel,
    fit_width,
    to_length,
)
from nsplayer.netaddr import is_loopback

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:5000/audio_to_blendshapes"

SERVER_FPS = 60
MIN_CONTEXT_S = 2.2  # NeuroSync needs ~128 frames of context: never send less if we have it
REQUEST_ALLOWANCE_S = 1.0  # expected worst request time on a healthy server
BACKOFF_S = 0.2  # first retry delay; doubles per attempt
MAX_RETRY_AFTER_S = 5.0  # a busy server's Retry-After is honoured up to this
FAR_OUT_OF_RANGE = 1.5  # |value| beyond this is garbage, not overshoot
_ROW_BYTES = N_WITH_EMOTIONS * 24  # generous JSON size of one row
ERROR_TEXT_CHARS = 200  # of a server's error body, shown in our message
_ERROR_READ = 4096  # bytes of an error body read to find that text


@dataclass(frozen=True)
class NeuroSyncSettings:
    """How to reach a NeuroSync-compatible HTTP model and what to do when it fails."""

    url: str = DEFAULT_URL
    api_key: str | None = field(default=None, repr=False)  # secret: never printed
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    retries: int = 2
    max_inflight: int = 2
    segment_s: float = 6.0
    overlap_s: float = 1.0
    on_model_error: str = "embedded"  # embedded | idle | stop
    allow_insecure: bool = False


class _Pending(NamedTuple):
    """A submitted segment: 60 fps frames [start, end), and its answer to come."""

    start: int
    end: int
    final: bool
    future: Future[np.ndarray]


class _Retryable(Exception):
    """A failure worth another attempt (connection error, 5xx); carries a safe message and
    how long the server asked us to wait (Retry-After of a busy server)."""

    def __init__(self, message: str, after: float = 0.0) -> None:
        super().__init__(message)
        self.after = after


class HttpClient:
    """Posts WAV segments and returns validated, sanitized rows. Thread-safe."""

    def __init__(self, settings: NeuroSyncSettings) -> None:
        import requests  # here, not at the top: config imports this module for its settings

        self.url = settings.url
        key = settings.api_key
        scheme, host = check_url(self.url)
        if key and scheme == "http" and not is_loopback(host) and not settings.allow_insecure:
            raise NsplayerError(
                f"refusing to send the API key over plain http to {host} — "
                f"use an https URL, or --allow-insecure on a trusted network"
            )
        self._key = key
        self._settings = settings
        self._session = requests.Session()
        self._session.headers["Content-Type"] = "application/octet-stream"
        if key:
            self._session.headers["API-Key"] = key
        self._warned = threading.Event()

    def post(self, wav: bytes, expected_rows: int) -> np.ndarray:
        """Exactly ``expected_rows`` validated rows for a WAV body; bounded retries with
        backoff for connection errors and 5xx, none for 4xx or a bad answer."""
        attempt = 0
        while True:
            try:
                return self._post_once(wav, expected_rows)
            except _Retryable as exc:
                if attempt >= self._settings.retries:
                    raise NsplayerError(str(exc)) from None
                delay = max(BACKOFF_S * 2**attempt, exc.after)
            time.sleep(delay)
            attempt += 1

    def close(self) -> None:
        self._session.close()

    def _post_once(self, wav: bytes, expected_rows: int) -> np.ndarray:
        import requests

        s = self._settings
        try:
            with self._session.post(
                self.url,
                data=wav,
                timeout=(s.connect_timeout, s.read_timeout),
                stream=True,
                allow_redirects=False,
            ) as resp:
                self._check_status(resp)
                body = self._read_bounded(resp, 64 * 1024 + expected_rows * _ROW_BYTES * 2)
        except requests.ReadTimeout:
            raise NsplayerError(
                f"model server at {self.url} did not answer within "
                f"{s.read_timeout:g} s — raise --read-timeout or check the "
                f"server"
            ) from None
        except requests.ConnectionError as exc:
            raise _Retryable(self._connection_message(exc)) from None
        except requests.RequestException as exc:  # broken chunked body, bad encoding
            raise _Retryable(
                f"connection to the model server at {self.url} broke off "
                f"mid-response ({type(exc).__name__})"
            ) from None
        return _fit_length(self._parse(body), expected_rows, self.url)

    def _connection_message(self, exc: requests.ConnectionError) -> str:
        import requests
        from urllib3.exceptions import NewConnectionError

        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(exc, requests.ConnectTimeout) or isinstance(reason, NewConnectionError):
            return (
                f"model server not reachable at {self.url} — is the NeuroSync Local API "
                f"running? or use --model embedded"
            )
        return f"connection to the model server at {self.url} broke off mid-request"

    def _check_status(self, resp: requests.Response) -> None:
        code = resp.status_code
        after = resp.headers.get("Retry-After", "")
        if code == 503 and after.isdigit():  # busy (e.g. nsplayer serve's queue is full)
            raise _Retryable(
                f"model server at {self.url} is busy (HTTP 503){self._detail(resp)} — "
                f"try again later, or use --model embedded",
                min(float(after), MAX_RETRY_AFTER_S),
            )
        if code >= 500:
            raise _Retryable(
                f"model server at {self.url} failed: HTTP {code}{self._detail(resp)} — "
                f"see the server's log, or use --model embedded"
            )
        if 300 <= code < 400:
            raise NsplayerError(
                f"model server at {self.url} redirects (HTTP {code}) — use the "
                f"final URL (keys are not sent through redirects)"
            )
        if code >= 400:
            detail = self._detail(resp) if code != 401 else ""
            hint = "check --api-key" if code in (401, 403) else "check --url and the audio"
            raise NsplayerError(
                f"model server at {self.url} refused the request: HTTP {code}{detail} — {hint}"
            )

    def _detail(self, resp: requests.Response) -> str:
        """The start of an error body, key masked before it is cut (a cut key would show)."""
        raw = resp.raw.read(_ERROR_READ, decode_content=True) or b""
        text = raw.decode("utf-8", "replace")
        if len(raw) == _ERROR_READ and self._key:  # the read may end inside the key
            text = text[: -len(self._key)]
        text = " ".join(self._scrub(text).split())[:ERROR_TEXT_CHARS]
        return f" {text}" if text else ""

    def _read_bounded(self, resp: requests.Response, limit: int) -> bytes:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise NsplayerError(
                f"model server at {self.url} sent {declared} bytes, more than "
                f"the {limit} expected — is the URL right?"
            )
        body = bytearray()
        for chunk in resp.iter_content(1 << 16):
            body += chunk
            if len(body) > limit:
                raise NsplayerError(
                    f"model server at {self.url} sent more than {limit} bytes — is the URL right?"
                )
        return bytes(body)

    def _parse(self, body: bytes) -> np.ndarray:
        where = f"model server at {self.url}"
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise NsplayerError(
                f"{where} returned malformed JSON — is the URL a NeuroSync "
                f"/audio_to_blendshapes endpoint?"
            ) from None
        rows = payload.get("blendshapes") if isinstance(payload, dict) else None
        if not isinstance(rows, list) or not rows:
            raise NsplayerError(
                f'{where} returned no blendshapes — expected {{"blendshapes": [[...], ...]}}'
            )
        widths = {len(row) if isinstance(row, list) else -1 for row in rows}
        if len(widths) > 1 or widths <= {-1}:
            raise NsplayerError(f"{where} returned ragged rows or rows that are not lists")
        width = widths.pop()
        if width not in (N_SHAPES, N_WITH_EMOTIONS):
            raise NsplayerError(
                f"{where} returned rows of {width} values (expected 61 or 68) — is the URL "
                f"a NeuroSync endpoint?"
            )
        try:
            frames = np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            frames = None
        if frames is None or frames.ndim != 2:
            raise NsplayerError(f"{where} returned rows that are not lists of numbers")
        return self._sanitize(frames)

    def _sanitize(self, frames: np.ndarray) -> np.ndarray:
        """NaN/inf become 0 and everything is clipped to [-1, 1]; garbage warns once."""
        with np.errstate(invalid="ignore"):
            garbage = ~np.isfinite(frames) | (np.abs(frames) > FAR_OUT_OF_RANGE)
        if garbage.any() and not self._warned.is_set():
            self._warned.set()
            log.warning(
                "nsplayer: warning: model server at %s returned %d NaN, infinite or far "
                "out-of-range values; replaced them (warning once)",
                self.url,
                int(garbage.sum()),
            )
        clean = np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0)
        return np.clip(clean, -1.0, 1.0).astype(np.float32)

    def _scrub(self, text: str) -> str:
        """Server text goes into our messages: make sure it cannot echo the key."""
        return text.replace(self._key, "***") if self._key else text


class Workers:
    """A FIFO pool of daemon threads: segments are answered in order, at most ``n`` at once,
    and a request stuck until its timeout never holds up the exit after Ctrl-C (the
    standard ThreadPoolExecutor joins its threads at exit)."""

    def __init__(self, n: int) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._n = n
        for _ in range(n):
            threading.Thread(target=self._work, name="neurosync", daemon=True).start()

    def submit(self, fn: Callable[..., np.ndarray], *args: object) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        self._jobs.put((future, fn, args))
        return future

    def close(self) -> None:
        for _ in range(self._n):
            self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller through the future
                future.set_exception(exc)


class NeuroSyncModel(FaceModel):
    """FaceModel over a NeuroSync-compatible HTTP endpoint (see the module docstring)."""

    def __init__(
        self, sample_rate: int, fps: int = 60, settings: NeuroSyncSettings | None = None
    ) -> None:
        settings = settings or NeuroSyncSettings()
        if settings.on_model_error not in ON_MODEL_ERROR:
            raise NsplayerError(
                f"on_model_error must be embedded, idle or stop, not {settings.on_model_error!r}"
            )
        if settings.overlap_s <= 0 or settings.segment_s < settings.overlap_s + 1.0:
            raise NsplayerError(
                "NeuroSync segment_s must exceed overlap_s by at least 1 s, "
                "and overlap_s must be positive"
            )
        self.sample_rate = int(sample_rate)
        self.fps = int(fps)
        # audio needed before a frame is final: a segment, plus time for its request
        self.lookahead_s = settings.segment_s + REQUEST_ALLOWANCE_S
        self.idle_from_frame: int | None = None  # never set here: see models.fallback
        self._settings = settings
        self._client = HttpClient(settings)
        self._pool = Workers(max(1, settings.max_inflight))
        self._seg = round(settings.segment_s * SERVER_FPS)
        self._overlap = round(settings.overlap_s * SERVER_FPS)
        self._chunks: list[np.ndarray] = []  # audio from sample self._kept_from on
        self._kept_from = 0
        self._n_samples = 0
        self._next_start = 0  # 60 fps frame where the next segment starts
        self._covered = 0  # 60 fps frame where the last submitted segment ends
        self._pending: deque[_Pending] = deque()
        self._tail: tuple[int, np.ndarray] | None = None  # last answer's overlap, not yet out
        self._emitted = 0  # 60 fps frames emitted
        self.answered = False
        self._width: int | None = None
        self._out = RowResampler(SERVER_FPS, self.fps, N_SHAPES)

    # --- FaceModel -------------------------------------------------------------------------

    def feed(self, pcm: np.ndarray) -> np.ndarray:
        """Queue audio, submit every full segment, return the frames ready so far."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        self._n_samples += len(pcm)
        self._chunks.append(pcm)
        while self._frames_known() >= self._next_start + self._seg:
            self._submit(self._cut_point(), final=False)
        if not self.answered and self._pending:
            wait([self._pending[0].future])  # playback starts once the first answer is in
        return self._out.push(self._collect(block=False))

    def flush(self) -> np.ndarray:
        """Send the last segment, wait for every answer, return the remaining frames."""
        total = math.ceil(self._frames_known() - 1e-9)
        if total > self._covered:
            self._submit(total, final=True)
        parts = [self._collect(block=True)]
        if self._tail is not None:  # the stream ended exactly at a cut
            parts.append(self._tail[1])
            self._emitted += len(self._tail[1])
            self._tail = None
        rows = self._exact(_stack(parts, self._width), total)
        out = self._out.push(rows)
        n_out = math.ceil(self._n_samples * self.fps / self.sample_rate - 1e-9)
        return np.concatenate([out, self._out.finish(n_out)])

    def close(self) -> None:
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()
        self._pool.close()
        self._client.close()

    # --- segmenting ------------------------------------------------------------------------

    def _frames_known(self) -> float:
        return self._n_samples * SERVER_FPS / self.sample_rate

    def _sample(self, frame: int) -> int:
        return min(round(frame * self.sample_rate / SERVER_FPS), self._n_samples)

    def _audio(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end) (absolute), from the kept chunks."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        buf = self._chunks[0] if self._chunks else np.zeros(0, np.float32)
        return buf[start - self._kept_from : end - self._kept_from]

    def _cut_point(self) -> int:
        """End frame of the next segment: the quietest frame in its last quarter."""
        start = self._next_start
        hi = start + self._seg
        lo = max(start + self._overlap + SERVER_FPS, hi - self._seg // 4)
        audio = self._audio(self._sample(lo - 1), self._sample(hi + 1))
        step = self.sample_rate / SERVER_FPS
        energies = [
            float(np.mean(np.square(audio[round(k * step) : round((k + 2) * step)])))
            for k in range(hi - lo + 1)
        ]
        return lo + len(energies) - 1 - int(np.argmin(energies[::-1]))

    def _submit(self, end: int, final: bool) -> None:
        start = self._next_start
        if final and end - start < MIN_CONTEXT_S * SERVER_FPS:
            start = max(0, min(start, end - math.ceil(MIN_CONTEXT_S * SERVER_FPS)))
        a, b = self._sample(start), self._n_samples if final else self._sample(end)
        wav = wav_bytes(self._audio(a, b), self.sample_rate)
        future = self._pool.submit(self._client.post, wav, end - start)
        self._pending.append(_Pending(start, end, final, future))
        self._next_start, self._covered = end - self._overlap, end

    def _collect(self, block: bool) -> np.ndarray:
        """Stitch answered segments in order; return the 60 fps frames now final."""
        out: list[np.ndarray] = []
        while self._pending and (block or self._pending[0].future.done()):
            seg = self._pending[0]
            try:
                rows = seg.future.result()
            except NsplayerError:
                self.close()
                raise
            self._pending.popleft()
            out.append(self._stitch(seg, rows))
        self._trim()
        return _stack(out, self._width)

    def _stitch(self, seg: _Pending, rows: np.ndarray) -> np.ndarray:
        """Cross-fade with the previous answer's overlap; keep this answer's overlap."""
        self.answered = True
        if self._width is None:
            self._width = rows.shape[1]
        start = seg.start
        rows = self._fit(rows)
        parts = []
        if self._tail is not None:
            t0, tail = self._tail
            mine = rows[t0 - start : t0 - start + len(tail)]
            w = ((np.arange(len(tail)) + 0.5) / len(tail)).astype(np.float32)[:, None]
            parts.append(tail * (1 - w) + mine * w)
            rows, start = rows[t0 + len(tail) - start :], t0 + len(tail)
        keep = 0 if seg.final else min(self._overlap, len(rows))
        parts.append(rows[: len(rows) - keep])
        self._tail = (seg.end - keep, rows[len(rows) - keep :]) if keep else None
        done = np.concatenate(parts)
        self._emitted += len(done)
        return done

    def _trim(self) -> None:
        """Drop audio no pending segment and no fallback can need any more."""
        need = min(self._pending[0].start if self._pending else self._next_start, self._emitted)
        need -= math.ceil(MIN_CONTEXT_S * SERVER_FPS)  # a short last segment reaches back
        drop = self._sample(max(0, need)) - self._kept_from
        if drop > 0 and self._chunks:
            self._audio(self._kept_from, self._kept_from)  # consolidate
            self._chunks = [self._chunks[0][drop:]]
            self._kept_from += drop

    def _fit(self, rows: np.ndarray) -> np.ndarray:
        return fit_width(rows, self._width)

    def _exact(self, rows: np.ndarray, total: int) -> np.ndarray:
        """Pad (repeat last) or cut so that exactly ``total`` 60 fps frames came out."""
        rows = to_length(rows, self._emitted - total)
        self._emitted = total
        return rows


def check_url(url: str) -> tuple[str, str]:
    """(scheme, host) of the model URL as requests/urllib3 will connect to it.

    Judged with urllib3's own parser, and URLs that parsers read differently are refused:
    ``http://127.0.0.3:1\\@127.0.0.1:2/`` is host 127.0.0.1 to ``urlsplit`` but 127.0.0.3
    to urllib3, which would let an API key past the plain-http rule.
    """
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    example = "e.g. http://127.0.0.1:5000/audio_to_blendshapes"
    if "\\" in url or not url.isprintable() or " " in url:
        raise NsplayerError(
            "model URL has a backslash, a space or a control character — write it plainly, "
            + example
        )
    try:
        parts = parse_url(url)
    except LocationParseError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.host:
        raise NsplayerError(f"model URL {url[:100]!r} is not an http(s) URL — {example}")
    if parts.auth is not None:
        raise NsplayerError(
            "model URL has a user:password@ part — remove it; the key goes in --api-key "
            "or NSPLAYER_API_KEY"
        )
    return parts.scheme, parts.host


def wav_bytes(pcm: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(pcm, -1.0, 1.0), rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _fit_length(rows: np.ndarray, n: int, url: str) -> np.ndarray:
    """Servers round frame counts differently: pad/cut a little, refuse a lot."""
    if abs(len(rows) - n) > max(3, n // 5):
        raise NsplayerError(
            f"model server at {url} returned {len(rows)} rows for "
            f"{n / SERVER_FPS:.2f} s of audio (expected {n} at 60 rows/s)"
        )
    if len(rows) >= n:
        return rows[:n]
    return np.concatenate([rows, np.repeat(rows[-1:], n - len(rows), axis=0)])


def _stack(parts: list[np.ndarray], width: int | None) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return np.zeros((0, width or N_SHAPES), np.float32)
    return np.concatenate(parts).astype(np.float32, copy=False)
