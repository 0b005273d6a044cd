"""`nsplayer stage` end to end: a real uvicorn on loopback, real WebSocket and HTTP clients,
UDP receivers checking what UE would get."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
from conftest import Capture, needs_pulse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from livelink.names import INDEX
from nsplayer.errors import NsplayerError
from nsplayer.stage.app import AppSettings
from nsplayer.stage.cast import CastSettings
from nsplayer.stage.service import Service, StageSettings, running

SPEECH = Path(__file__).parent.parent / "examples" / "speech.wav"
JAW = INDEX["JawOpen"]
REST = 0.05  # JawOpen below this: the mouth is at rest


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    """1.5 s of speech as int16 (most of it voiced)."""
    pcm, rate = sf.read(SPEECH, dtype="int16")
    return pcm[int(0.2 * rate) : int(1.7 * rate)], rate


class Client:
    """A WebSocket client that logs every event with its arrival time."""

    def __init__(self, url: str, **kwargs: object) -> None:
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, **kwargs))
        self.log: list[tuple[float, dict]] = []
        self.created = self.next()

    def send(self, **message: object) -> None:
        self.ws.send(json.dumps(message))

    def next(self, timeout: float = 10.0) -> dict:
        event = json.loads(self.ws.recv(timeout=timeout))
        self.log.append((time.monotonic(), event))
        return event

    def until(self, kind: str, uid: str | None = None, timeout: float = 10.0) -> dict:
        for _, event in self.log:
            if event["type"] == kind and uid in (None, event.get("utterance_id")):
                return event
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.01, deadline - time.monotonic()))
            if event["type"] == kind and uid in (None, event.get("utterance_id")):
                return event

    def when(self, kind: str, uid: str) -> float:
        self.until(kind, uid)
        return next(t for t, e in self.log if e["type"] == kind and e.get("utterance_id") == uid)

    def speak(self, subject, uid, pcm, rate, *, mode="enqueue", end=True, pace=False, **extra):
        self.send(type="session.update", sample_rate=rate)
        self.send(type="utterance.start", subject=subject, utterance_id=uid, mode=mode, **extra)
        step = round(0.04 * rate)
        for start in range(0, len(pcm), step):
            self.ws.send(pcm[start : start + step].tobytes())
            if pace:
                time.sleep(0.04)
        if end:
            self.send(type="utterance.end", utterance_id=uid)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def frames():
    got = Capture()
    yield got
    got.close()


def settings(frames: Capture, **kwargs) -> StageSettings:
    defaults = {"port": 0, "subjects": ("anna", "bob"), "targets": (frames.target,)}
    return StageSettings(**{**defaults, "audio": "none", **kwargs})


@pytest.fixture
def stage(frames):
    with running(settings(frames)) as service:
        yield service


def url(service: Service, path: str = "/v1/stream") -> str:
    return f"ws://127.0.0.1:{service.port}{path}"


def http(service: Service, path: str) -> str:
    return f"http://127.0.0.1:{service.port}{path}"


def consecutive(frames: list) -> bool:
    numbers = [f.time.frame for f in frames]
    return len(numbers) > 1 and all(b - a == 1 for a, b in itertools.pairwise(numbers))


def test_two_subjects_speak_at_once_with_their_own_frames_and_idle_around(stage, frames, speech):
    pcm, rate = speech
    client = Client(url(stage))
    assert client.created["subjects"] == ["anna", "bob"] and client.created["fps"] == 60
    time.sleep(0.2)
    client.speak("anna", "a1", pcm, rate)
    client.speak("bob", "b1", pcm[::-1].copy(), rate)
    for uid in ("a1", "b1"):
        assert client.until("utterance.finished", uid)["duration_ms"] == pytest.approx(1500, 1)
    time.sleep(0.3)
    for subject, uid in (("anna", "a1"), ("bob", "b1")):
        sent = frames.of(subject)
        assert consecutive(sent)
        started, finished = (
            client.when("utterance.started", uid),
            client.when("utterance.finished", uid),
        )
        assert max(f.values[JAW] for f in frames.of(subject, started, finished)) > 0.2
        assert len(frames.of(subject, until=started - 0.05)) > 5  # idle before the line
        after = frames.of(subject, since=finished + 0.2)
        assert len(after) > 3 and max(f.values[JAW] for f in after) < REST  # idle after
    assert {f.device_id for f in frames.of("anna")}.isdisjoint(
        {f.device_id for f in frames.of("bob")}
    )


def test_enqueued_lines_play_in_order_with_idle_between(stage, frames, speech):
    pcm, rate = speech
    client = Client(url(stage))
    short = pcm[: rate // 2]
    client.speak("anna", "u1", short, rate)
    client.speak("anna", "u2", short, rate)
    assert client.until("utterance.queued", "u1")["position"] == 0
    assert client.until("utterance.queued", "u2")["position"] == 1
    client.until("utterance.finished", "u2")
    order = [
        (e["type"], e["utterance_id"])
        for _, e in client.log
        if "started" in e["type"] or "finished" in e["type"]
    ]
    assert order == [
        ("utterance.started", "u1"),
        ("utterance.finished", "u1"),
        ("utterance.started", "u2"),
        ("utterance.finished", "u2"),
    ]
    assert consecutive(frames.of("anna"))


def test_interrupt_fades_the_mouth_to_rest_and_says_what_was_heard(stage, frames, speech):
    pcm, rate = speech
    client = Client(url(stage))
    client.speak("anna", "long", np.concatenate([pcm, pcm]), rate)
    client.speak("anna", "next", pcm, rate)
    started = client.when("utterance.started", "long")
    time.sleep(0.6)
    sent = time.monotonic()
    client.send(type="interrupt", subject="anna", fade_ms=100)
    event = client.until("utterance.interrupted", "long")
    done = client.when("utterance.interrupted", "long")
    # heard from its start to the interrupt: at least what the client saw, at most that
    # plus the lateness of the started event and of the interrupt's handling
    assert 1000.0 * (sent - started) - 20 < event["played_ms"] < 1000.0 * (done - started) + 50
    queued = client.until("utterance.interrupted", "next")  # clear_queue defaults to true
    assert queued["played_ms"] == 0
    time.sleep(0.5)
    after = frames.of("anna", since=done + 0.2)  # fade_ms, and the mouth's 100 ms ease
    assert len(after) > 10 and max(f.values[JAW] for f in after) < REST
    assert consecutive(frames.of("anna"))
    assert requests.get(http(stage, "/v1/subjects")).json()["subjects"][0]["state"] == "idle"


def test_replace_cuts_the_line_and_the_queue_and_plays_the_new_one(stage, speech):
    pcm, rate = speech
    client = Client(url(stage))
    client.speak("bob", "old", pcm, rate)
    client.speak("bob", "queued", pcm, rate)
    client.until("utterance.started", "old")
    client.speak("bob", "new", pcm[: rate // 2], rate, mode="replace", emotion={"happy": 0.5})
    assert client.until("utterance.interrupted", "old")["played_ms"] > 0
    assert client.until("utterance.interrupted", "queued")["played_ms"] == 0
    assert client.until("utterance.finished", "new")["duration_ms"] == pytest.approx(500, 1)


def test_a_long_fade_keeps_the_mouth_speaking_ever_smaller_and_at_rest_within_it(
    stage, frames, speech
):
    pcm, rate = speech
    client = Client(url(stage))
    client.speak("anna", "long", np.concatenate([pcm] * 4), rate)
    started = client.when("utterance.started", "long")
    time.sleep(0.6)
    client.send(type="interrupt", subject="anna", fade_ms=1000)
    cut = client.when("utterance.interrupted", "long")
    time.sleep(1.5)

    def jaw(since: float, until: float) -> np.ndarray:
        return np.array([f.values[JAW] for f in frames.of("anna", since, until)])

    before, early, late = jaw(started, cut), jaw(cut + 0.1, cut + 0.5), jaw(cut + 0.75, cut + 1.0)
    assert early.max() > 0.2 * before.max()  # still speaking 0.5 s into the fade
    assert np.sum(np.abs(np.diff(early)) > 0.005) > 5  # moving with the syllables, not held
    assert late.max() < 0.35 * before.max()  # at most a third of its size near the end
    assert jaw(cut + 1.05, cut + 1.5).max() < REST  # at rest within fade_ms (and a frame)
    assert consecutive(frames.of("anna"))


def test_a_streamed_line_faded_longer_than_its_buffer_ends_and_leaves_nothing_behind(
    stage, frames, speech
):
    pcm, rate = speech
    client = Client(url(stage))
    client.speak("anna", "live", pcm[: rate // 2], rate, end=False, pace=True)
    client.send(type="interrupt", subject="anna", fade_ms=2000)  # more than is buffered
    cut = client.when("utterance.interrupted", "live")
    time.sleep(0.6)
    assert max(f.values[JAW] for f in frames.of("anna", since=cut + 0.4)) < REST
    assert not stage.stage.mixer._voices  # the starved voice ended instead of waiting
    assert not stage.stage.cast._fading  # the line's model ran to its end and was closed
    assert consecutive(frames.of("anna"))


def test_interrupt_mode_keeps_the_queue(stage, speech):
    pcm, rate = speech
    client = Client(url(stage))
    short = pcm[: rate // 3]
    client.speak("anna", "first", pcm, rate)
    client.speak("anna", "later", short, rate)
    client.until("utterance.started", "first")
    client.speak("anna", "now", short, rate, mode="interrupt")
    client.until("utterance.interrupted", "first")
    assert client.when("utterance.finished", "now") < client.when("utterance.started", "later")


def test_expression_set_holds_an_emotion_between_lines(stage, frames):
    client = Client(url(stage))
    time.sleep(0.2)
    client.send(type="expression.set", subject="bob", emotion={"happy": 1.0})
    set_at = time.monotonic()
    time.sleep(0.6)
    smile = INDEX["MouthSmileLeft"]
    before = frames.of("bob", until=set_at)
    after = frames.of("bob", since=set_at + 0.4)
    assert max(f.values[smile] for f in before) < 0.1 < min(f.values[smile] for f in after)
    assert max(f.values[smile] for f in frames.of("anna", since=set_at + 0.4)) < 0.1


def test_underrun_rests_the_mouth_and_resumes_in_sync(stage, frames, speech):
    pcm, rate = speech
    client = Client(url(stage))
    half = len(pcm) // 2
    client.speak("anna", "gap", pcm[:half], rate, end=False)
    client.until("buffer.underrun", "gap", timeout=5)
    gap = time.monotonic()
    time.sleep(0.5)
    for start in range(half, len(pcm), rate // 25):
        client.ws.send(pcm[start : start + rate // 25].tobytes())
    client.send(type="utterance.end", utterance_id="gap")
    finished = client.until("utterance.finished", "gap")
    assert finished["duration_ms"] == pytest.approx(1500, 1)
    resting = frames.of("anna", since=gap + 0.2, until=gap + 0.5)
    assert resting and max(f.values[JAW] for f in resting) < REST
    resumed = frames.of("anna", since=gap + 0.5, until=client.when("utterance.finished", "gap"))
    assert max(f.values[JAW] for f in resumed) > 0.2
    assert consecutive(frames.of("anna"))


def test_rest_speak_with_and_without_wait_and_interrupt(stage, speech, tmp_path):
    pcm, rate = speech
    wav = tmp_path / "line.wav"
    sf.write(wav, pcm[: rate // 2], rate)
    body = wav.read_bytes()
    answer = requests.post(http(stage, "/v1/subjects/carl/speak?wait=true"), data=body, timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "finished"
    assert answer.json()["duration_ms"] == pytest.approx(500, 1)
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([pcm, pcm]), rate)
    answer = requests.post(http(stage, "/v1/subjects/carl/speak"), data=long.read_bytes())
    assert answer.status_code == 202
    time.sleep(0.5)
    subjects = {
        s["subject"]: s for s in requests.get(http(stage, "/v1/subjects")).json()["subjects"]
    }
    assert subjects["carl"]["state"] == "speaking"
    assert subjects["carl"]["utterance_id"] == answer.json()["utterance_id"]
    stopped = requests.post(http(stage, "/v1/subjects/carl/interrupt?fade_ms=50"))
    assert stopped.json() == {"interrupted": [answer.json()["utterance_id"]]}
    assert requests.get(http(stage, "/v1/health")).json()["status"] == "ok"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/subjects/anna/speak", b"", 400, "bad_audio"),
        ("/v1/subjects/anna/speak", b"not audio at all", 400, "bad_audio"),
        ("/v1/subjects/anna/speak?mode=shout", b"x", 400, "bad_field"),
        ("/v1/subjects/anna/speak?wait=maybe", b"x", 400, "bad_field"),
        ("/v1/subjects/nobody/interrupt", b"", 404, "unknown_subject"),
        ("/v1/subjects/anna/interrupt?fade_ms=-3", b"", 400, "bad_field"),
    ],
)
def test_rest_bad_input_is_a_4xx_with_one_line(stage, path, body, status, code):
    answer = requests.post(http(stage, path), data=body, timeout=10)
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert "\n" not in answer.json()["error"]["message"]


def test_rest_body_over_the_limit_is_413(frames):
    small = settings(frames, app=AppSettings(max_body_mb=0.001))
    with running(small) as service:
        answer = requests.post(http(service, "/v1/subjects/anna/speak"), data=b"\0" * 2000)
        assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"


def test_every_bad_message_is_an_error_event_and_everything_keeps_working(frames, speech):
    pcm, rate = speech
    cast = CastSettings(max_subjects=3, max_queue=1)
    with running(settings(frames, cast=cast)) as service:
        client = Client(url(service))
        cases = [
            ("not json", "bad_json"),
            (json.dumps({"type": "utterance.begin"}), "unknown_type"),
            (b"\0\0\0\0", "audio_before_start"),
            (json.dumps({"type": "utterance.end", "utterance_id": "ghost"}), "unknown_utterance"),
            (
                json.dumps({"type": "interrupt", "subject": "anna", "utterance_id": "x"}),
                "unknown_utterance",
            ),
            (json.dumps({"type": "utterance.start", "subject": "carl", "utterance_id": "c"}), None),
            (
                json.dumps({"type": "utterance.start", "subject": "dora", "utterance_id": "d"}),
                "too_many_subjects",
            ),
            (b"\0\0\0", "bad_audio"),  # half a sample
            (b"\0\0" * rate, "too_large"),  # a second in one chunk
            (
                json.dumps({"type": "utterance.start", "subject": "carl", "utterance_id": "c"}),
                "duplicate_utterance",
            ),
            (
                json.dumps({"type": "utterance.start", "subject": "carl", "utterance_id": "c2"}),
                None,
            ),
            (
                json.dumps({"type": "utterance.start", "subject": "carl", "utterance_id": "c3"}),
                "queue_full",
            ),
            (json.dumps({"type": "x", "pad": "a" * (1 << 20)}), "too_large"),
        ]
        for message, code in cases:
            client.ws.send(message)
            if code is not None:
                event = client.until("error", timeout=5)
                assert event["code"] == code, message[:80]
                client.log.clear()
        client.send(type="interrupt", subject="carl")
        client.speak("anna", "fine", pcm[: rate // 2], rate)
        assert client.until("utterance.finished", "fine")["duration_ms"] == pytest.approx(500, 1)
        assert consecutive(frames.of("anna")) and consecutive(frames.of("bob"))


def test_a_client_that_disconnects_mid_line_ends_it_and_the_mouth_rests(stage, frames, speech):
    pcm, rate = speech
    client = Client(url(stage))
    client.speak("bob", "gone", np.concatenate([pcm, pcm]), rate, end=False)
    client.until("utterance.started", "gone")
    time.sleep(0.3)
    client.close()
    left = time.monotonic()
    time.sleep(0.6)
    after = frames.of("bob", since=left + 0.3)
    assert len(after) > 5 and max(f.values[JAW] for f in after) < REST
    subjects = requests.get(http(stage, "/v1/subjects")).json()["subjects"]
    assert {s["subject"]: s["state"] for s in subjects}["bob"] == "idle"
    other = Client(url(stage))  # the service is fine
    other.speak("bob", "again", pcm[: rate // 3], rate)
    other.until("utterance.finished", "again")


def test_a_token_is_required_off_loopback_and_checked_when_set(frames):
    with pytest.raises(NsplayerError, match="--token"):
        Service(settings(frames, host="0.0.0.0"))
    guarded = settings(frames, app=AppSettings(token="s3cret"))
    with running(guarded) as service:
        for unauthorized in (url(service), url(service, "/v1/stream?token=wrong")):
            with pytest.raises(InvalidStatus):
                Client(unauthorized)
        Client(url(service, "/v1/stream?token=s3cret")).close()
        Client(url(service), additional_headers={"Authorization": "Bearer s3cret"}).close()
        assert requests.get(http(service, "/v1/subjects")).status_code == 401
        headers = {"Authorization": "Bearer s3cret"}
        assert requests.get(http(service, "/v1/subjects"), headers=headers).status_code == 200
        assert requests.get(http(service, "/v1/health")).status_code == 200


def test_a_client_that_never_reads_stalls_nobody(stage, frames, speech):
    pcm, rate = speech
    mute = Client(url(stage)).ws
    mute.send(json.dumps({"type": "session.update", "sample_rate": rate}))
    for k in range(3000):  # more error events than its outbox holds, never read
        mute.send(json.dumps({"type": "utterance.end", "utterance_id": f"x{k}"}))
    client = Client(url(stage))
    client.speak("anna", "busy", pcm[: rate // 2], rate)
    client.until("utterance.finished", "busy")
    assert consecutive(frames.of("anna"))
    mute.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_eases_every_face_out_and_exits_128_plus_it(frames, speech, signum, tmp_path):
    pcm, rate = speech
    stats = tmp_path / "stats.json"
    command = [sys.executable, "-m", "nsplayer.cli", "stage", "--port", "0", "--audio", "none",
               "--target", frames.target, "--subject", "anna", "--subject", "bob",
               "--stats", str(stats)]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
    client = Client(f"ws://127.0.0.1:{port}/v1/stream")
    long = np.concatenate([pcm, pcm])
    client.speak("anna", "a", long, rate)
    client.speak("bob", "b", long, rate)
    client.until("utterance.started", "a")
    client.until("utterance.started", "b")
    time.sleep(0.5)
    assert max(f.values[JAW] for f in frames.of("anna")[-20:]) > 0.1  # mid-speech
    proc.send_signal(signum)
    assert proc.wait(timeout=15) == 128 + signum
    assert "Traceback" not in proc.stderr.read()
    time.sleep(0.2)
    for subject in ("anna", "bob"):
        sent = frames.of(subject)
        assert consecutive(sent)
        assert sent[-1].values[JAW] < REST
    reports = json.loads(stats.read_text())["subjects"]
    assert [r["subject"] for r in reports] == ["anna", "bob"]
    assert all(r["summary"]["speech_frames"] > 30 for r in reports)


def test_quiet_stage_prints_nothing_and_still_runs(frames):
    command = [sys.executable, "-m", "nsplayer.cli", "stage", "--port", "0", "--audio", "none",
               "--target", frames.target, "--subject", "anna", "-q"]  # fmt: skip
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not frames.of("anna"):  # the face is alive from the start
            assert time.monotonic() < deadline and proc.poll() is None, "no frames came"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 130 and err == ""


@needs_pulse
def test_local_audio_through_pulseaudio_times_frames_by_the_dac(frames, speech):
    pcm, rate = speech
    local = settings(frames, audio="local", device="pulse")
    with running(local) as service:
        client = Client(url(service))
        client.speak("anna", "heard", pcm, rate)
        started = client.until("utterance.started", "heard", timeout=15)
        assert client.until("utterance.finished", "heard")["duration_ms"] == pytest.approx(1500, 1)
        assert started["audio_clock_ms"] > 0
        assert max(f.values[JAW] for f in frames.of("anna")) > 0.2
        assert consecutive(frames.of("anna"))
