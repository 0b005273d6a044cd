"""Standard streams a newcomer or a service manager may hand over: a terminal as stdin,
closed stdin, stdout or stderr. Each gets one line and exit 1 where the command needs the
stream, and no traceback ever."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

NSPLAYER = [sys.executable, "-m", "nsplayer"]  # the entry point, as `nsplayer` runs it
FROM_STDIN = [["play", "-", "--no-audio"], ["export", "-", "-o", "x.csv"]]


def run(args: list[str], cwd: Path, closed: int | None = None, **kwargs):
    """The command, with file descriptor ``closed`` (0, 1 or 2) closed in the child."""
    close = None if closed is None else (lambda: os.close(closed))
    return subprocess.run(
        [*NSPLAYER, *args], capture_output=closed is None or closed == 0, text=True, timeout=60,
        cwd=cwd, preexec_fn=close, **kwargs,
    )  # fmt: skip


@pytest.fixture
def wav(tmp_path) -> Path:
    path = tmp_path / "tone.wav"
    t = np.arange(16000) / 16000
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t) * (t > 0.2), 16000)
    return path


@pytest.mark.parametrize("command", FROM_STDIN)
def test_a_terminal_as_stdin_is_one_line_not_a_wait(tmp_path, command):
    """`nsplayer play -` typed in a terminal would wait for ever for audio; it says what to do."""
    controller, terminal = pty.openpty()
    try:
        proc = run(command, tmp_path, stdin=terminal)
    finally:
        os.close(controller)
        os.close(terminal)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "stdin, which is a terminal" in proc.stderr and "| nsplayer play -" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("command", FROM_STDIN)
def test_a_closed_stdin_is_one_line(tmp_path, command):
    proc = run(command, tmp_path, closed=0)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "stdin, which is closed" in proc.stderr


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["export", "TONE", "-o", "-"], "stdout is closed — give -o FILE"),
        (["listen", "--count", "1", "--timeout", "0.5"], "stdout is closed: listen prints"),
    ],
)
def test_a_closed_stdout_is_one_line_where_the_output_goes_there(tmp_path, wav, command, message):
    command = [str(wav) if a == "TONE" else a for a in command]
    proc = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *NSPLAYER, *command],
        capture_output=False, stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_a_closed_stderr_still_plays_and_exports(tmp_path, wav):
    assert run(["play", str(wav), "--no-audio"], tmp_path, closed=2).returncode == 0
    assert run(["export", str(wav), "-o", "x.csv"], tmp_path, closed=2).returncode == 0
    assert (tmp_path / "x.csv").stat().st_size > 0
