"""`nsplayer export`: audio files (and stdin) to Live Link Face CSV, JSON and .npy."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from threadpoolctl import threadpool_info

from livelink import names as N
from livelink import read_csv
from nsplayer import espeak
from nsplayer.cli import main
from nsplayer.export import export
from nsplayer.models import create_model
from nsplayer.server import ServerSettings, running
from nsplayer.takes import load_rows


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    if not espeak.available():
        pytest.skip("no libespeak-ng")
    u = espeak.synthesize("Bob moved five blue boats.", "en-us", 160)
    stereo = np.stack([u.audio, u.audio * 0.5], axis=1)  # exercises the downmix
    path = tmp_path_factory.mktemp("export") / "speech.wav"
    sf.write(path, stereo, u.sample_rate)
    return path


def test_csv_reads_back(speech_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "shapes.csv"
    result = CliRunner().invoke(main, ["export", str(speech_wav), "-o", str(out), "--fps", "30"])
    assert result.exit_code == 0, result.output
    info = sf.info(speech_wav)
    take = read_csv(out)
    assert len(take.values) == math.ceil(info.frames * 30 / info.samplerate)
    assert take.values.shape[1] == 61 and np.isfinite(take.values).all()
    assert take.values[:, N.JAW_OPEN].max() > 0.2


def test_json_npy_and_stdin(speech_wav: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(main, ["export", str(speech_wav), "-o", str(tmp_path / "a.npy")]).exit_code
        == 0
    )
    ref = np.load(tmp_path / "a.npy")
    result = runner.invoke(main, ["export", str(speech_wav), "-o", str(tmp_path / "a.json")])
    assert result.exit_code == 0
    body = json.loads((tmp_path / "a.json").read_text())
    np.testing.assert_allclose(np.array(body["blendshapes"], np.float32), ref)
    result = runner.invoke(
        main, ["export", "-", "-o", str(tmp_path / "b.npy")], input=speech_wav.read_bytes()
    )
    assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), ref, atol=1e-4)


@pytest.mark.parametrize("kind", ["missing", "not-audio", "empty-wav", "bad-output"])
def test_bad_input_is_one_line(kind: str, tmp_path: Path) -> None:
    src, out = tmp_path / "in.wav", tmp_path / "out.csv"
    if kind == "not-audio":
        src.write_text("hello, not audio")
    elif kind == "empty-wav":
        sf.write(src, np.zeros(0, np.float32), 16000)
    elif kind == "bad-output":
        sf.write(src, np.zeros(1600, np.float32), 16000)
        out = tmp_path / "no" / "such" / "dir.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "nsplayer.cli", "export", str(src), "-o", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nsplayer: error: "), proc.stderr


EXPORT = [sys.executable, "-m", "nsplayer.cli", "export"]


def quiet_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment without NSPLAYER_* and with a home that has no config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NSPLAYER_")}
    return {**env, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg"), **extra}


def test_stdout_output_replays_at_its_rate(speech_wav: Path, tmp_path: Path) -> None:
    """`-o -` writes the CSV to stdout; a 30 fps export replays at 30 (not 60) fps."""
    proc = subprocess.run(
        [*EXPORT, str(speech_wav), "-o", "-", "--fps", "30"],
        capture_output=True, timeout=60, cwd=tmp_path, env=quiet_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr.decode().endswith("fps to stdout\n")
    (tmp_path / "out.csv").write_bytes(proc.stdout)
    assert not (tmp_path / "-").exists()
    at_30, at_60 = load_rows(tmp_path / "out.csv", 30), load_rows(tmp_path / "out.csv", 60)
    assert len(at_60) == 2 * len(at_30) - 1


def test_raw_s24le_on_stdin_matches_the_file(speech_wav: Path, tmp_path: Path) -> None:
    audio, rate = sf.read(speech_wav, dtype="float32", always_2d=True)
    raw = tmp_path / "a.raw"
    sf.write(raw, audio, rate, subtype="PCM_24", format="RAW", endian="LITTLE")
    args = ["-", "--raw", "--rate", str(rate), "--channels", "2", "--sample-format", "s24le"]
    proc = subprocess.run(
        [*EXPORT, *args, "-o", str(tmp_path / "raw.npy")],
        input=raw.read_bytes(), capture_output=True, timeout=60, env=quiet_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    file = CliRunner().invoke(main, ["export", str(speech_wav), "-o", str(tmp_path / "f.npy")])
    assert file.exit_code == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "raw.npy"), np.load(tmp_path / "f.npy"), atol=1e-3
    )


@pytest.mark.parametrize(
    ("config", "env", "fps"),
    [("fps: 30\n", {}, 30), ("fps: 30\n", {"NSPLAYER_FPS": "25"}, 25), ("", {}, 60)],
)
def test_export_honours_config_and_environment(speech_wav, tmp_path, config, env, fps) -> None:
    (tmp_path / "nsplayer.yaml").write_text(config)
    proc = subprocess.run(
        [*EXPORT, str(speech_wav), "-o", "out.npy"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=quiet_env(tmp_path, **env),
    )  # fmt: skip
    assert proc.returncode == 0 and f"at {fps} fps" in proc.stderr, proc.stderr


def test_quiet_export_writes_the_file_and_nothing_else(speech_wav, tmp_path) -> None:
    proc = subprocess.run(
        [*EXPORT, str(speech_wav), "-o", "out.npy", "-q"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=quiet_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == ""
    assert len(np.load(tmp_path / "out.npy")) > 0


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            [],
            {"NSPLAYER_FSP": "30"},
            "unknown variable 'NSPLAYER_FSP' (did you mean 'NSPLAYER_FPS'?)",
        ),
        (["--rate", "16000"], {}, "stdin only"),
        (["--sample-format", "s24le"], {}, "--sample-format is for raw PCM on stdin (--raw)"),
    ],
)
def test_export_option_errors_are_one_line(speech_wav, tmp_path, args, env, message) -> None:
    proc = subprocess.run(
        [*EXPORT, str(speech_wav), "-o", "out.csv", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=quiet_env(tmp_path, **env),
    )  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and message in proc.stderr


def test_every_format_replays_the_same_frames(speech_wav: Path, tmp_path: Path) -> None:
    for fmt in ("csv", "json", "npy"):
        out = tmp_path / f"a.{fmt}"
        assert export(str(speech_wav), out, 30, fmt) > 0
    ref = np.load(tmp_path / "a.npy")
    np.testing.assert_array_equal(load_rows(tmp_path / "a.csv", 30), ref)
    np.testing.assert_array_equal(load_rows(tmp_path / "a.json", 30), ref)
    assert not list(tmp_path.glob(".*.part"))


def test_nothing_to_export_leaves_no_file(tmp_path: Path) -> None:
    header = io.BytesIO()
    sf.write(header, np.zeros((0, 1)), 16000, format="WAV")
    proc = subprocess.run(
        [*EXPORT, "-", "-o", str(tmp_path / "out.csv")],
        input=header.getvalue(), capture_output=True, text=False, timeout=60,
        env=quiet_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 1 and b"nothing to export" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_model_work_runs_with_one_blas_thread(speech_wav: Path, tmp_path: Path) -> None:
    """numpy's BLAS spreads the model's small matrices over every core, which made export
    2-3x slower; export holds it to one thread while it works."""
    seen: list[int] = []

    def progress_factory(total):
        return lambda n: seen.extend(i["num_threads"] for i in threadpool_info())

    export(str(speech_wav), tmp_path / "a.npy", 60, "npy", progress_factory=progress_factory)
    assert seen and set(seen) == {1}


def _exported(speech_wav: Path, tmp_path: Path, *args: str, config: str = "") -> np.ndarray:
    (tmp_path / "nsplayer.yaml").write_text(config)
    out = tmp_path / f"out{len(list(tmp_path.glob('*.npy')))}.npy"
    proc = subprocess.run(
        [*EXPORT, str(speech_wav), "-o", str(out), "-q", *args],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=quiet_env(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return np.load(out)


def test_the_dsp_model_is_one_option_or_config_key_away(speech_wav: Path, tmp_path: Path) -> None:
    audio, rate = sf.read(speech_wav, dtype="float32")
    dsp = create_model("dsp", rate, 60, causal=False)
    expected = np.concatenate([dsp.feed(audio.mean(axis=1)), dsp.flush()])
    flag = _exported(speech_wav, tmp_path, "--model", "dsp")
    np.testing.assert_allclose(flag, expected, atol=1e-5)
    np.testing.assert_array_equal(_exported(speech_wav, tmp_path, config="model: dsp\n"), flag)
    default = _exported(speech_wav, tmp_path)
    assert default.shape == flag.shape and np.abs(default - flag).max() > 0.1  # the learned one


def test_export_through_a_neurosync_server_on_loopback(speech_wav: Path, tmp_path: Path) -> None:
    """`nsplayer serve` runs the embedded model offline: a 2 s file in one request comes back
    as the embedded export's frames (the file's samples are already 16-bit)."""
    with running(ServerSettings(port=0, quiet=True)) as server:
        remote = _exported(speech_wav, tmp_path, "--model", "neurosync", "--url", server.url)
    np.testing.assert_allclose(remote, _exported(speech_wav, tmp_path), atol=1e-3)
