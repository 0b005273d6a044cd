"""`nsplayer devices` on a machine where PortAudio finds no device at all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ALSA_CONF = Path("/usr/share/alsa/alsa.conf")


@pytest.mark.skipif(not ALSA_CONF.exists(), reason="needs ALSA's configuration")
def test_no_devices_is_one_line_saying_what_to_do_and_exit_1(tmp_path):
    """ALSA's own configuration without its plug-in hooks (no pulse, no default device) and
    no sound card: PortAudio lists nothing, as on a bare server."""
    text, hooks = ALSA_CONF.read_text(), "@hooks ["
    start = text.index(hooks)
    bare = text[:start] + text[text.index("\n]", start) + 2 :]
    (tmp_path / "alsa.conf").write_text(bare)
    env = {**os.environ, "ALSA_CONFIG_PATH": str(tmp_path / "alsa.conf")}
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer", "devices"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    if proc.returncode == 0 and proc.stdout.count("\n") > 1:  # devices and the legend
        pytest.skip("this machine has a sound card ALSA finds without plug-ins")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert "no audio devices found" in proc.stderr and "--no-audio" in proc.stderr
