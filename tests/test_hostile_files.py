"""Hostile and careless files: configs, audio headers, takes. Each gives one short line."""

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from nsplayer.audio.sources import open_source
from nsplayer.config import find_config, load_options
from nsplayer.errors import NsplayerError


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty working directory and a fake home: no real config file can leak in."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}


def one_line(exc: pytest.ExceptionInfo, limit: int = 300) -> str:
    text = str(exc.value)
    assert "\n" not in text and len(text) <= limit, text
    return text


# ~300 bytes that expand to 9**8 strings when anything walks them (repr in an error line).
ALIAS_BOMB = "fps:\n  - &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"  - &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(7)
)


def test_yaml_alias_bomb_is_refused_before_expanding(home):
    Path("nsplayer.yaml").write_text(ALIAS_BOMB)
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "aliases" in one_line(info) and "line 3" in one_line(info)


def test_deeply_nested_yaml_is_one_line_not_recursion_error(home):
    Path("nsplayer.yaml").write_text("fps: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "nested deeper" in one_line(info)


def test_huge_config_is_refused_unread(home):
    Path("nsplayer.yaml").write_text("# padding\n" * 10_000)
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "larger than 64 KB" in one_line(info)


def test_long_values_and_keys_are_cut_in_errors(home):
    Path("nsplayer.yaml").write_text("subject: [" + ",".join(["abcdefgh"] * 2000) + "]\n")
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "'subject' must be a non-empty string, got ['abcdefgh'" in one_line(info, 250)
    Path("nsplayer.yaml").write_text("? " + "k" * 30_000 + "\n: 1\n")
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    assert "unknown key 'kkk" in one_line(info, 250)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("stats: /home/user/.bashrc\n", "stats"),
        ("save_csv: ../../important.txt\n", "save_csv"),
        ("url: http://evil.example/a2b\n", "neurosync.url"),
        ("neurosync: {url: 'http://evil.example/a2b'}\n", "neurosync.url"),
        ("neurosync: {api_key: abc}\n", "neurosync.api_key"),
    ],
)
def test_config_found_in_the_current_folder_cannot_set_outputs_or_url(home, tmp_path, text, key):
    Path("nsplayer.yaml").write_text(text)
    with pytest.raises(NsplayerError) as info:
        load_options({}, env=home)
    line = one_line(info)
    assert f"may not set '{key}'" in line and "command line" in line
    chosen = tmp_path / "chosen.yaml"  # the same file, named on purpose, is trusted
    chosen.write_text(text)
    load_options({}, chosen, env=home)
    load_options({}, env={**home, "NSPLAYER_CONFIG": str(chosen)})
    user = Path(home["XDG_CONFIG_HOME"]) / "nsplayer" / "nsplayer.yaml"
    user.parent.mkdir(parents=True)
    Path("nsplayer.yaml").rename(user)
    load_options({}, env=home)


def test_config_found_here_may_keep_harmless_defaults(home):
    Path("nsplayer.yaml").write_text(
        "fps: 30\nstats: null\nneurosync: {url: 'http://127.0.0.1:5000/audio_to_blendshapes'}\n"
    )
    assert load_options({}, env=home).fps == 30


def test_missing_nsplayer_config_names_the_variable(home, tmp_path):
    with pytest.raises(NsplayerError) as info:
        find_config(None, {**home, "NSPLAYER_CONFIG": str(tmp_path / "gone.yaml")})
    assert (
        one_line(info)
        == f"NSPLAYER_CONFIG points to {tmp_path / 'gone.yaml'}, which does not exist"
    )
    with pytest.raises(NsplayerError, match="which is a directory"):
        find_config(None, {**home, "NSPLAYER_CONFIG": str(tmp_path)})
    with pytest.raises(NsplayerError, match="is a directory — check the --config path"):
        find_config(tmp_path, home)


def hostile_wav(rate: int, channels: int = 1, data_size: int = 0xFFFFFFFF) -> bytes:
    """A 60-byte WAV whose header claims ``rate`` and an endless data chunk."""
    fmt = struct.pack("<HHIIHH", 1, channels, rate, 0, 2 * channels, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_size)
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + body + b"\0" * 16


def hostile_flac(rate: int, total: int) -> bytes:
    """A 42-byte FLAC: STREAMINFO only, claiming ``total`` samples (36 bits) and no frames."""
    bits = (rate << 44) | (0 << 41) | (15 << 36) | total
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + bits.to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


HOSTILE = {
    "rate-1ghz.wav": (hostile_wav(10**9), "sample rate 1000000000 Hz is outside 8000..384000"),
    "rate-100mhz.wav": (hostile_wav(10**8), "sample rate 100000000 Hz"),
    "rate-4hz.wav": (hostile_wav(4), "sample rate 4 Hz"),
    "channels.wav": (hostile_wav(16000, channels=1000), "1000 channels (1..32 supported)"),
    "frames.flac": (hostile_flac(48000, 2**36 - 1), "claims 398 hours of audio"),
    "rate.flac": (hostile_flac(655350, 2**36 - 1), "sample rate 655350 Hz"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_audio_headers_are_refused_as_files(tmp_path, name):
    data, message = HOSTILE[name]
    (tmp_path / name).write_bytes(data)
    with pytest.raises(NsplayerError) as info:
        open_source(tmp_path / name)
    assert message in one_line(info)


@pytest.mark.parametrize("name", [n for n in sorted(HOSTILE) if n.endswith(".wav")])
def test_hostile_wav_headers_are_refused_on_stdin(name):
    data, message = HOSTILE[name]
    with pytest.raises(NsplayerError) as info:
        open_source("-", stdin=io.BytesIO(data))
    assert message in one_line(info)


# The child's own peak (VmHWM of its address space): ru_maxrss would also count the memory of
# the process it was forked from (Linux keeps it across exec), i.e. the test runner's.
PEAK_RSS = """
import re, sys
from pathlib import Path
from nsplayer.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    peak = re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())
    print(exit.code, int(peak.group(1)) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("name", ["rate-1ghz.wav", "frames.flac"])
def test_hostile_audio_costs_no_memory_in_export(tmp_path, name):
    """Measured in a child process: the export stays near the interpreter's own size."""
    (tmp_path / name).write_bytes(HOSTILE[name][0])
    args = ["export", str(tmp_path / name), "-o", str(tmp_path / "out.csv")]
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *args], capture_output=True, text=True, timeout=60
    )
    code, peak_mb = proc.stdout.split()
    assert code == "1" and int(peak_mb) < 300, proc.stdout
    assert proc.stderr.count("\n") == 1 and HOSTILE[name][1] in proc.stderr
