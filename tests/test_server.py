"""`nsplayer serve`: the real server on a free loopback port, spoken to over real sockets."""

from __future__ import annotations

import http.client
import io
import json
import math
import multiprocessing
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from nsplayer.netaddr import is_loopback
from nsplayer.server import (
    API_PATH,
    BadAudio,
    Server,
    ServerSettings,
    answer_json,
    audio_blocks,
    running,
)


def speechlike(seconds: float, rate: int) -> np.ndarray:
    """Voiced syllables at ~4 Hz: a 140 Hz harmonic buzz under an on/off envelope."""
    t = np.arange(round(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.3 * buzz * envelope).astype(np.float32)


def encode(pcm: np.ndarray, rate: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    sf.write(buf, pcm, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def request(
    server: Server, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], dict]:
    """One plain HTTP request; the status, headers (lower-case names) and JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, headers, json.loads(resp.read() or b"null")
    finally:
        conn.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with running(ServerSettings(port=0, max_body=200_000, request_timeout=2.0)) as srv:
        yield srv


def test_health(server: Server) -> None:
    status, _, body = request(server, "GET", "/health")
    assert status == 200
    assert body == {"status": "ok", "model": "embedded", "rows": 61, "fps": 60}


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_containers_give_60_rows_per_second(server: Server, fmt: str) -> None:
    rate = 16000
    pcm = speechlike(1.3, rate)
    status, headers, body = request(server, "POST", API_PATH, encode(pcm, rate, fmt))
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    rows = np.asarray(body["blendshapes"])
    assert rows.shape == (math.ceil(1.3 * 60), 61)
    assert np.isfinite(rows).all()


@pytest.mark.parametrize(("query", "rate"), [("", 22050), ("?rate=16000", 16000)])
def test_raw_pcm_assumes_22050_unless_told(server: Server, query: str, rate: int) -> None:
    pcm = (speechlike(0.5, rate) * 32767).astype("<i2")
    status, _, body = request(server, "POST", API_PATH + query, pcm.tobytes())
    assert status == 200, body
    assert len(body["blendshapes"]) == 30


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        (API_PATH, b"RIFF\x00\x00\x00\x00WAVEjunk", "could not decode"),
        (API_PATH, b"\x01\x02\x03", "odd byte count"),
        (API_PATH, b"", "empty body"),
        (API_PATH + "?rate=fast", b"\x00\x00", "rate must be an integer"),
        (API_PATH + "?rate=5", b"\x00\x00", "out of range"),
        (API_PATH + "?rate=4000", b"\x00\x00", "out of range (8000–384000)"),
        (API_PATH + "?rate=16_000", b"\x00\x00", "rate must be an integer"),
        (API_PATH + "?rate=%2B16000", b"\x00\x00", "rate must be an integer"),
    ],
)
def test_undecodable_audio_is_400_json(server: Server, path: str, body: bytes, needle: str) -> None:
    status, headers, answer = request(server, "POST", path, body)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert needle in answer["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/nope", 404),
        ("DELETE", "/nope", 404),
        ("GET", API_PATH, 405),
        ("PUT", API_PATH, 405),
        ("POST", "/health", 405),
    ],
)
def test_routing_errors_are_json(server: Server, method: str, path: str, status: int) -> None:
    got, headers, body = request(server, method, path, b"" if method != "GET" else None)
    assert got == status
    assert body["status"] == status and body["error"]
    if status == 405:
        assert headers["allow"] in ("GET, HEAD, OPTIONS", "POST, OPTIONS")


def test_body_over_limit_is_413() -> None:
    with running(ServerSettings(port=0, max_body=1000)) as srv:
        status, _, body = request(srv, "POST", API_PATH, b"\x00" * 1002)
    assert status == 413
    assert "limit" in body["error"]


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send bytes, read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_missing_content_length_is_411(server: Server) -> None:
    answer = raw_exchange(server.port, f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 411")


def test_stalled_body_is_dropped_after_request_timeout(server: Server) -> None:
    head = f"POST {API_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
    assert raw_exchange(server.port, head + b"\x00" * 10) == b""  # closed, no answer
    assert request(server, "GET", "/health")[0] == 200  # and the server still serves


def test_68_rows_carry_neutral_emotion() -> None:
    with running(ServerSettings(port=0, rows=68)) as srv:
        wav = encode(speechlike(0.5, 16000), 16000, "WAV")
        status, _, body = request(srv, "POST", API_PATH, wav)
    rows = np.asarray(body["blendshapes"])
    assert status == 200 and rows.shape == (30, 68)
    assert (rows[:, 61 + 4] == 1.0).all() and (rows[:, [61, 62, 63, 64, 66, 67]] == 0).all()


def test_concurrent_requests_all_answered_identically(server: Server) -> None:
    wav = encode(speechlike(1.0, 16000), 16000, "WAV")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: request(server, "POST", API_PATH, wav), range(6)))
    assert {status for status, _, _ in answers} == {200}
    assert all(body == answers[0][2] for _, _, body in answers)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=600), st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS"]))
def test_audio_blocks_raise_only_badaudio(body: bytes, magic: bytes) -> None:
    try:
        rate, blocks = audio_blocks(magic + body)
        pcm = np.concatenate(list(blocks))
    except BadAudio:
        return
    assert pcm.dtype == np.float32 and pcm.ndim == 1 and 8000 <= rate <= 384000


def test_is_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


# --- the command ------------------------------------------------------------------------------


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "nsplayer.cli", "serve", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_cli_serves_and_stops_cleanly_on_signal() -> None:
    proc = start_cli("--port", "0")
    try:
        line = proc.stderr.readline()
        assert "serving the embedded model on http://127.0.0.1:" in line
        port = int(line.split("127.0.0.1:")[1].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "stopped" in err and "Traceback" not in err


def test_cli_port_in_use_is_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_cli("--port", str(port))
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert err.strip() == (
        f"nsplayer: error: cannot listen on TCP 127.0.0.1:{port}: the port is already in use — "
        f"stop the other program or pick another with --port"
    )


def test_cli_warns_when_not_loopback() -> None:
    proc = start_cli("--host", "0.0.0.0", "--port", "0")
    try:
        first = proc.stderr.readline()
        assert "serving" in proc.stderr.readline()  # stop handlers are in place
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert first.startswith("warning: listening on 0.0.0.0")
    assert proc.returncode == 143


def test_cli_quiet_keeps_the_warning_only() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = start_cli("--host", "0.0.0.0", "--port", str(port), "-q")
    try:
        first = proc.stderr.readline()
        deadline = time.monotonic() + 20
        while True:  # no "serving" line to wait for: ask until it answers
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/health")
                assert conn.getresponse().status == 200
                conn.close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert first.startswith("warning: listening on 0.0.0.0") and rest == ""
    assert proc.returncode == 143


def test_workers_are_processes_that_answer_like_one_worker() -> None:
    wav = encode(speechlike(1.0, 16000), 16000, "WAV")
    with running(ServerSettings(port=0)) as one, running(ServerSettings(port=0, workers=2)) as two:
        expected = request(one, "POST", API_PATH, wav)[2]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: request(two, "POST", API_PATH, wav), range(4)))
        assert len(multiprocessing.active_children()) >= 2
        status, _, bad = request(two, "POST", API_PATH, b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert all(status == 200 and body == expected for status, _, body in answers)
    assert status == 400 and "could not decode" in bad["error"]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 200), st.sampled_from([61, 68]), st.integers(0, 2**32 - 1))
def test_answer_json_is_the_rows_to_5_decimals(n: int, width: int, seed: int) -> None:
    frames = np.random.default_rng(seed).uniform(-1, 1, (n, width)).astype(np.float32)
    rows = json.loads(answer_json(frames))["blendshapes"]
    assert np.asarray(rows).reshape(n, width).shape == (n, width)
    np.testing.assert_allclose(np.asarray(rows).reshape(n, width), frames, atol=5.1e-6)
