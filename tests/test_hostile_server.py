"""Hostile and careless input to `serve`, the NeuroSync client and `listen` (issue 13, 14).

Real servers on loopback, raw sockets for what a well-behaved client library would never
send, and headers built here with struct that declare absurd rates, lengths and channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial

import numpy as np
import pytest
import soundfile as sf
import uvicorn
from conftest import start_listen
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from livelink import FrameTime, LiveLinkSender
from nsplayer.asgi import DeadlineProtocol, StoppableUvicorn, bind_tcp, in_background
from nsplayer.errors import NsplayerError
from nsplayer.listen import Subjects, printable
from nsplayer.models.neurosync import HttpClient, NeuroSyncSettings
from nsplayer.server import (
    API_PATH,
    BadAudio,
    Server,
    ServerSettings,
    _file_blocks,
    _HungUp,
    infer_blocks,
    running,
)

KEY = "sk-hostile-9d2e61"
HEAP_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


# --- inputs built byte by byte -----------------------------------------------------------------


def wav_header(rate: int, channels: int = 1, data: bytes = b"\0" * 16) -> bytes:
    """A PCM_16 WAV: a 44-byte header and ``data``."""
    block = channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    return b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data


def flac_header(rate: int, channels: int = 1, total: int = 2**36 - 1) -> bytes:
    """A 42-byte FLAC: its STREAMINFO alone, declaring ``total`` samples."""
    packed = (rate << 44) | ((channels - 1) << 41) | (15 << 36) | total
    info = struct.pack(">HH", 4096, 4096) + b"\0" * 6 + packed.to_bytes(8, "big") + b"\0" * 16
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + info


def post(server: Server, body: bytes, query: str = "") -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        head = f"POST {API_PATH}{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body)
        return parse(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        if b"\r\n\r\n" in b"".join(chunks) and complete(b"".join(chunks)):
            break
    return b"".join(chunks)


def complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?i)content-length: *(\d+)", head)
    return match is not None and len(body) >= int(match.group(1))


def parse(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def raw(port: int, data: bytes, host: str = "127.0.0.1") -> bytes:
    """Send bytes while reading what comes back until the server closes the connection
    (an answer before the whole request is in, such as 413, is read, not lost in a reset)."""

    def send() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)

    chunks = []
    with socket.create_connection((host, port), timeout=20) as sock:
        sender = threading.Thread(target=send)
        sender.start()
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        sender.join()
    return b"".join(chunks)


@pytest.fixture
def server() -> Iterator[Server]:
    settings = ServerSettings(port=0, max_body=200_000, max_audio_s=5.0, request_timeout=1.0)
    with running(settings) as srv:
        yield srv


# --- serve: audio that lies about itself -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (wav_header(1_000_000_000), "sample rate 1000000000 Hz is out of range"),
        (wav_header(100_000_000), "sample rate 100000000 Hz is out of range"),
        (wav_header(4000), "sample rate 4000 Hz is out of range"),
        (wav_header(16000, channels=1000, data=b"\0" * 4000), "1000 channels is out of range"),
        (flac_header(96000), "longer than the limit of 5 s"),  # 198 h in 42 bytes
        (flac_header(655350), "sample rate 655350 Hz is out of range"),
        (flac_header(16000, total=0), "gives no length"),
    ],
)
def test_headers_are_checked_before_decoding(server: Server, body: bytes, needle: str) -> None:
    status, headers, answer = post(server, body)
    assert status == 400 and headers["content-type"] == "application/json"
    assert needle in json.loads(answer)["error"]


def test_raw_pcm_longer_than_the_limit_is_400(server: Server) -> None:
    status, _, answer = post(server, b"\0\0" * 8000 * 6, "?rate=8000")  # 6 s > 5 s
    assert status == 400 and "longer than the limit of 5 s" in json.loads(answer)["error"]


def test_decoding_stops_at_the_limit_whatever_the_header_said() -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(3 * 8000, np.float32), 8000, format="WAV", subtype="PCM_16")
    blocks = _file_blocks(sf.SoundFile(io.BytesIO(buf.getvalue())), max_audio_s=1.5)
    with pytest.raises(BadAudio, match="longer than the limit"):
        list(blocks)


def test_a_hung_up_client_stops_the_model_at_the_next_block() -> None:
    fed = []

    def blocks() -> Iterator[np.ndarray]:
        for _ in range(100):
            fed.append(1)
            yield np.zeros(16000, np.float32)

    with pytest.raises(_HungUp):
        infer_blocks(blocks(), 16000, hung_up=lambda: len(fed) >= 2)
    assert len(fed) == 2


# --- serve: the HTTP layer ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [b"1_0", b"+10", b"0x10", b"10, 11"])
def test_odd_content_lengths_are_refused(server: Server, length: bytes) -> None:
    head = b"POST " + API_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
    answer = raw(server.port, head + b"\r\n\r\n" + b"\0" * 10)
    assert answer.startswith(b"HTTP/1.1 400")


def test_chunked_and_content_length_together_are_refused(server: Server) -> None:
    head = (
        f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n4\r\n\0\0\0\0\r\n0\r\n\r\n"
    )
    assert raw(server.port, head.encode()).startswith(b"HTTP/1.1 400")


def test_chunked_body_over_the_limit_is_413(server: Server) -> None:
    chunk = b"\0" * 100_000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, answer = parse(raw(server.port, head.encode() + body))
    assert status == 413 and "limit of 200000 bytes" in json.loads(answer)["error"]


def trickle(port: int, data: bytes, period: float = 0.05) -> tuple[bytes, int]:
    """Send ``data`` a byte at a time; return what came back and how many bytes got out
    before the server closed the connection (or all of them, then wait for the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.settimeout(period)
        sent = 0
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
                sent += 1
                if sock.recv(65536) == b"":
                    return b"", sent
            except TimeoutError:
                continue
            except OSError:
                return b"", sent
        sock.settimeout(20)
        return sock.recv(65536), sent


def test_header_trickle_is_cut_off_at_the_request_timeout(server: Server) -> None:
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * 400}\r\n".encode()
    answer, sent = trickle(server.port, head)  # 20 bytes/s: 22 s for all of it
    assert answer == b"" and sent < len(head)  # closed after about 1 s


def test_body_trickle_is_cut_off_at_the_request_timeout(server: Server) -> None:
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\n".encode()
    answer, sent = trickle(server.port, head + b"\0" * 400, period=0.01)
    assert answer == b"" and sent < len(head) + 400


def test_connections_beyond_the_cap_get_503() -> None:
    with running(ServerSettings(port=0, max_connections=4)) as srv:
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(3)]
        try:
            time.sleep(0.2)  # the server has accepted them
            answer = raw(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        finally:
            for sock in idle:
                sock.close()
        assert answer.startswith(b"HTTP/1.1 503")
        assert raw(srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[
            :12
        ] == (b"HTTP/1.1 200")


def test_requests_beyond_workers_and_queue_get_503_with_retry_after() -> None:
    with running(ServerSettings(port=0, workers=1, queue=0)) as srv:
        head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as holder:
            holder.sendall(head.encode())  # admitted, its body still to come: the one slot
            time.sleep(0.2)
            status, headers, answer = post(srv, wav_header(16000))
            assert status == 503 and headers["retry-after"] == "1"
            assert json.loads(answer) == {"error": "server busy — retry in a moment", "status": 503}
        status, _, _ = post(srv, wav_header(16000))  # the slot is free again
        assert status == 200


@pytest.mark.parametrize(
    ("request_line", "status", "allow"),
    [
        ("HEAD /health", 200, None),
        ("OPTIONS /health", 204, "GET, HEAD, OPTIONS"),
        (f"OPTIONS {API_PATH}", 204, "POST, OPTIONS"),
        (f"HEAD {API_PATH}", 405, "POST, OPTIONS"),
        ("TRACE /health", 405, "GET, HEAD, OPTIONS"),
        ("PATCH /nope", 404, None),
    ],
)
def test_other_methods_are_sane(server: Server, request_line: str, status: int, allow) -> None:
    request = f"{request_line} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(server.port, request.encode())
    got, headers, body = parse(answer)
    assert got == status and headers.get("allow") == allow
    assert b"<html" not in body.lower() and not HEAP_ADDRESS.search(body.decode())
    if status >= 400 and not request_line.startswith("HEAD"):
        assert json.loads(body)["status"] == status


def test_error_bodies_show_no_heap_address(server: Server) -> None:
    for body, query in [(b"RIFF" + b"\xff" * 60, ""), (b"\0", ""), (b"\0\0", "?rate=x")]:
        status, _, answer = post(server, body, query)
        assert status == 400 and not HEAP_ADDRESS.search(answer.decode())


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv_cm = running(ServerSettings(host="::1", port=0))
        srv = srv_cm.__enter__()
    except NsplayerError as exc:
        pytest.skip(f"IPv6 loopback unavailable: {exc}")
    try:
        assert srv.url == f"http://[::1]:{srv.port}{API_PATH}"
        answer = raw(
            srv.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "::1"
        )
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        srv_cm.__exit__(None, None, None)


# --- serve: the command ------------------------------------------------------------------------


def serve_cli(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsplayer.cli", "serve", "--port", "0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stderr.readline()
    assert "serving the embedded model on http://127.0.0.1:" in line, line
    return proc, int(line.split("127.0.0.1:")[1].split("/")[0])


def test_sigterm_does_not_wait_for_slow_clients() -> None:
    proc, port = serve_cli("--request-timeout", "120")
    try:
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"POST /audio_to_blendshapes HTTP/1.1\r\nHost")  # and nothing more
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)  # not the 120 s the client could take
        slow.close()
    finally:
        proc.kill()
    assert proc.returncode == 143 and "stopped" in err and "Traceback" not in err


def test_client_hanging_up_mid_inference_costs_no_traceback() -> None:
    proc, port = serve_cli()
    try:
        buf = io.BytesIO()
        sf.write(buf, np.zeros(120 * 16000, np.float32), 16000, format="WAV", subtype="PCM_16")
        body = buf.getvalue()
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
                sock.sendall(head.encode() + body)
        answer = raw(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err and "Exception" not in err


def test_unresolvable_host_is_one_line_before_any_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "serve", "--host", "nonsense.invalid"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "nsplayer: error: cannot listen on 'nonsense.invalid': no such host or address — "
        "check --host (e.g. 127.0.0.1, 0.0.0.0, ::1)"
    ]


# --- the NeuroSync client: where the key goes --------------------------------------------------


class Capture:
    """A TCP listener that records every byte anyone sends it."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.got = bytearray()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    while chunk := conn.recv(65536):
                        self.got += chunk
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.skipif(sys.platform != "linux", reason="all of 127/8 is loopback on Linux only")
def test_backslash_url_cannot_carry_the_key_past_the_plain_http_rule() -> None:
    capture = Capture("127.0.0.3")  # where urllib3 would connect; urlsplit saw 127.0.0.1
    try:
        url = f"http://127.0.0.3:{capture.port}\\@127.0.0.1:9/audio_to_blendshapes"
        with pytest.raises(NsplayerError, match="backslash") as err:
            client = HttpClient(NeuroSyncSettings(url=url, api_key=KEY, retries=0))
            client.post(b"RIFF", 1)  # only reached without the fix: it would send the key
        time.sleep(0.2)
    finally:
        capture.close()
    assert KEY.encode() not in capture.got and KEY not in str(err.value)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://user:pw@127.0.0.1:5000/x", "user:password@"),
        ("http://127.0.0.1:5000/x y", "space"),
        ("http://127.0.0.1:5000/\tx", "control character"),
        ("ftp://127.0.0.1/x", "not an http(s) URL"),
        ("http:///x", "not an http(s) URL"),
    ],
)
def test_urls_that_parsers_read_differently_are_refused(url: str, needle: str) -> None:
    with pytest.raises(NsplayerError, match=re.escape(needle)):
        HttpClient(NeuroSyncSettings(url=url, api_key=KEY))


class Answering:
    """An HTTP server giving each request the next of ``replies`` (status, body, extra
    header lines), the last one for ever after; it notes when each request arrived."""

    def __init__(self, *replies: tuple[int, bytes, str]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}{API_PATH}"
        self.replies = [
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s"
            % (status, len(body), extra.encode(), body)
            for status, body, extra in replies
        ]
        self.arrivals: list[float] = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not complete(data):
                    data += conn.recv(65536)
                self.arrivals.append(time.monotonic())
                conn.sendall(self.replies[min(len(self.arrivals), len(self.replies)) - 1])


def error_from(status: int, body: bytes) -> str:
    server = Answering((status, body, ""))
    client = HttpClient(NeuroSyncSettings(url=server.url, api_key=KEY, retries=0))
    try:
        with pytest.raises(NsplayerError) as err:
            client.post(b"\0\0", 1)
    finally:
        client.close()
        server.sock.close()
    return str(err.value)


@pytest.mark.parametrize("offset", [190, 195, 199, 4090])
def test_a_key_straddling_the_cut_is_masked(offset: int) -> None:
    message = error_from(400, b"z" * offset + KEY.encode() + b"z" * 50)
    assert not any(KEY[:n] in message for n in range(4, len(KEY) + 1))


def test_a_busy_server_is_asked_again_after_its_retry_after() -> None:
    rows = json.dumps({"blendshapes": [[0.1] * 61] * 6}).encode()
    busy = (503, b'{"error": "server busy"}', "Retry-After: 1\r\n")
    server = Answering(busy, (200, rows, ""))
    client = HttpClient(NeuroSyncSettings(url=server.url, retries=1))
    try:
        got = client.post(b"\0\0", 6)
    finally:
        client.close()
        server.sock.close()
    assert got.shape == (6, 61)
    assert server.arrivals[1] - server.arrivals[0] >= 1.0  # not the 0.2 s backoff


def test_a_server_busy_to_the_end_says_so() -> None:
    message = error_from(503, b'{"error": "server busy"}')
    assert "is busy (HTTP 503)" not in message  # no Retry-After: an ordinary 5xx
    server = Answering((503, b"busy", "Retry-After: 0\r\n"))
    client = HttpClient(NeuroSyncSettings(url=server.url, retries=1))
    with pytest.raises(NsplayerError, match=r"is busy \(HTTP 503\) busy — try again later"):
        client.post(b"\0\0", 1)
    client.close()
    server.sock.close()


def test_5xx_says_what_failed() -> None:
    message = error_from(500, b'{"error": "CUDA out of memory"}')
    assert message.endswith(
        'failed: HTTP 500 {"error": "CUDA out of memory"} — see the server\'s log, '
        "or use --model embedded"
    )


# --- listen ------------------------------------------------------------------------------------


def test_subjects_are_capped_whatever_the_flood() -> None:
    from livelink import FaceFrame

    subjects = Subjects(cap=64)
    for i in range(5000):
        subjects.add(FaceFrame(np.zeros(61, np.float32), f"s{i}", "id", FrameTime(i)), i)
    assert len(subjects) == 64 and subjects.forgotten == 4936
    assert list(subjects.shown(5000.0))[-1] == "s4999"
    assert subjects.names().endswith("and 4936 more")


def test_a_flood_of_names_over_the_wire_keeps_the_output_bounded() -> None:
    proc, port = start_listen("--timeout", "2")
    values = np.zeros(61, np.float32)
    for i in range(3000):
        with LiveLinkSender([f"127.0.0.1:{port}"], subject=f"flood-{i}-{'x' * 30}") as sender:
            sender.send(values, FrameTime(i))
        if i % 100 == 0:
            time.sleep(0.005)  # within the socket's receive buffer, mostly
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = err.strip().splitlines()[-1]
    packets = int(re.search(r"listen: (\d+) packets", summary).group(1))
    assert packets > 1000 and f"and {packets - 64} more" in summary  # one name each
    assert max(len(line) for line in out.splitlines()) < 64 * 120


def test_names_from_the_network_reach_the_terminal_escaped() -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eevil"
    assert printable(evil) == "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil"
    proc, port = start_listen("--count", "3", "--timeout", "20")
    with LiveLinkSender([f"127.0.0.1:{port}"], subject=evil, device_id="\x1b[31mred") as sender:
        for i in range(3):
            sender.send(np.zeros(61, np.float32), FrameTime(i))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    for text in (out, err):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b]0;pwned" in err


@pytest.mark.parametrize(
    ("host", "needle"),
    [
        ("10.9.9.9", "10.9.9.9 is not an address of this machine — check --host"),
        ("nonsense.invalid", "'nonsense.invalid': no such host or address — check --host"),
    ],
)
def test_listen_blames_the_host_not_the_port(host: str, needle: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "listen", "--host", host, "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("nsplayer: error: ") and needle in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "port" not in proc.stderr.split("—")[0][-30:]


def test_listen_on_all_ipv6_addresses_prints_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsplayer.cli", "listen", "--host", "::", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    if "cannot listen" in line:
        pytest.skip("no IPv6 here")
    assert re.match(r"listening on UDP \[::\]:\d+ \(Ctrl-C to stop\)", line), line


# --- the uvicorn glue that serve and stage share -----------------------------------------------


class _Echo:
    """A WebSocket echo app behind DeadlineProtocol, runnable by in_background."""

    def __init__(self, request_timeout: float) -> None:
        async def echo(ws: WebSocket) -> None:
            await ws.accept()
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await ws.send_text(await ws.receive_text())

        config = uvicorn.Config(
            Starlette(routes=[WebSocketRoute("/ws", echo)]),
            loop="asyncio",
            http=partial(DeadlineProtocol, request_timeout=request_timeout),
            ws="websockets-sansio",
            lifespan="off",
            log_config=None,
        )
        self.socket = bind_tcp("127.0.0.1", 0)
        self.port = self.socket.getsockname()[1]
        self._server = StoppableUvicorn(config)

    @property
    def started(self) -> bool:
        return self._server.started

    def run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self.socket]))

    def stop(self) -> None:
        self._server.should_exit = True


def test_a_websocket_outlives_the_request_deadline() -> None:
    """The deadline times a request, not the WebSocket that a request became (stage)."""
    client = pytest.importorskip("websockets.sync.client")
    with in_background(_Echo(request_timeout=0.3)) as app:
        with client.connect(f"ws://127.0.0.1:{app.port}/ws") as ws:
            time.sleep(0.8)
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here"
        answer, _ = trickle(app.port, b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 400)
        assert answer == b""  # while a plain slow request is still cut off
