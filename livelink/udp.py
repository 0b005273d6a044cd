"""UDP transport: LiveLinkSender (one or many targets, many subjects) and LiveLinkReceiver.

Each target gets its own *connected* non-blocking socket, so the ICMP "port unreachable"
of a target with no listener surfaces as ConnectionRefusedError on that socket only; it is
counted in ``errors`` and never stops the other targets or the caller.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from livelink.codec import TAIL, PacketError, check_values, decode, packet_header
from livelink.frame import FaceFrame
from livelink.frametime import FrameTime
from livelink.names import N_VALUES

DEFAULT_PORT = 11111
_NAMESPACE = uuid.UUID("5b0c3a4e-3f0e-4d0c-9a51-6e7370c1a7e1")  # nsplayer's uuid5 namespace
_RECV_SIZE = 65535  # read whole datagrams; oversized ones are then rejected by decode


def device_id_for(subject: str) -> str:
    """Stable 36-char device id for a subject: UE keys subjects by device id."""
    return str(uuid.uuid5(_NAMESPACE, subject))


def parse_target(target: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """``host:port``, ``[v6addr]:port``, ``host`` or a bare IPv6 address -> (host, port)."""
    text = target.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not sep or (rest and port_text is None):
            raise ValueError(f"bad target {target!r}: expected [ipv6]:port, e.g. [::1]:11111")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:  # plain host, or an IPv6 address without brackets (no port)
        host, port_text = text, None
    if not host:
        raise ValueError(f"bad target {target!r}: missing host, e.g. 127.0.0.1:11111")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad target {target!r}: port must be 1-65535, e.g. 127.0.0.1:11111")
    return host, int(port_text)


def _connect(target: str) -> socket.socket:
    host, port = parse_target(target)
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as exc:
        raise ValueError(f"bad target {target!r}: cannot resolve {host!r} ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    try:
        sock.connect(addr)
    except OSError as exc:
        sock.close()
        raise ValueError(f"bad target {target!r}: {exc.strerror or exc}") from None
    return sock


@dataclass
class _Subject:
    """One subject's packet, rebuilt in place per send: header fixed, tail and values packed."""

    buffer: bytearray
    tail_offset: int
    values: np.ndarray  # big-endian float32 view into ``buffer``


class LiveLinkSender:
    """Sends Live Link Face packets to one or more ``host:port`` targets.

    Hostnames are resolved once, here (ValueError for a bad or unresolvable target).
    ``send`` never raises for network errors: they are counted per packet and target in
    ``errors`` (``sent`` counts datagrams handed to the OS). Extra subjects can be sent from
    the same sender with ``send(..., subject=name)``; each gets a stable uuid5 device id.
    """

    def __init__(
        self,
        targets: Sequence[str] = (f"127.0.0.1:{DEFAULT_PORT}",),
        subject: str = "nsplayer",
        device_id: str | None = None,
    ) -> None:
        if isinstance(targets, str):
            targets = (targets,)
        if not targets:
            raise ValueError("no target: give at least one host:port, e.g. 127.0.0.1:11111")
        self.subject = subject
        self.device_id = device_id or device_id_for(subject)
        self.targets = tuple(targets)
        self.sent = 0
        self.errors = 0
        self.last_error: OSError | None = None
        self._sockets: list[socket.socket] = []
        self._subjects: dict[str, _Subject] = {}
        try:
            for target in self.targets:
                self._sockets.append(_connect(target))
            self._subject(subject)  # validates the names now, not at the first send
        except Exception:
            self.close()
            raise

    def add_subject(self, subject: str, device_id: str | None = None) -> None:
        """Another subject to send as (``device_id``: default a stable uuid5 of the name);
        raises ValueError for names the packet cannot carry."""
        self._subjects.pop(subject, None)
        self._subject(subject, device_id)

    def _subject(self, subject: str, device_id: str | None = None) -> _Subject:
        entry = self._subjects.get(subject)
        if entry is None:
            device = device_id or (
                self.device_id if subject == self.subject else device_id_for(subject)
            )
            header = packet_header(device, subject)
            buffer = bytearray(header) + bytearray(TAIL.size + 4 * N_VALUES)
            offset = len(header)
            view = np.frombuffer(buffer, ">f4", N_VALUES, offset + TAIL.size)
            entry = self._subjects[subject] = _Subject(buffer, offset, view)
        return entry

    def packet(self, values: np.ndarray, time: FrameTime, subject: str | None = None) -> bytes:
        """The packet ``send`` would send (for sending later, e.g. from another process)."""
        return bytes(self._pack(values, time, subject))

    def send(self, values: np.ndarray, time: FrameTime, subject: str | None = None) -> None:
        """Send one frame (61 finite values, protocol order) to every target."""
        self.send_packet(self._pack(values, time, subject))

    def send_packet(self, packet: bytes | bytearray) -> None:
        """Send ready-made packet bytes to every target."""
        for sock in self._sockets:
            try:
                sock.send(packet)
                self.sent += 1
            except OSError as exc:  # refused (ICMP), buffer full, network down...
                self.errors += 1
                self.last_error = exc

    @property
    def addresses(self) -> list[tuple[int, tuple]]:
        """(address family, socket address) of every target, as resolved at construction."""
        return [(sock.family, sock.getpeername()) for sock in self._sockets]

    def _pack(self, values: np.ndarray, time: FrameTime, subject: str | None) -> bytearray:
        entry = self._subject(subject or self.subject)
        values = np.asarray(values, dtype=np.float32)
        check_values(values)
        entry.values[:] = values
        TAIL.pack_into(
            entry.buffer, entry.tail_offset, time.frame, time.subframe, time.rate_num,
            time.rate_den, N_VALUES,
        )  # fmt: skip
        return entry.buffer

    def close(self) -> None:
        """Close the sockets; safe to call twice."""
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> LiveLinkSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveLinkReceiver:
    """Binds a UDP port and yields ``(FaceFrame, arrival time.monotonic(), sender address)``.

    ``port=0`` picks a free port (see ``.port``). Malformed datagrams are counted in
    ``malformed`` and skipped. Iteration ends after ``timeout`` seconds without a valid
    packet (None: never). A port already in use raises OSError saying so.
    """

    def __init__(
        self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", timeout: float | None = None
    ) -> None:
        self.timeout = timeout
        self.malformed = 0
        self.received = 0
        try:
            family, kind, proto, _, addr = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror as exc:
            raise OSError(f"cannot listen on {host!r}: {exc}") from None
        self._sock = socket.socket(family, kind, proto)
        try:
            self._sock.bind(addr)
        except OSError as exc:
            self._sock.close()
            raise OSError(
                exc.errno,
                f"cannot listen on UDP {host} port {port}: {exc.strerror or exc} — is another "
                "listener (Unreal Live Link, nsplayer listen) using it? Choose another port",
            ) from None
        self.host = host
        self.port: int = self._sock.getsockname()[1]

    def receive(self, timeout: float | None = None) -> tuple[FaceFrame, float, tuple] | None:
        """Next valid packet, or None if ``timeout`` seconds pass without one."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._sock.settimeout(remaining)
            try:
                data, addr = self._sock.recvfrom(_RECV_SIZE)
            except (TimeoutError, BlockingIOError):
                return None
            except ConnectionResetError:  # Windows reports ICMP errors on recvfrom
                continue
            arrival = time.monotonic()
            try:
                frame = decode(data)
            except PacketError:
                self.malformed += 1
                continue
            self.received += 1
            return frame, arrival, addr

    def __iter__(self) -> Iterator[tuple[FaceFrame, float, tuple]]:
        while (item := self.receive(self.timeout)) is not None:
            yield item

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> LiveLinkReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
