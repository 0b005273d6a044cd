"""`nsplayer play/replay/idle` end to end: a real subprocess, real UDP on loopback.

Clips are short (about a second) because playback runs in real time. Timing is not
asserted here (benchmarks/sync.py measures it); these tests check what was sent.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import Capture, needs_espeak, needs_pulse, pulse_running

from livelink import write_csv
from livelink.names import JAW_OPEN

NSPLAYER = [sys.executable, "-m", "nsplayer.cli"]
FPS = 60


def jaw(frames) -> np.ndarray:
    return np.array([f.values[JAW_OPEN] for f in frames])


def run(args, stdin=None, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*NSPLAYER, *args], input=stdin, capture_output=True, timeout=timeout, check=False
    )


def assert_consecutive(frames) -> None:
    numbers = [f.time.frame for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert all(f.time.rate_num == FPS and f.time.rate_den == 1 for f in frames)


def espeak(text: str) -> bytes:
    return subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    """About 1.3 s of speech (espeak-ng), or a syllable-like tone burst without it."""
    path = tmp_path_factory.mktemp("clips") / "speech.wav"
    if shutil.which("espeak-ng"):
        path.write_bytes(espeak("Hello, papa bought a banana."))
    else:
        t = np.arange(22050) / 22050
        voiced = 0.4 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
        sf.write(path, voiced.astype(np.float32), 22050)
    return path


def read_stats(path: Path) -> dict:
    return json.loads(path.read_text())


def test_play_file_streams_every_frame_in_order(speech_wav, tmp_path):
    cap = Capture()
    stats = tmp_path / "stats.json"
    proc = run(["play", str(speech_wav), "--no-audio", "--target", cap.target, "--stats", stats])
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    report = read_stats(stats)
    expected = math.ceil(sf.info(speech_wav).frames / sf.info(speech_wav).samplerate * FPS)
    summary = report["summary"]
    assert summary["speech_frames"] + report["dropped"] == expected
    assert report["sink"] == "null" and report["missing"] == 0
    assert len(frames) == summary["frames_sent"]
    assert_consecutive(frames)
    speech = [f for f in report["frames"] if f["index"] is not None]
    assert [f["index"] for f in speech] == sorted({f["index"] for f in speech})
    assert all(f["audio_time"] == pytest.approx(f["index"] / FPS) for f in speech)
    assert jaw(frames).max() > 0.1  # the mouth moved
    assert jaw(frames)[-1] < 0.05  # and came back to rest
    assert report["frames"][0]["index"] is None  # idle frames came before the speech
    sent = np.array([f["sent"] for f in report["frames"]])
    assert np.diff(sent).min() >= 0.5 / FPS - 1e-6  # never a burst


@needs_espeak
def test_play_stdin_wav_stream_from_espeak(tmp_path):
    cap = Capture()
    stats = tmp_path / "stats.json"
    wav = espeak("Hello there.")
    proc = run(["play", "-", "--no-audio", "--target", cap.target, "--stats", stats], stdin=wav)
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    assert_consecutive(frames)
    report = read_stats(stats)
    assert report["summary"]["speech_frames"] + report["dropped"] > 0.5 * FPS
    assert jaw(frames).max() > 0.1


@pytest.mark.parametrize(
    ("source", "lookahead_s"), [("file", 0.1), ("whole", 0.03), ("pipe", 0.03)]
)
def test_a_file_gets_the_offline_model_and_stdin_the_causal_one(tmp_path, source, lookahead_s):
    """A file's path: the offline model (100 ms look-ahead); stdin, whether its header gives
    the length (`cat speech.wav |`) or not (a TTS engine's pipe): the causal one (30 ms)."""
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.3) * 32767).astype("<i2")
    path = tmp_path / "tone.wav"
    sf.write(path, tone, 16000, subtype="PCM_16")
    wav = path.read_bytes()
    stdin = {"file": None, "whole": wav, "pipe": _streamed_header(wav)}[source]
    stats = tmp_path / "stats.json"
    args = ["play", str(path) if stdin is None else "-", "--no-audio", "--target", "127.0.0.1:9"]
    proc = run([*args, "--stats", stats], stdin=stdin)
    assert proc.returncode == 0, proc.stderr
    report = read_stats(stats)
    assert report["model_lookahead_s"] == pytest.approx(lookahead_s, abs=0.002)
    assert abs(report["summary"]["speech_frames"] + report["dropped"] - FPS) <= 2


def _streamed_header(wav: bytes) -> bytes:
    """The same WAV with the "unknown length" sizes a writer that cannot seek puts there."""
    return wav[:4] + b"\xff\xff\xff\xff" + wav[8:40] + b"\xff\xff\xff\xff" + wav[44:]


def test_play_stdin_raw_pcm(tmp_path):
    cap = Capture()
    stats = tmp_path / "stats.json"
    t = np.arange(16000) / 16000
    pcm = (12000 * np.sin(2 * np.pi * 180 * t)).astype("<i2").tobytes()
    args = ["play", "-", "--raw", "--rate", "16000", "--no-audio", "--target", cap.target]
    proc = run([*args, "--stats", stats], stdin=pcm)
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    report = read_stats(stats)
    assert report["summary"]["speech_frames"] + report["dropped"] == FPS
    assert len(frames) == report["summary"]["frames_sent"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["play", "missing.wav"], "no such file"),
        (["play", "notes.wav"], "not an audio file"),
        (["play", "-", "--raw"], "--rate"),
        (["play", "x.wav", "--rate", "16000"], "stdin only"),
        (["replay", "x.wav", "x.csv", "--model", "neurosync"], "No such option '--model'"),
        (["play", "x.wav", "--gain", "lips=1"], "no region 'lips' — use one of mouth, jaw"),
        (["play", "x.wav", "--target", "localhost:99999"], "'targets' must be HOST:PORT"),
        (
            ["play", "-", "--rate", "12"],
            "Invalid value for '--rate': 12 is not in the range 8000<=x<=384000",
        ),
        (["play", "x.wav", "--target", "nonsense:99999"], ""),
        (["replay", "missing.wav", "shapes.csv"], ""),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, message):
    (tmp_path / "notes.wav").write_text("not audio\n" * 10)
    sf.write(tmp_path / "x.wav", np.zeros(1600, np.float32), 16000)
    proc = subprocess.run(
        [*NSPLAYER, *args, "--no-audio"],
        cwd=tmp_path,
        input=b"",
        capture_output=True,
        timeout=30,
        check=False,
    )
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


@needs_espeak
@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["sigint", "ctrl-c-to-the-process-group", "sigterm"],
)
def test_signals_ease_the_face_out_and_exit_128_plus_signal(tmp_path, signum, whole_group):
    """A terminal's Ctrl-C reaches the pacer process too: it must still send the ease-out."""
    wav = tmp_path / "long.wav"
    wav.write_bytes(espeak("Ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah."))
    cap = Capture()
    proc = subprocess.Popen(
        [*NSPLAYER, "play", str(wav), "--no-audio", "--target", cap.target],
        stderr=subprocess.PIPE,
        start_new_session=whole_group,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (jaw(cap.frames) > 0.2).sum() < 10:
        time.sleep(0.02)  # wait until the mouth is busy
    if whole_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    code = proc.wait(timeout=10)
    err = proc.stderr.read()
    assert code == 128 + signum, err  # 130 for Ctrl-C
    frames = cap.stop()
    assert_consecutive(frames)
    curve = jaw(frames)
    assert curve.max() > 0.2
    assert curve[-1] < 0.05  # eased back to idle, not frozen open
    assert b"Traceback" not in err


def wait_reading_stdin(pid: int, timeout: float = 20.0) -> None:
    """Until process ``pid`` sits in read(2) on fd 0 (Linux's /proc tells; elsewhere 2 s):
    a signal sent while Python still starts up can land in a finalizer, where Python only
    prints "Exception ignored" and carries on."""
    syscall = Path(f"/proc/{pid}/syscall")
    reads = ("0", "63")  # read(2) on x86-64, on arm64
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            fields = syscall.read_text().split()
        except OSError:
            time.sleep(2.0)
            return
        if len(fields) > 1 and fields[0] in reads and fields[1] == "0x0":
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never waited on stdin")


def signal_while_waiting(signum: int) -> tuple[int | None, bytes]:
    """Start ``play -``, send ``signum`` once it waits for a WAV header: (exit code or None
    if it had not exited 10 s later, stderr)."""
    proc = subprocess.Popen(
        [*NSPLAYER, "play", "-", "--no-audio", "--target", "127.0.0.1:9"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_reading_stdin(proc.pid)  # started, and waiting for the WAV header
    time.sleep(0.2)
    proc.send_signal(signum)
    try:
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    proc.stdin.close()
    return code, proc.stderr.read()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, -signal.SIGTERM)])
def test_a_signal_while_stdin_sends_nothing_ends_quietly(signum, code):
    """Before playback there is no face to ease out: Ctrl-C exits 130, SIGTERM kills as
    usual, and neither the player nor its pacer process prints anything."""
    got, err = signal_while_waiting(signum)
    assert got == code
    assert err == b""  # no "Aborted!", no traceback, no pacer complaint


def test_replay_of_an_exported_csv_at_another_rate(speech_wav, tmp_path):
    n = 45  # 1.5 s at 30 fps: the jaw opens for the middle half second
    values = np.zeros((n, 61), np.float32)
    values[15:30, JAW_OPEN] = 0.8
    csv = tmp_path / "shapes.csv"
    write_csv(csv, values, fps=30)
    cap = Capture()
    saved = tmp_path / "sent.csv"
    args = ["replay", str(speech_wav), str(csv), "--no-audio", "--target", cap.target]
    proc = run([*args, "--save-csv", saved, "--stats", tmp_path / "s.json"])
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    assert_consecutive(frames)
    curve = jaw(frames)
    assert curve.max() > 0.6 and curve[-1] < 0.05
    from livelink import read_csv

    take = read_csv(saved)
    assert np.allclose(take.values, np.array([f.values for f in frames]), atol=1e-6)


def test_idle_command_sends_steady_idle_frames():
    cap = Capture()
    proc = run(["idle", "--duration", "0.5", "--target", cap.target, "--seed", "3"])
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    assert len(frames) == 30
    assert_consecutive(frames)


@needs_pulse
def test_play_through_the_pulseaudio_null_sink(speech_wav, tmp_path):
    cap = Capture()
    stats = tmp_path / "stats.json"
    args = ["play", str(speech_wav), "--device", "pulse", "--target", cap.target]
    proc = run([*args, "--stats", stats])
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    report = read_stats(stats)
    assert report["sink"] == "device" and report["output_latency_s"] > 0
    assert report["missing"] == 0
    assert len(frames) == report["summary"]["frames_sent"]
    assert_consecutive(frames)
    speech = [f for f in report["frames"] if f["index"] is not None]
    assert speech and speech[0]["due"] > 1e6  # PortAudio's clock, not time.monotonic()


@needs_espeak
@needs_pulse
def test_sound_card_removed_mid_play_eases_out_with_one_line(tmp_path):
    """The null sink is unloaded under the player (as a USB headset is pulled): PortAudio's
    callbacks stop; the player says so in one line, exit 1, and the face is back at idle."""
    wav = tmp_path / "long.wav"
    wav.write_bytes(espeak("Ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah, ah."))
    cap = Capture()
    proc = subprocess.Popen(
        [*NSPLAYER, "play", str(wav), "--device", "pulse", "--target", cap.target],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (jaw(cap.frames) > 0.2).sum() < 10:
            time.sleep(0.02)  # wait until the mouth is busy
        subprocess.run(["pactl", "unload-module", "module-null-sink"], check=True)
        assert proc.wait(timeout=20) == 1
    finally:
        subprocess.run(["pactl", "load-module", "module-null-sink"], capture_output=True)
    frames = cap.stop()
    lines = [line for line in proc.stderr.read().splitlines() if line.startswith("nsplayer:")]
    assert "the audio device stopped" in lines[-1] and "Traceback" not in "".join(lines)
    assert_consecutive(frames)
    assert jaw(frames).max() > 0.2 and jaw(frames)[-1] < 0.05  # eased back to idle


def _streamed(wav: bytes, rate: int) -> bytes:
    """espeak-ng's WAV at ``rate``, with the unknown-length header a TTS pipe writes."""
    import soxr

    pcm = np.frombuffer(wav[44:], "<i2").astype(np.float32) / 32768
    data = (np.clip(soxr.resample(pcm, 22050, rate), -1, 1) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, 2 * rate, 2, 16)
    return (
        b"RIFF\xff\xff\xff\xffWAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data\xff\xff\xff\xff"
        + data
    )


@needs_espeak
@needs_pulse
@pytest.mark.parametrize(
    ("announce", "rate"), [(["--rate", "22050"], 22050), ([], 22050), ([], 16000)]
)
def test_play_stdin_opens_the_sound_device_before_the_header(tmp_path, announce, rate):
    """The output stream is playing while stdin has sent nothing yet: at the --rate given,
    else at a guess (22.05 kHz) that a stream at another rate is converted to."""
    cap = Capture()
    stats = tmp_path / "stats.json"
    args = ["play", "-", *announce, "--device", "pulse", "--target", cap.target]
    proc = subprocess.Popen([*NSPLAYER, *args, "--stats", stats], stdin=subprocess.PIPE)
    wav = _streamed(espeak("Hello there."), rate)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _playback_streams(proc.pid):
            time.sleep(0.05)
        assert _playback_streams(proc.pid), "no output stream before the header"
        proc.stdin.write(wav)
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    frames = cap.stop()
    report = read_stats(stats)
    assert report["sink"] == "device" and report["missing"] == 0
    seconds = (len(wav) - 44) / 2 / rate
    assert abs(report["summary"]["speech_frames"] + report["dropped"] - seconds * FPS) <= 2
    assert len(frames) == report["summary"]["frames_sent"]


def _playback_streams(pid: int) -> int:
    """PulseAudio sink inputs (playback streams) opened by process ``pid``."""
    listing = subprocess.run(["pactl", "list", "sink-inputs"], capture_output=True, text=True)
    return listing.stdout.count(f'application.process.id = "{pid}"')


@needs_espeak
def test_a_wrong_rate_announcement_is_converted_with_one_line_and_plays_all(tmp_path):
    cap = Capture()
    stats = tmp_path / "stats.json"
    args = ["play", "-", "--rate", "16000", "--no-audio", "--target", cap.target]
    wav = espeak("Hello there.")
    proc = run([*args, "--stats", stats], stdin=wav)
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    assert "22050 Hz mono, not the 16000 Hz mono" in proc.stderr.decode()
    report = read_stats(stats)
    seconds = (len(wav) - 44) / 2 / 22050  # espeak-ng: 16-bit mono at 22050 Hz
    assert abs(report["summary"]["speech_frames"] + report["dropped"] - seconds * FPS) <= 2
    assert_consecutive(frames)


PRODUCER = """
import sys, time
data = sys.stdin.buffer.read()
half = len(data) // 2 & ~1
out = sys.stdout.buffer
out.write(data[:half]); out.flush()
time.sleep(half / 44100 + 1.5)  # the player starts, plays the first half, then waits
out.write(data[half:]); out.flush()
"""


@needs_espeak
def test_slow_stdin_producer_with_a_gap(tmp_path):
    wav = espeak("Papa bought a banana. Mama made a melon.")
    pcm = wav[44:]  # espeak-ng writes a 44-byte header, then 16-bit mono at 22050 Hz
    cap = Capture()
    stats = tmp_path / "stats.json"
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    args = ["play", "-", "--raw", "--rate", "22050", "--no-audio", "--target", cap.target]
    player = subprocess.Popen([*NSPLAYER, *args, "--stats", stats], stdin=producer.stdout)
    producer.stdout.close()
    producer.stdin.write(pcm)
    producer.stdin.close()
    assert player.wait(timeout=60) == 0
    frames = cap.stop()
    assert_consecutive(frames)
    report = read_stats(stats)
    assert report["underruns"] >= 1
    kinds = [f["index"] is not None for f in report["frames"]]
    first_speech, last_speech = kinds.index(True), len(kinds) - 1 - kinds[::-1].index(True)
    gap = [i for i in range(first_speech, last_speech) if not kinds[i]]
    assert len(gap) >= 0.3 * FPS  # idle ticks kept the packets flowing through the gap
    assert jaw(frames)[gap[len(gap) // 2 :]].max() < 0.05  # the face went to rest in the gap
    speech = [f["index"] for f in report["frames"] if f["index"] is not None]
    assert speech == sorted(set(speech))
    expected = math.ceil(len(pcm) / 2 / 22050 * FPS)  # each sent or dropped (a dropped
    assert len(speech) <= expected <= len(speech) + report["dropped"]  # one may be idle)
    sent = np.array([f["sent"] for f in report["frames"]])
    assert np.diff(sent).min() >= 0.5 / FPS - 1e-6  # no burst when speech resumed


def test_cli_module_runs_without_a_display():
    env = dict(os.environ, DISPLAY="")
    proc = subprocess.run([*NSPLAYER, "devices"], capture_output=True, env=env, check=False)
    assert proc.returncode in (0, 1)
    assert b"Traceback" not in proc.stderr


FAST_PRODUCER = """
import sys
from pathlib import Path
chunk, written = bytes(4410), 0
try:
    while written < 600 * 44100:  # ten minutes of 22050 Hz s16 audio, as fast as possible
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        written += len(chunk)
except BrokenPipeError:
    pass
Path(sys.argv[1]).write_text(str(written))
"""


def test_fast_producer_is_held_back_by_backpressure(tmp_path):
    count = tmp_path / "written"
    producer = subprocess.Popen(
        [sys.executable, "-c", FAST_PRODUCER, str(count)], stdout=subprocess.PIPE
    )
    args = ["play", "-", "--raw", "--rate", "22050", "--no-audio", "--target", "127.0.0.1:9"]
    player = subprocess.Popen([*NSPLAYER, *args, "-q"], stdin=producer.stdout)
    producer.stdout.close()
    time.sleep(2.0)
    player.send_signal(signal.SIGINT)
    assert player.wait(timeout=10) == 130
    producer.wait(timeout=10)
    # the player read about a second ahead (its ring) plus pipe buffers, not ten minutes
    assert int(count.read_text()) < 1_000_000


def test_replay_with_a_csv_shorter_than_its_audio_plays_the_audio_out(tmp_path):
    audio = tmp_path / "one_second.wav"
    sf.write(audio, np.zeros(16000, np.float32), 16000)
    csv = tmp_path / "short.csv"
    write_csv(csv, np.full((18, 61), 0.3, np.float32), fps=FPS)  # 0.3 s of frames
    stats = tmp_path / "s.json"
    args = ["replay", str(audio), str(csv), "--no-audio", "--target", "127.0.0.1:9", "-q"]
    proc = run([*args, "--stats", str(stats)])
    assert proc.returncode == 0, proc.stderr
    summary = read_stats(stats)["summary"]
    assert summary["speech_frames"] + read_stats(stats)["dropped"] == 18
    assert summary["frames_sent"] >= 0.8 * FPS  # idle frames until the second was heard


@pytest.mark.skipif(not pulse_running(), reason="needs ALSA's default device to be PulseAudio")
def test_no_output_device_falls_back_to_the_null_sink_with_one_line(speech_wav, tmp_path):
    env = dict(os.environ, PULSE_SERVER="unix:/nonexistent")  # the default device cannot open
    stats = tmp_path / "s.json"
    runs = {
        quiet: subprocess.run(
            [*NSPLAYER, "play", str(speech_wav), "--stats", stats, *quiet],
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        for quiet in ((), ("-q",))
    }
    for proc in runs.values():
        assert proc.returncode == 0, proc.stderr
    notice = [line for line in runs[()].stderr.decode().splitlines() if "null sink" in line]
    assert len(notice) == 1 and "nsplayer devices" in notice[0]
    assert runs[("-q",)].stderr.decode() == ""  # -q: nothing at all
    assert read_stats(stats)["sink"] == "null"


def test_stdin_wav_without_samples_is_one_line():
    header = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\x80>\0\0\0}\0\0\x02\0\x10\0data\0\0\0\0"
    proc = run(["play", "-", "--no-audio", "--target", "127.0.0.1:9", "-q"], stdin=header)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip().splitlines() == [
        "nsplayer: error: <stdin>: no audio samples (the input was empty)"
    ]


def test_nothing_listening_on_the_target_is_said_once_and_playing_goes_on(speech_wav):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    proc = run(["play", str(speech_wav), "--no-audio", "--target", f"127.0.0.1:{port}"])
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert err.count(f"nothing is listening on 127.0.0.1:{port}") == 1
    assert "Live Link source" in err


def test_a_face_far_ahead_of_the_sound_still_gets_every_frame(speech_wav, tmp_path):
    """--av-offset -1000: the frames are due a second before their audio is heard; the
    model runs that far ahead instead of dropping them."""
    cap = Capture()
    stats = tmp_path / "stats.json"
    proc = run(["play", str(speech_wav), "--no-audio", "--av-offset", "-1000", "--target",
                cap.target, "--stats", str(stats)])  # fmt: skip
    frames = cap.stop()
    assert proc.returncode == 0, proc.stderr
    report = json.loads(stats.read_text())
    expected = math.ceil(sf.info(speech_wav).frames / sf.info(speech_wav).samplerate * FPS)
    assert report["summary"]["speech_frames"] + report["dropped"] == expected
    assert report["dropped"] <= 5  # was 520 of 580: only a stalled machine may drop one
    assert report["summary"]["error_ms_p50"] < 1.0
    assert_consecutive(frames)


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60, 120])
def test_every_standard_frame_rate_plays_replays_and_idles(speech_wav, tmp_path, fps):
    cap = Capture()
    csv = tmp_path / "take.csv"
    played = run(["play", str(speech_wav), "--no-audio", "--fps", str(fps), "--target",
                  cap.target, "--save-csv", str(csv)])  # fmt: skip
    replayed = run(["replay", str(speech_wav), str(csv), "--no-audio", "--fps", str(fps),
                    "--target", cap.target])  # fmt: skip
    idled = run(["idle", "--duration", "0.5", "--fps", str(fps), "--target", cap.target])
    frames = cap.stop()
    for proc in (played, replayed, idled):
        assert proc.returncode == 0, proc.stderr
    assert {f.time.rate_num for f in frames} == {fps}
    speech = math.ceil(sf.info(speech_wav).frames / sf.info(speech_wav).samplerate * fps)
    assert len(frames) >= 2 * speech + round(0.5 * fps) - 2


def test_start_at_puts_frame_zero_at_that_time_of_day(speech_wav, tmp_path):
    """--start-at lines the face up with sound UE plays itself: frame 0 is due then."""
    start = datetime.datetime.now() + datetime.timedelta(seconds=2.0)
    if start.date() != datetime.date.today():
        pytest.skip("too close to midnight")
    when = start.time().isoformat(timespec="milliseconds")
    target = time.monotonic() + (start.timestamp() - time.time())  # the null sink's clock
    stats = tmp_path / "stats.json"
    proc = run(["play", str(speech_wav), "--no-audio", "--start-at", when, "--stats", str(stats),
                "--target", "127.0.0.1:9"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"frame 0 at {when}" in proc.stderr.decode()
    first = next(f for f in read_stats(stats)["frames"] if f["index"] == 0)
    assert abs(first["due"] - target) < 0.03


def test_start_at_in_the_past_is_one_line(speech_wav):
    proc = run(["play", str(speech_wav), "--no-audio", "--start-at", "00:00:00"])
    assert proc.returncode == 1
    assert proc.stderr.decode().strip().splitlines()[-1].endswith("give a time later today")


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
@pytest.mark.parametrize("delay", [0.15, 0.25, 0.35, 0.45, 0.6])
def test_ctrl_c_while_starting_up_never_prints_a_traceback(delay):
    """A terminal's Ctrl-C reaches the whole process group; the pacer process has a session
    of its own, so even one that arrives while it starts leaves no traceback."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nsplayer",
            "idle",
            "--duration",
            "5",
            "--target",
            "127.0.0.1:9",
            "-q",
        ],
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGINT)
    code = proc.wait(timeout=10)
    err = proc.stderr.read().decode()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # 130 as a rule; -2 when it came before Python installed any handler. Before the entry
    # point ended the process at once inside imports, about one run in a hundred here
    # carried on and ended 0 (none in 200 since); 0 stays accepted until that is explained.
    assert code in (130, -signal.SIGINT, 0), (code, err)
