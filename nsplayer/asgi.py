"""Running an ASGI app on uvicorn the way `serve` and `stage` both need it.

* The listening socket is bound here, not by uvicorn, so a bad --host or a busy port is one
  clear line (uvicorn logs and exits), said before any "reachable from other machines" warning.
* Signals: uvicorn re-raises SIGINT/SIGTERM after its shutdown, which ends the process by
  the signal before a summary or an ease-out could run. Here the caller's ``Stop`` flag
  (nsplayer.stopping, installed before the server is announced) stops uvicorn instead, and
  the caller turns the signal into exit code 130/143.
* ``DeadlineProtocol``: a request's head and body must arrive within a deadline.
* ``in_background`` runs a server in a thread for tests, benchmarks and embedding.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Protocol, TypeVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from nsplayer.netaddr import bind_error, resolve
from nsplayer.stopping import Stop

BACKLOG = 1024  # connection bursts queue in the kernel instead of being refused


def bind_tcp(host: str, port: int) -> socket.socket:
    """A listening, non-blocking TCP socket on host:port (port 0: any free port)."""
    family, kind, proto, _, addr = resolve(host, port, socket.SOCK_STREAM)
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":  # on Windows it would let a second server take the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise bind_error(exc, "TCP", host, port) from None
    sock.setblocking(False)
    return sock


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline per request: its head and body must arrive
    within ``request_timeout`` of the connection (or the last answer), else the connection
    is closed. uvicorn has no such timer, so a slow-loris client could hold it for ever.
    Give it to uvicorn as ``http=partial(DeadlineProtocol, request_timeout=...)``."""

    def __init__(self, *args: object, request_timeout: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._timeout = request_timeout
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _watch(self) -> None:
        """Armed while a request is awaited or arriving, disarmed once it is all in, or
        once a WebSocket protocol has taken the connection over."""
        upgraded = self.transport.get_protocol() is not self
        if upgraded or self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()
        elif self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self._timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.transport.close()


class StoppableUvicorn(uvicorn.Server):
    """uvicorn that leaves signal handlers alone and stops once ``stop`` is set."""

    def __init__(self, config: uvicorn.Config, stop: Stop | None = None) -> None:
        super().__init__(config)
        self.stop = stop or Stop()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def on_tick(self, counter: int) -> bool:
        return self.stop.signum is not None or await super().on_tick(counter)


class _Runnable(Protocol):
    @property
    def started(self) -> bool: ...

    def run(self) -> int | None: ...

    def stop(self) -> None: ...


R = TypeVar("R", bound=_Runnable)


@contextlib.contextmanager
def in_background(server: R) -> Iterator[R]:
    """``server.run()`` in a thread for the duration, once it has started."""
    thread = threading.Thread(target=server.run, name="nsplayer-asgi", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield server
    finally:
        server.stop()
        thread.join(30)
