"""The C libraries' chatter on stderr: hidden without -v, shown with it, ours always shown."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import needs_pulse
from hypothesis import given
from hypothesis import strategies as st

from nsplayer.audio.quiet import LineFilter

CHATTER = [
    b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred",
    b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736",
    b"[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (3162) too large",
    b"Note: Illegal Audio-MPEG-Header 0x7fb2ed80 at offset 2708.",
    b"Note: Trying to resync...",
    b"Note: Skipped 104 bytes in input.",
    b"Cannot connect to server socket err = No such file or directory",
    b"jack server is not running or cannot be started",
]
OTHER = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=40
).map(
    lambda text: b"> " + text.encode()  # anything, but never a chatter line
)


@given(
    lines=st.lists(st.one_of(st.sampled_from(CHATTER), OTHER), max_size=20),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
    last=st.one_of(st.sampled_from(CHATTER), OTHER, st.just(b"")),
)
def test_the_filter_drops_exactly_the_chatter_lines_however_the_text_is_cut(lines, cuts, last):
    data = b"".join(line + b"\n" for line in lines) + last  # the last line unterminated
    bounds = [0, *sorted(c for c in cuts if c < len(data)), len(data)]
    lines_filter = LineFilter()
    out = b"".join(lines_filter.feed(data[a:b]) for a, b in itertools.pairwise(bounds))
    out += lines_filter.flush()
    kept = b"".join(line + b"\n" for line in lines if line not in CHATTER)
    assert out == kept + (b"" if last in CHATTER else last)


WRITES = """
import os, sys
from nsplayer.audio.quiet import hush
hush(verbose=sys.argv[1] == "1")
os.write(2, b"ALSA lib pcm.c:8570:(snd_pcm_recover) underrun occurred\\n")
os.write(2, b"a child's traceback, say\\n")
print("nsplayer: ours", file=sys.stderr)
os.write(2, b"Note: Trying to resync...\\nlast words")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_chatter_on_descriptor_2_is_hidden_unless_verbose_and_the_rest_passes(verbose):
    proc = subprocess.run(
        [sys.executable, "-c", WRITES, "1" if verbose else "0"],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    for line in (b"nsplayer: ours\n", b"a child's traceback, say\n", b"last words"):
        assert line in proc.stderr
    assert (b"ALSA lib" in proc.stderr) == verbose
    assert (b"Trying to resync" in proc.stderr) == verbose


def broken_mp3(path) -> None:
    """A short MP3 with damaged frames: libsndfile's mpg123 complains while decoding."""
    tone = 0.3 * np.sin(np.arange(17640) * 2 * np.pi * 440 / 44100)
    sf.write(path, tone.astype(np.float32), 44100, format="MP3")
    data = bytearray(path.read_bytes())
    for i in range(600, len(data), 500):
        data[i : i + 40] = bytes(range(7, 47))
    path.write_bytes(bytes(data))


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
@pytest.mark.parametrize("verbose", [False, True])
def test_play_of_a_damaged_mp3_shows_mpg123_only_with_v(tmp_path, capture, verbose):
    broken_mp3(tmp_path / "bad.mp3")
    args = [str(tmp_path / "bad.mp3"), "--no-audio", "--target", capture.target, "--fps", "30"]
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer", "play", *args, *(["-v"] if verbose else [])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "bad.mp3 ->" in proc.stderr  # our own announcement
    assert ("Illegal Audio-MPEG-Header" in proc.stderr) == verbose
    assert ("libmpg123" in proc.stderr) == verbose


LATE_DEVICE = """
import sys, time
import numpy as np
from nsplayer.audio.quiet import hush
hush(verbose=sys.argv[1] == "1")
from nsplayer.audio.sinks import DeviceSink

class LateSink(DeviceSink):
    late = 0

    def _consume(self, out, dac, underflow=False):
        super()._consume(out, dac, underflow)
        if self.consumed and self.late < 3:  # three callbacks 100 ms late while playing
            self.late += 1
            time.sleep(0.1)

sink = LateSink(48000, 1, device="pulse", buffer_ms=20, callback_s=0.005)
sink.write(np.zeros((24000, 1), np.float32))
sink.end()
deadline = time.monotonic() + 5
while not sink.played() and time.monotonic() < deadline:
    time.sleep(0.01)
sink.close()
print(sink.underruns, sink.status_errors)
"""


@needs_pulse
@pytest.mark.parametrize("verbose", [False, True])
def test_a_late_device_counts_its_underflows_as_underruns_and_alsa_says_so_only_with_v(verbose):
    proc = subprocess.run(
        [sys.executable, "-c", LATE_DEVICE, "1" if verbose else "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    underruns, flagged = map(int, proc.stdout.split())
    assert 1 <= underruns <= flagged  # the ring never ran dry: every gap is the device's
    assert ("underrun occurred" in proc.stderr) == verbose
