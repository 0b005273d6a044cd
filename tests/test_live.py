"""`nsplayer live` end to end through a PulseAudio null sink, plus its parts on their own.

The end-to-end tests load a private null sink, run `nsplayer live` recording its monitor
(PULSE_SOURCE), play espeak-ng speech into the sink (PULSE_SINK / paplay) and receive the
packets on a free loopback port. They skip with the reason when PulseAudio is not running.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from livelink import REGIONS, FrameTime, LiveLinkReceiver, read_csv
from livelink.names import JAW_OPEN
from nsplayer.engine import Timecode
from nsplayer.live import SlidingWindows

REST = 0.1  # JawOpen below this is a mouth at rest (idle breathing moves it a little)
SPEECH = 0.2  # speech opens it well above


def _pulse_missing() -> str | None:
    if any(shutil.which(tool) is None for tool in ("pactl", "paplay", "parec")):
        return "pactl/paplay/parec not installed (pulseaudio-utils)"
    if subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        return "no PulseAudio server running"
    if shutil.which("espeak-ng") is None:
        return "espeak-ng not installed"
    try:
        import sounddevice as sd

        if not any(d["name"] == "pulse" for d in sd.query_devices()):
            return "PortAudio has no 'pulse' device (ALSA pulse plugin missing)"
    except OSError as exc:
        return f"PortAudio not available: {exc}"
    return None


_PULSE_MISSING = _pulse_missing()
needs_pulse = pytest.mark.skipif(_PULSE_MISSING is not None, reason=str(_PULSE_MISSING))


@contextlib.contextmanager
def null_sink(name: str) -> Iterator[str]:
    module = subprocess.run(
        ["pactl", "load-module", "module-null-sink", f"sink_name={name}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run(["pactl", "unload-module", module], check=False)


@pytest.fixture
def sink() -> Iterator[str]:
    """A null sink of our own, so audio other tests play cannot leak into the recording."""
    with null_sink(f"nsplayer_test_live_{os.getpid()}") as name:
        yield name


class Packets(threading.Thread):
    """Receives (arrival, frame number, JawOpen, largest mouth shape) on a free port."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rx = LiveLinkReceiver(port=0, timeout=0.1)
        self.got: list[tuple[float, int, float, float]] = []
        self.running = True

    def run(self) -> None:
        while self.running:
            for frame, arrival, _ in self.rx:
                mouth = float(frame.values[list(REGIONS["mouth"])].max())
                self.got.append((arrival, frame.time.frame, float(frame.values[JAW_OPEN]), mouth))

    def stop(self) -> np.ndarray:
        time.sleep(0.2)
        self.running = False
        self.join(2.0)
        self.rx.close()
        return np.array(self.got).reshape(-1, 4)


@contextlib.contextmanager
def live(
    sink: str, *args: str, output: str | None = None
) -> Iterator[tuple[subprocess.Popen, Packets]]:
    """`nsplayer live` recording the sink's monitor; yields once it prints its banner."""
    packets = Packets()
    packets.start()
    env = {**os.environ, "PULSE_SOURCE": f"{sink}.monitor", "PULSE_SINK": output or sink}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsplayer.cli", "live", "--input-device", "pulse",
         "--target", f"127.0.0.1:{packets.rx.port}", "--seed", "1", *args],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        banner = proc.stderr.readline()
        assert banner.startswith("live: "), banner + proc.stderr.read()
        yield proc, packets
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def speak(sink: str, text: str) -> float:
    """Play espeak-ng speech into the sink; returns when it started (monotonic)."""
    wav = subprocess.run(["espeak-ng", "--stdout", text], capture_output=True, check=True).stdout
    start = time.monotonic()
    subprocess.run(["paplay", "-d", sink], input=wav, check=True)
    return start


@needs_pulse
def test_speech_moves_the_jaw_and_silence_leaves_it_at_rest(sink: str) -> None:
    with live(sink, "--duration", "3.5") as (proc, packets):
        time.sleep(0.6)  # silence first
        spoke = speak(sink, "Hello there, how are you?")
        assert proc.wait(20) == 0, proc.stderr.read()
        got = packets.stop()
    arrival, frames, jaw, _ = got.T
    assert len(got) > 200
    assert (np.diff(frames) == 1).all()  # consecutive timecode, one packet per frame
    assert jaw[arrival < spoke].max() < REST
    assert jaw[(arrival > spoke) & (arrival < spoke + 2.5)].max() > SPEECH
    assert jaw[-20:].max() < REST  # the silence after the speech


@needs_pulse
def test_keyboard_clicks_leave_the_mouth_at_rest(sink: str) -> None:
    """The model alone moves the mouth on clicks (about 0.5); the voice gate keeps it still."""
    rng = np.random.default_rng(3)
    rate, n = 44100, int(0.008 * 44100)
    clicks = (0.001 * rng.standard_normal(2 * rate)).astype(np.float32)
    for start in np.arange(0.05, 1.9, 0.13):  # fast typing: 8 ms bursts, 2 ms decay
        i = int(start * rate)
        clicks[i : i + n] += 0.6 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.002 * rate))
    wav = io.BytesIO()
    sf.write(wav, clicks, rate, format="WAV", subtype="PCM_16")
    with live(sink, "--duration", "2.5") as (proc, packets):
        subprocess.run(["paplay", "-d", sink], input=wav.getvalue(), check=True)
        assert proc.wait(20) == 0
        got = packets.stop()
    assert len(got) > 60
    assert got[:, 2].max() < REST
    assert got[:, 3].max() < REST


@needs_pulse
def test_ctrl_c_eases_out_and_exits_130(sink: str) -> None:
    if sys.platform == "win32":
        pytest.skip("SIGINT to a child process is POSIX")
    with live(sink) as (proc, packets):
        player = threading.Thread(target=speak, args=(sink, "Aaaaaaaah, oooooooh"))
        player.start()
        time.sleep(0.8)  # in the middle of the vowel
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130
        err = proc.stderr.read()
        player.join()
        got = packets.stop()
    assert "Traceback" not in err
    assert got[:, 2].max() > SPEECH
    assert got[-1, 2] < got[:, 2].max() / 2  # eased towards rest, not frozen open


@needs_pulse
def test_device_that_stops_delivering_is_one_line_and_eases_out(sink: str) -> None:
    with live(sink) as (proc, packets):
        time.sleep(0.3)
        subprocess.run(["pactl", "suspend-sink", sink, "1"], check=True)
        assert proc.wait(15) == 1
        err = proc.stderr.read()
        got = packets.stop()
    lines = err.strip().splitlines()
    assert lines[-1].startswith("nsplayer: error: input device 'pulse' stopped delivering audio")
    assert "Traceback" not in err
    assert len(got) > 0 and got[-1, 2] < REST


@needs_pulse
def test_neurosync_server_lost_mid_run_falls_back_to_the_embedded_model(sink, server_url) -> None:
    url, stop_server = server_url
    with live(sink, "--model", "neurosync", "--url", url, "--duration", "4") as (proc, packets):
        player = threading.Thread(target=speak, args=(sink, "Hello there, how are you? " * 3))
        player.start()
        time.sleep(2.5)  # windows answered
        stop_server()
        assert proc.wait(20) == 0
        err = proc.stderr.read()
        player.join()
        got = packets.stop()
    assert "continuing with the embedded model" in err
    assert "Traceback" not in err
    assert len(got) > 30  # frames only once a whole window is in, then from the fallback


@needs_pulse
def test_monitor_plays_the_input(sink: str) -> None:
    with (
        null_sink(f"nsplayer_test_monitor_{os.getpid()}") as out,
        live(sink, "--monitor", "--device", "pulse", "--duration", "3", output=out) as (proc, _),
    ):
        record = subprocess.Popen(
            ["parec", "-d", f"{out}.monitor", "--format=s16le", "--channels=1", "--rate=16000"],
            stdout=subprocess.PIPE,
        )
        speak(sink, "Hello there")
        assert proc.wait(20) == 0
        record.terminate()
        heard = np.frombuffer(record.communicate()[0], np.int16)
    assert np.abs(heard).max() > 3000  # the speech came out of the monitor output


def test_missing_input_device_is_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "live", "--input-device", "no-such-microphone"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("nsplayer: error: --input-device 'no-such-microphone'")
    assert "nsplayer devices" in proc.stderr


def test_timecode_is_consecutive_and_follows_a_drifting_clock() -> None:
    clock = Timecode(60, check_s=1.0)
    start = time.monotonic()
    times = [clock.at(i, start + i / 60) for i in range(120)]
    assert [t.frame - times[0].frame for t in times] == list(range(120))
    drifted = clock.at(180, start + 180 / 60 + 0.05)  # the input clock ran 50 ms fast
    assert drifted.frame - times[0].frame == 183


@pytest.fixture
def server_url() -> Iterator[tuple[str, Callable[[], None]]]:
    """Our own `serve` (the embedded model behind the NeuroSync API) on a free port."""
    from nsplayer.server import ServerSettings, running

    with contextlib.ExitStack() as stack:  # close() stops the server; a second close is a no-op
        server = stack.enter_context(running(ServerSettings(port=0)))
        yield server.url, stack.close


@pytest.fixture
def neurosync_client(server_url) -> object:
    """The real NeuroSync HTTP client talking to that server."""
    from nsplayer.config import NeuroSyncSettings
    from nsplayer.models.neurosync import HttpClient

    return HttpClient(NeuroSyncSettings(url=server_url[0]))


def test_sliding_windows_send_each_frame_once_from_the_newest_window(neurosync_client) -> None:
    windows = SlidingWindows(neurosync_client, 16000, 60, hop_s=0.1)
    out: list[int] = []
    ends: list[int] = []  # frames covered by the audio received so far, at each delivery
    samples = 0
    for _ in range(300):  # 3 s of audio in 10 ms blocks, at about real time
        got = windows.push(np.zeros(160, np.float32))
        samples += 160
        out += [i for i, _ in got]
        ends += [samples * 60 // 16000] * len(got)
        time.sleep(0.01)
    windows.close()
    assert windows.error is None
    assert (np.diff(out) > 0).all()  # each frame at most once, in order (stale ones skipped)
    assert out[0] >= 128 - 12  # not before a whole window, then only its newest frames
    assert len(out) > 30
    lag = np.array(ends) - np.array(out)  # newest frames: never more than ~2 hops behind
    assert lag.max() < 60


def test_frame_time_from_timecode_matches_time_of_day() -> None:
    now = FrameTime.now(60, 1).to_seconds()
    at = Timecode(60).at(0, time.monotonic()).to_seconds()
    assert abs(at - now) < 0.5


def test_live_from_a_file_runs_anywhere_and_records_what_it_sent(tmp_path, capture) -> None:
    """--input-file plays a file as if it were the microphone: no sound card needed, so the
    whole live path (input, gate, model, engine) runs here; --save-csv records the take."""
    csv, stats = tmp_path / "take.csv", tmp_path / "stats.json"
    wav = Path(__file__).parent.parent / "examples" / "speech.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "live", "--input-file", str(wav), "--no-audio",
         "--target", capture.target, "--save-csv", str(csv), "--stats", str(stats), "--duration",
         "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    frames = capture.stop()
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.startswith("live: 'speech.wav' at 22050 Hz; latency")
    numbers = [f.time.frame for f in frames]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    jaws = np.array([f.values[JAW_OPEN] for f in frames])
    assert jaws.max() > SPEECH and jaws[-1] < REST  # spoke, then eased out
    assert 150 <= len(frames) <= 3 * 60 + 30  # about 3 s at 60 fps
    take = read_csv(csv)
    assert len(take.values) == len(frames)
    assert np.allclose(take.values[:, JAW_OPEN], jaws, atol=1e-6)
    report = json.loads(stats.read_text())
    assert report["summary"]["speech_frames"] == len(report["frames"]["sent"]) > 100


def test_live_stats_path_is_checked_before_the_take(tmp_path) -> None:
    wav = Path(__file__).parent.parent / "examples" / "speech.wav"
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "live", "--input-file", str(wav), "--no-audio",
         "--stats", "/nonexistent/x.json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "/nonexistent/x.json" in proc.stderr
