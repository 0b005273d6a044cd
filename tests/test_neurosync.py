"""`--model neurosync`: the HTTP client against `nsplayer serve` and against tiny misbehaving
stdlib servers, one per fault, all on real loopback sockets."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from livelink import read_csv
from livelink.names import JAW_OPEN
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.fallback import FallbackModel
from nsplayer.models.neurosync import HttpClient, NeuroSyncModel, NeuroSyncSettings, wav_bytes
from nsplayer.server import API_PATH, ServerSettings, infer, running

RATE = 16000
KEY = "sk-E5-distinctive-7f3a9c"


def speechlike(seconds: float, rate: int = RATE) -> np.ndarray:
    """Voiced syllables of varying rhythm: a harmonic buzz under an on/off envelope."""
    t = np.arange(round(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 10))
    envelope = np.clip(np.sin(2 * np.pi * (3 + np.sin(t)) * t), 0, None) ** 2
    return (0.3 * buzz * envelope).astype(np.float32)


def run(model: NeuroSyncModel, pcm: np.ndarray, chunk: int = 4000) -> np.ndarray:
    """Feed in chunks, flush, close; return all frames."""
    parts = [model.feed(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    parts.append(model.flush())
    model.close()
    return np.concatenate([p for p in parts if len(p)])


def settings(url: str, **kw: object) -> NeuroSyncSettings:
    base = dict(connect_timeout=1.0, read_timeout=5.0, retries=1, segment_s=4.0, overlap_s=1.0)
    return dataclasses.replace(NeuroSyncSettings(url=url), **{**base, **kw})


@pytest.fixture(scope="module")
def serve_url() -> Iterator[str]:
    """`nsplayer serve`'s server on a free loopback port."""
    with running(ServerSettings(port=0)) as server:
        yield server.url


# --- against nsplayer serve -------------------------------------------------------------------


def test_short_file_is_one_request_with_exact_frames(serve_url: str) -> None:
    pcm = speechlike(1.5)
    frames = run(NeuroSyncModel(RATE, 60, settings(serve_url)), pcm)
    sent, _ = sf.read(io.BytesIO(wav_bytes(pcm, RATE)), dtype="float32")  # as 16-bit WAV
    np.testing.assert_allclose(frames, infer(sent, RATE), atol=1e-4)


@pytest.mark.parametrize(
    ("seconds", "rate", "fps"),
    [(13.7, 16000, 60), (9.05, 22050, 60), (11.3, 16000, 30), (6.01, 44100, 50)],
)
def test_long_file_frame_count_is_exact(
    serve_url: str, seconds: float, rate: int, fps: int
) -> None:
    pcm = speechlike(seconds, rate)
    frames = run(NeuroSyncModel(rate, fps, settings(serve_url)), pcm, chunk=rate // 10)
    assert frames.shape == (math.ceil(len(pcm) * fps / rate), 61)
    assert np.isfinite(frames).all()


def test_feed_returns_frames_before_the_end(serve_url: str) -> None:
    """Playback can start after the first segment: feed never waits, frames arrive."""
    model = NeuroSyncModel(RATE, 60, settings(serve_url))
    got = model.feed(speechlike(9.0))
    for _ in range(1000):
        if len(got):
            break
        threading.Event().wait(0.01)
        got = model.feed(np.zeros(0, np.float32))
    assert 180 <= len(got) < 540  # at least the first segment's, not everything
    assert len(got) + len(model.flush()) == 540
    model.close()


def test_seams_are_continuous(serve_url: str) -> None:
    """Stitched curves jump no more at seams than the model's own frame-to-frame change."""
    pcm = speechlike(20.0)
    frames = run(NeuroSyncModel(RATE, 60, settings(serve_url)), pcm)
    whole = infer(pcm, RATE)
    own_step = np.abs(np.diff(whole, axis=0)).max(axis=0)
    our_step = np.abs(np.diff(frames, axis=0))
    assert (our_step <= own_step + 0.05).all()
    assert np.abs(frames - whole).mean() < 0.05  # close to one whole-file request


def test_chunking_does_not_change_the_result(serve_url: str) -> None:
    pcm = speechlike(10.0)
    a = run(NeuroSyncModel(RATE, 60, settings(serve_url)), pcm, chunk=len(pcm))
    b = run(NeuroSyncModel(RATE, 60, settings(serve_url)), pcm, chunk=333)
    np.testing.assert_array_equal(a, b)


def test_factory_builds_it_with_the_failure_rule_around_it(serve_url: str) -> None:
    model = create_model("neurosync", RATE, 60, causal=False, settings=settings(serve_url))
    assert isinstance(model, FallbackModel) and isinstance(model.primary, NeuroSyncModel)
    model.close()


# --- misbehaving servers ----------------------------------------------------------------------


Behaviour = Callable[[BaseHTTPRequestHandler, int, bytes], None]


def answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, length: int | None = None):
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def rows_for(body: bytes, width: int = 61, value: float = 0.2) -> list[list[float]]:
    info = sf.info(io.BytesIO(body))
    return [[value] * width] * math.ceil(info.frames * 60 / info.samplerate)


def good(handler: BaseHTTPRequestHandler, n: int, body: bytes) -> None:
    answer(handler, 200, json.dumps({"blendshapes": rows_for(body)}).encode())


class Faulty:
    """A stdlib server whose ``behaviour(handler, request_number, body)`` answers."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.count = 0
        self.lock = threading.Lock()
        self.headers: list[dict[str, str]] = []
        faulty = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with faulty.lock:
                    faulty.count += 1
                    n = faulty.count
                faulty.headers.append(dict(self.headers))
                behaviour(self, n, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *_: None  # clients hanging up on purpose
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{API_PATH}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def kill(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def faulty() -> Iterator[Callable[[Behaviour], Faulty]]:
    made: list[Faulty] = []
    yield lambda behaviour: made.append(Faulty(behaviour)) or made[-1]
    for f in made:
        f.kill()


def test_500_then_success_is_retried(faulty) -> None:
    def flaky(h, n, body):
        if n == 1:
            answer(h, 500, b'{"error": "busy"}')
        else:
            good(h, n, body)

    srv = faulty(flaky)
    frames = run(NeuroSyncModel(RATE, 60, settings(srv.url)), speechlike(1.0))
    assert srv.count == 2 and frames.shape == (60, 61)


@pytest.mark.parametrize("inflight", [1, 2])
def test_at_most_max_inflight_requests_at_once(faulty, inflight: int) -> None:
    state = {"now": 0, "most": 0}
    lock = threading.Lock()

    def counting(h, n, body):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        threading.Event().wait(0.05)  # overlap the requests the client allows
        with lock:
            state["now"] -= 1
        good(h, n, body)

    srv = faulty(counting)
    pcm = speechlike(20.0)  # fed at once: every segment is queued immediately
    run(NeuroSyncModel(RATE, 60, settings(srv.url, max_inflight=inflight)), pcm, len(pcm))
    assert srv.count >= 6 and state["most"] <= inflight


def test_400_is_not_retried(faulty) -> None:
    srv = faulty(lambda h, n, body: answer(h, 400, b'{"error": "bad audio"}'))
    with pytest.raises(NsplayerError, match=r"refused the request: HTTP 400"):
        run(NeuroSyncModel(RATE, 60, settings(srv.url, retries=3)), speechlike(1.0))
    assert srv.count == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"blendshapes": []}', "no blendshapes"),
        (b'{"frames": [[0.1]]}', "no blendshapes"),
        (b'{"blendshapes": [[0.1, 0.2], [0.3]]}', "ragged rows"),
        (json.dumps({"blendshapes": [["a"] * 61]}).encode(), "not lists of numbers"),
        (json.dumps({"blendshapes": [[[0.1]] * 61]}).encode(), "not lists of numbers"),
        (b'{"blendshapes": [0.1, 0.2]}', "ragged rows or rows that are not lists"),
        (json.dumps({"blendshapes": [[0.1] * 13] * 60}).encode(), "rows of 13 values"),
        (json.dumps({"blendshapes": [[0.1] * 61] * 5}).encode(), "returned 5 rows"),
    ],
)
def test_bad_payloads_are_clear_errors(faulty, payload: bytes, message: str) -> None:
    srv = faulty(lambda h, n, body: answer(h, 200, payload))
    with pytest.raises(NsplayerError, match=message):
        run(NeuroSyncModel(RATE, 60, settings(srv.url)), speechlike(1.0))


def test_nan_and_wild_values_are_sanitized_with_one_warning(faulty, caplog) -> None:
    def wild(h, n, body):
        rows = rows_for(body)
        rows[3] = [float("nan")] * 61
        rows[4] = [float("inf")] + [1e9] * 60
        answer(h, 200, json.dumps({"blendshapes": rows}).encode())

    srv = faulty(wild)
    with caplog.at_level(logging.WARNING):
        frames = run(NeuroSyncModel(RATE, 60, settings(srv.url)), speechlike(10.0))
    assert np.isfinite(frames).all() and np.abs(frames).max() <= 1.0
    assert len([r for r in caplog.records if "NaN" in r.getMessage()]) == 1


NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))
JSON = st.recursive(
    st.none() | st.booleans() | NUMBERS | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=20,
)
ROWS = st.lists(st.lists(NUMBERS, min_size=61, max_size=61), min_size=1, max_size=4)


@hsettings(max_examples=200, deadline=None)
@given(st.one_of(JSON, st.builds(lambda rows: {"blendshapes": rows}, ROWS)))
def test_any_json_answer_is_an_error_or_clean_rows(payload: object) -> None:
    client = HttpClient(NeuroSyncSettings(url="http://127.0.0.1:9/x"))
    try:
        rows = client._parse(json.dumps(payload).encode())
    except NsplayerError:
        return
    finally:
        client.close()
    assert rows.dtype == np.float32 and rows.shape[1] in (61, 68)
    assert np.isfinite(rows).all() and np.abs(rows).max() <= 1.0


def test_68_value_rows_pass_through(faulty) -> None:
    srv = faulty(
        lambda h, n, body: answer(h, 200, json.dumps({"blendshapes": rows_for(body, 68)}).encode())
    )
    frames = run(NeuroSyncModel(RATE, 60, settings(srv.url)), speechlike(9.0))
    assert frames.shape == (540, 68)


def test_slow_server_times_out(faulty) -> None:
    release = threading.Event()
    srv = faulty(lambda h, n, body: release.wait(5) or good(h, n, body))
    try:
        with pytest.raises(NsplayerError, match=r"did not answer within 0.3 s"):
            run(NeuroSyncModel(RATE, 60, settings(srv.url, read_timeout=0.3)), speechlike(1.0))
    finally:
        release.set()


def test_connection_closed_mid_body_is_retried_then_reported(faulty) -> None:
    srv = faulty(lambda h, n, body: answer(h, 200, b'{"blendshapes": [[0.1', length=100_000))
    with pytest.raises(NsplayerError, match="broke off mid-response"):
        run(NeuroSyncModel(RATE, 60, settings(srv.url, retries=2)), speechlike(1.0))
    assert srv.count == 3


def test_oversized_answer_is_refused(faulty) -> None:
    srv = faulty(lambda h, n, body: answer(h, 200, b" " * 3_000_000))
    with pytest.raises(NsplayerError, match="more than"):
        run(NeuroSyncModel(RATE, 60, settings(srv.url)), speechlike(1.0))


def test_redirects_are_not_followed(faulty) -> None:
    def redirect(h, n, body):
        h.send_response(307)
        h.send_header("Location", "http://203.0.113.9/steal")
        h.send_header("Content-Length", "0")
        h.end_headers()

    srv = faulty(redirect)
    with pytest.raises(NsplayerError, match="redirects"):
        run(NeuroSyncModel(RATE, 60, settings(srv.url, api_key=KEY)), speechlike(1.0))
    assert srv.count == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_clear_line() -> None:
    url = f"http://127.0.0.1:{free_port()}{API_PATH}"
    with pytest.raises(NsplayerError) as err:
        run(NeuroSyncModel(RATE, 60, settings(url, retries=0)), speechlike(1.0))
    assert str(err.value) == (
        f"model server not reachable at {url} — is the NeuroSync Local API running? "
        f"or use --model embedded"
    )


# --- server killed mid-play -------------------------------------------------------------------


def killed_after_first(faulty) -> Faulty:
    """Answers the first request, then dies: every later request finds nobody listening."""

    def once(h, n, body):
        if n == 1:
            good(h, n, body)
            threading.Thread(target=srv.kill).start()
        else:
            h.close_connection = True  # raced in before the kill: drop it

    srv = faulty(once)
    return srv


def with_rule(url: str, fps: int = 60, **kwargs) -> tuple[FallbackModel, list[str]]:
    """The NeuroSync model as create_model builds it, with its failure rule; the lines it
    reports."""
    lines: list[str] = []
    model = create_model(
        "neurosync",
        RATE,
        fps,
        causal=False,
        settings=settings(url, max_inflight=1, retries=0, **kwargs),
        report=lines.append,
    )
    return model, lines


def test_killed_server_falls_back_to_embedded(faulty) -> None:
    srv = killed_after_first(faulty)
    model, lines = with_rule(srv.url)
    frames = run(model, speechlike(14.0))
    assert frames.shape == (840, 61) and np.isfinite(frames).all()
    assert (frames[:180] == np.float32(0.2)).all()  # the server's first answer
    assert not (frames[240:] == np.float32(0.2)).all()  # the embedded model's
    assert len(lines) == 1 and "continuing with the embedded model" in lines[0]


def test_killed_server_goes_idle(faulty) -> None:
    srv = killed_after_first(faulty)
    model, _ = with_rule(srv.url, 30, on_model_error="idle")
    frames = run(model, speechlike(14.0))
    assert frames.shape == (420, 61)
    idle = model.idle_from_frame
    assert idle is not None and 90 <= idle <= 120  # the first segment: 3-4 s at 30 fps
    assert (frames[idle:] == 0).all() and (frames[:idle] == np.float32(0.2)).all()


def test_killed_server_stops(faulty) -> None:
    srv = killed_after_first(faulty)
    model, _ = with_rule(srv.url, on_model_error="stop")
    with pytest.raises(NsplayerError, match=r"127\.0\.0\.1"):
        run(model, speechlike(14.0))


def test_cli_server_killed_mid_play_shows_the_idle_face(faulty, tmp_path) -> None:
    """--on-model-error idle: after the failure the player animates idle, not zero rows."""
    srv = killed_after_first(faulty)
    (tmp_path / "nsplayer.yaml").write_text("neurosync:\n  segment_s: 2\n  overlap_s: 0.5\n")
    sent = tmp_path / "sent.csv"
    proc = play_cli(
        tmp_path, srv.url, "--on-model-error", "idle", "--save-csv", str(sent), seconds=4.0
    )
    assert proc.returncode == 0, proc.stderr
    assert "showing the idle face" in proc.stderr
    jaw = read_csv(sent).values[:, JAW_OPEN]
    assert (jaw[-30:] >= 0.015).all()  # the idle face's relaxed jaw (zero rows would give 0)


# --- the API key ------------------------------------------------------------------------------


def test_key_goes_in_the_header_only(faulty, caplog) -> None:
    srv = faulty(lambda h, n, body: answer(h, 403, json.dumps({"error": f"bad {KEY}"}).encode()))
    with caplog.at_level(logging.DEBUG), pytest.raises(NsplayerError) as err:
        run(NeuroSyncModel(RATE, 60, settings(srv.url, api_key=KEY)), speechlike(1.0))
    assert srv.headers[0]["API-Key"] == KEY
    assert srv.headers[0]["Content-Type"] == "application/octet-stream"
    assert KEY not in str(err.value) and "check --api-key" in str(err.value)
    assert KEY not in caplog.text
    assert KEY not in repr(settings(srv.url, api_key=KEY))


def test_key_is_not_sent_over_plain_http_to_other_hosts() -> None:
    url = "http://203.0.113.7:5000/audio_to_blendshapes"
    with pytest.raises(NsplayerError, match="refusing to send the API key") as err:
        NeuroSyncModel(RATE, 60, settings(url, api_key=KEY))
    assert KEY not in str(err.value)
    NeuroSyncModel(RATE, 60, settings(url, api_key=KEY, allow_insecure=True)).close()
    NeuroSyncModel(RATE, 60, settings("https://203.0.113.7/x", api_key=KEY)).close()
    NeuroSyncModel(RATE, 60, settings(url)).close()  # no key, nothing to protect


# --- the command line -------------------------------------------------------------------------


def play_cli(tmp_path, url: str, *args: str, seconds: float = 1.0, env: dict | None = None):
    """`nsplayer play` with --model neurosync on the null sink; returns the finished process."""
    wav = tmp_path / "speech.wav"
    sf.write(wav, speechlike(seconds), RATE, subtype="PCM_16")
    command = [
        sys.executable,
        "-m",
        "nsplayer.cli",
        "play",
        str(wav),
        "--no-audio",
        "--model",
        "neurosync",
        "--url",
        url,
        "--target",
        "127.0.0.1:9",
        "-v",
        *args,
    ]
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, env=environ, cwd=tmp_path
    )


def assert_no_key(proc: subprocess.CompletedProcess) -> None:
    assert KEY not in proc.stdout and KEY not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_sends_the_key_and_never_shows_it(faulty, tmp_path) -> None:
    srv = faulty(good)
    proc = play_cli(tmp_path, srv.url, "--api-key", KEY)
    assert proc.returncode == 0, proc.stderr
    assert_no_key(proc)
    assert srv.headers and all(h["API-Key"] == KEY for h in srv.headers)


def test_cli_key_from_environment_and_server_errors(faulty, tmp_path) -> None:
    srv = faulty(lambda h, n, body: answer(h, 401, json.dumps({"error": KEY}).encode()))
    proc = play_cli(tmp_path, srv.url, env={"NSPLAYER_API_KEY": KEY})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("nsplayer: error: model server at")
    assert_no_key(proc)
    assert srv.headers[0]["API-Key"] == KEY


def test_cli_refuses_key_over_plain_http(tmp_path) -> None:
    proc = play_cli(tmp_path, "http://203.0.113.7:5000/audio_to_blendshapes", "--api-key", KEY)
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("nsplayer: error: refusing to send the API key")
    assert_no_key(proc)


def test_cli_unreachable_server_is_one_line(tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}{API_PATH}"
    proc = play_cli(tmp_path, url, "--api-key", KEY)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"nsplayer: error: model server not reachable at {url} — is the NeuroSync Local API "
        f"running? or use --model embedded"
    )
    assert_no_key(proc)


@pytest.mark.parametrize(("policy", "code"), [("embedded", 0), ("stop", 1)])
def test_cli_server_killed_mid_play(faulty, tmp_path, policy: str, code: int) -> None:
    srv = killed_after_first(faulty)
    (tmp_path / "nsplayer.yaml").write_text("neurosync:\n  segment_s: 2\n  overlap_s: 0.5\n")
    proc = play_cli(tmp_path, srv.url, "--on-model-error", policy, "--api-key", KEY, seconds=2.5)
    assert proc.returncode == code, proc.stderr
    assert_no_key(proc)
    if policy == "stop":
        assert proc.stderr.strip().splitlines()[-1].startswith("nsplayer: error: ")
    else:
        assert "continuing with the embedded model" in proc.stderr
