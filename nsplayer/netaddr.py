"""Host names and bind errors, shared by `serve`, `listen` and the NeuroSync client.

Kept free of nsplayer imports above errors.py, so models and servers can both use it.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from nsplayer.errors import NsplayerError

# EADDRINUSE / EADDRNOTAVAIL as Linux, macOS and Windows (WSAE*) number them
_IN_USE = {errno.EADDRINUSE, 48, 98, 10048}
_NOT_HERE = {errno.EADDRNOTAVAIL, 49, 99, 10049}


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (no key or audio leaves it)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_port(host: str, port: int) -> str:
    """``host:port`` as a URL writes it: IPv6 addresses in brackets (``[::]:11111``)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def bind_error(exc: OSError, what: str, host: str, port: int) -> NsplayerError:
    """One line for a failed bind that blames the right option (--host or --port)."""
    where = f"{what} {host_port(host, port)}"
    if exc.errno in _IN_USE:
        return NsplayerError(
            f"cannot listen on {where}: the port is already in use — stop the other "
            f"program or pick another with --port"
        )
    if exc.errno in _NOT_HERE:
        return NsplayerError(
            f"cannot listen on {where}: {host} is not an address of this machine — "
            f"check --host (127.0.0.1 for this machine only, 0.0.0.0 or :: for all)"
        )
    return NsplayerError(f"cannot listen on {where}: {exc.strerror or exc} — check --host/--port")


def resolve(host: str, port: int, kind: socket.SocketKind) -> tuple:
    """The first (family, type, proto, canonname, sockaddr) to bind; a --host that names no
    address is one line, said before anything is bound or announced."""
    try:
        return socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise NsplayerError(
            f"cannot listen on {host!r}: no such host or address — check --host "
            f"(e.g. 127.0.0.1, 0.0.0.0, ::1)"
        ) from None
