"""Takes for replay: every format export writes, NeuroSync's shapes.csv, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livelink import CSV_ORDER, write_csv
from nsplayer.errors import NsplayerError
from nsplayer.models.base import EMOTION_NAMES
from nsplayer.takes import MAX_ERROR, load_rows

RNG = np.random.default_rng(7)
FRAMES = RNG.uniform(0, 1, (60, 68)).astype(np.float32)  # 2 s at 30 fps, with emotions


# 7 KB: rows an hour apart, which resampled to 60 fps would be 5 M rows (1.2 GB).
SPARSE_CSV = (
    "\n".join(
        ["Timecode,BlendshapeCount," + ",".join(CSV_ORDER)]
        + [f"{h:02d}:00:00:00.000,61," + ",".join(["0.1"] * 61) for h in range(24)]
    )
    + "\n"
).encode()


def one_line(info: pytest.ExceptionInfo) -> str:
    text = str(info.value)
    assert "\n" not in text and len(text) <= MAX_ERROR, text
    return text


def test_csv_with_emotions_at_its_own_rate(tmp_path: Path) -> None:
    path = tmp_path / "shapes.csv"
    write_csv(
        path, FRAMES[:, :61], 30, extra=dict(zip(EMOTION_NAMES, FRAMES[:, 61:].T, strict=True))
    )
    same = load_rows(path, 30)
    np.testing.assert_array_equal(same, FRAMES)
    doubled = load_rows(path, 60)  # a 2 s take at 30 fps replays for 2 s at 60 fps
    assert doubled.shape == (119, 68)
    np.testing.assert_allclose(doubled[::2], FRAMES, atol=1e-6)


def test_json_and_npy_as_export_writes_them(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"fps": 30, "blendshapes": FRAMES.tolist()}))
    np.testing.assert_allclose(load_rows(tmp_path / "a.json", 30), FRAMES)
    assert load_rows(tmp_path / "a.json", 60).shape == (119, 68)
    (tmp_path / "neurosync.json").write_text(json.dumps({"blendshapes": FRAMES.tolist()}))
    assert load_rows(tmp_path / "neurosync.json", 30).shape == (30, 68)  # NeuroSync: 60 fps
    np.save(tmp_path / "a.npy", FRAMES[:, :61])
    np.testing.assert_array_equal(load_rows(tmp_path / "a.npy", 24), FRAMES[:, :61])
    with (tmp_path / "named.csv").open("wb") as handle:  # the first bytes decide, not the name
        np.save(handle, FRAMES)
    assert load_rows(tmp_path / "named.csv", 30).shape == (60, 68)


def test_neurosync_shapes_csv_keeps_its_length(tmp_path: Path) -> None:
    """610 rows of NeuroSync's shapes.csv (ms-of-second timecodes) stay 610 rows at 60 fps."""
    lines = [",".join(["Timecode", "BlendshapeCount", *CSV_ORDER, *EMOTION_NAMES])]
    for i in range(610):
        ms = (i / 60 % 1) * 1000
        code = f"00:00:{int(i / 60):02}:{int(ms / (1000 / 60)):02}.{int(ms):03}"
        lines.append(",".join([code, "68", *["0.25"] * 68]))
    (tmp_path / "shapes.csv").write_text("\n".join(lines) + "\n")
    rows = load_rows(tmp_path / "shapes.csv", 60)
    assert rows.shape == (610, 68) and np.all(rows == 0.25)


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("audio.wav", None, "is audio, not a take — arguments swapped?"),
        ("empty.csv", b"", "the file is empty (0 bytes)"),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("shape.json", b'{"fps": 30, "blendshapes": [[1, 2]]}', "not (frames, 61 or 68)"),
        ("fps.json", b'{"fps": 0, "blendshapes": []}', "'fps' must be a number in 1..240"),
        ("objects.json", b'{"blendshapes": [[{}]]}', "rows of numbers"),
        ("text.json", b'{"blendshapes": [["x"]]}', "not a JSON take we can read"),
        ("bad.npy", b"\x93NUMPY\x01\x00garbage", "not a .npy take we can read"),
        ("quote.csv", b'Timecode,"' + b"x" * 200_000, "unbalanced quote"),
        ("header.csv", b"a,b\n1,2\n", "no Live Link Face header"),
        ("sparse.csv", SPARSE_CSV, "rows are 3.6e+03 s apart; a take has 1..240 per second"),
    ],
)
def test_bad_takes_are_one_short_line(tmp_path: Path, name: str, data, message: str) -> None:
    path = tmp_path / name
    if data is None:
        sf.write(path, np.zeros(1600), 16000)
    else:
        path.write_bytes(data)
    with pytest.raises(NsplayerError) as info:
        load_rows(path, 60)
    assert message in one_line(info)


def test_pickled_and_object_npy_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NsplayerError, match=r"not a \.npy take"):
        load_rows(tmp_path / "obj.npy", 60)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 61)))
    with pytest.raises(NsplayerError, match=r"shape \(2, 3, 61\)"):
        load_rows(tmp_path / "cube.npy", 60)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(NsplayerError, match="no such file"):
        load_rows(tmp_path / "nope.csv", 60)
    with pytest.raises(NsplayerError, match="is a directory"):
        load_rows(tmp_path, 60)


def test_long_cells_are_cut(tmp_path: Path) -> None:
    header = ",".join(["Timecode", "BlendshapeCount", *CSV_ORDER])
    row = ",".join(["00:00:00:00.000", "61", "9" * 5000 + "x", *["0"] * 60])
    (tmp_path / "long.csv").write_text(header + "\n" + row + "\n")
    with pytest.raises(NsplayerError) as info:
        load_rows(tmp_path / "long.csv", 60)
    assert "not a number" in one_line(info)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(["t.csv", "t.json", "t.npy"]), st.binary(max_size=300))
def test_any_bytes_load_or_give_one_short_line(tmp_path: Path, name: str, data: bytes) -> None:
    for body in (data, b"\x93NUMPY" + data, b'{"blendshapes": ' + data):
        path = tmp_path / name
        path.write_bytes(body)
        try:
            rows = load_rows(path, 60)
        except NsplayerError as exc:
            assert "\n" not in str(exc) and len(str(exc)) <= MAX_ERROR
        else:
            assert rows.dtype == np.float32 and rows.shape[1] in (61, 68)
