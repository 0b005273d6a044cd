"""`nsplayer export`: audio files (and stdin) to Live Link Face CSV, JSON and .npy."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from livelink import names as N
from livelink import read_csv
from nsplayer.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import espeak_events


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    if not espeak_events.available():
        pytest.skip("no libespeak-ng")
    u = espeak_events.synthesize("Bob moved five blue boats.", "en-us", 160)
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
