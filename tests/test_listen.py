"""`nsplayer listen` end to end: a real subprocess against a LiveLinkSender in the test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import numpy as np
import pytest
from conftest import start_listen

from livelink import FrameTime, LiveLinkReceiver, LiveLinkSender, device_id_for
from nsplayer.listen import Subjects, SubjectStats, meter_lines, status_line

CLI = [sys.executable, "-m", "nsplayer.cli", "listen"]


def test_json_count_decodes_what_the_sender_sends() -> None:
    proc, port = start_listen("--json", "--count", "5", "--timeout", "20")
    sent = [np.linspace(0, 1, 61, dtype=np.float32) * i / 5 for i in range(5)]
    with LiveLinkSender([f"127.0.0.1:{port}"], subject="talker") as sender:
        for i, values in enumerate(sent):
            sender.send(values, FrameTime(1000 + i, 0.5, 30000, 1001))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 5
    for i, row in enumerate(rows):
        assert set(row) == {"subject", "device_id", "frame", "subframe", "rate", "values"}
        assert row["subject"] == "talker" and row["device_id"] == device_id_for("talker")
        assert (row["frame"], row["subframe"], row["rate"]) == (1000 + i, 0.5, [30000, 1001])
        assert np.array_equal(np.array(row["values"], np.float32), sent[i])
    assert "listen: 5 packets, 0 malformed, subjects: talker" in err


def test_timeout_without_packets_says_nothing_arrived_and_exits_one() -> None:
    proc, port = start_listen("--timeout", "0.3")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "no packets yet" in out
    assert err.strip() == (
        f"nsplayer: error: nothing arrived on UDP 127.0.0.1:{port} in 0.3 s — check the "
        f"sender's --target (this machine's address and port {port}) and firewalls"
    )


@pytest.mark.skipif(os.name == "nt", reason="signals to a child need POSIX")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_print_a_summary_and_exit_128_plus_the_signal(sig: int, code: int) -> None:
    proc, _ = start_listen()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "(interrupted)" in err


def _finish_after_close(proc: subprocess.Popen, poke: Callable[[], None]) -> str:
    """Close the reader's end of stdout, poke the listener into writing again until it
    exits (at most 20 s), and return what it wrote on stderr meanwhile."""
    proc.stdout.close()
    for _ in range(400):
        poke()
        try:
            proc.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
    err = proc.stderr.read()
    proc.wait(timeout=20)
    return err


def test_json_reader_gone_exits_zero_without_a_word() -> None:
    """`nsplayer listen --json | head -1`: status 0, no traceback, no summary (like `yes`)."""
    proc, port = start_listen("--json", "--timeout", "20")
    values = np.zeros(61, np.float32)
    with LiveLinkSender([f"127.0.0.1:{port}"], subject="talker") as sender:
        for frame in range(3):
            sender.send(values, FrameTime(frame))
        assert json.loads(proc.stdout.readline())["subject"] == "talker"
        err = _finish_after_close(proc, lambda: sender.send(values, FrameTime(9)))
    assert proc.returncode == 0, err
    assert err == ""


def test_meter_reader_gone_exits_zero_without_a_word() -> None:
    """`nsplayer listen | head -1`: the plain meter's next line finds the pipe closed."""
    proc, _ = start_listen("--timeout", "20")
    assert "no packets yet" in proc.stdout.readline()
    err = _finish_after_close(proc, lambda: None)  # the next status line comes within 1 s
    assert proc.returncode == 0, err
    assert err == ""


def test_port_in_use_is_one_line_and_nonzero() -> None:
    with LiveLinkReceiver(0) as busy:
        proc = subprocess.run(
            [*CLI, "--port", str(busy.port)], capture_output=True, text=True, timeout=20
        )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsplayer: error: cannot listen on UDP")
    assert "Traceback" not in proc.stderr


def test_meter_shows_key_shapes_per_subject() -> None:
    from livelink import FaceFrame

    values = np.zeros(61, np.float32)
    values[17], values[52] = 0.5, -0.05  # JawOpen, HeadYaw (-9°)
    stats = SubjectStats(FaceFrame(values, "a", device_id_for("a"), FrameTime(5)), packets=1)
    stats.arrivals.append(10.0)
    lines = meter_lines({"a": stats}, now=10.5)
    assert len(lines) == 11
    assert lines[0].startswith("a [") and "1 pkt/s" in lines[0]
    assert any("jaw open" in line and "0.50" in line for line in lines)
    assert any("head yaw" in line and "-9.0°" in line for line in lines)
    assert status_line({"a": stats}, 10.5, 2) == "a: 1 pkt/s jaw 0.50 close 0.00; malformed 2"


def test_terminal_meter_redraws_in_place() -> None:
    import io

    from livelink import FaceFrame
    from nsplayer.listen import _Display

    out = io.StringIO()
    display = _Display(out, tty=True)
    stats = SubjectStats(FaceFrame(np.zeros(61), "a", "id", FrameTime(1)), packets=3)
    subjects = Subjects()
    subjects.add(stats.last, 1.0)
    subjects.add(stats.last, 1.0)
    subjects.add(stats.last, 1.0)
    display.update(subjects, 0, now=1.0)
    display.update(subjects, 1, now=1.05)  # too soon: no redraw
    display.update(subjects, 1, now=1.2)
    first, second = out.getvalue().split("\x1b[J")[1:]
    assert first.startswith("3 packets, 0 malformed") and second.startswith(
        "3 packets, 1 malformed"
    )
    assert out.getvalue().count(f"\x1b[{first.count(chr(10))}F") == 1  # up over 12 lines
