"""Live Link Face CSV: round trip, the app's column order, extra columns, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from livelink import CSV_ORDER, FrameTime, read_csv, write_csv
from livelink.names import JAW_LEFT, JAW_OPEN, JAW_RIGHT, MOUTH_LEFT, MOUTH_RIGHT

EMOTIONS = ("Angry", "Disgusted", "Fearful", "Happy", "Neutral", "Sad", "Surprised")


def _app_header() -> list[str]:
    """The header as the app writes it, typed out: JawRight before JawLeft, MouthRight first."""
    eyes = [
        f"Eye{part}{side}"
        for side in ("Left", "Right")
        for part in ("Blink", "LookDown", "LookIn", "LookOut", "LookUp", "Squint", "Wide")
    ]
    mouth = ["MouthClose", "MouthFunnel", "MouthPucker", "MouthRight", "MouthLeft"]
    return [
        "Timecode", "BlendshapeCount", *eyes, "JawForward", "JawRight", "JawLeft", "JawOpen",
        *mouth, *CSV_ORDER[23:],
    ]  # fmt: skip


def test_app_header_matches_csv_order() -> None:
    assert _app_header()[2:] == list(CSV_ORDER)


def test_app_style_csv_maps_left_right_by_name(tmp_path: Path) -> None:
    header = _app_header()
    rows = []
    for i, code in enumerate(["19:16:29:35.273", "19:16:29:36.273", "19:16:29:37.273"]):
        cells = ["0"] * 61
        cells[header.index("JawRight") - 2] = "0.1"
        cells[header.index("JawLeft") - 2] = "0.2"
        cells[header.index("MouthRight") - 2] = "0.3"
        cells[header.index("MouthLeft") - 2] = "0.4"
        cells[header.index("JawOpen") - 2] = f"0.{i + 5}"
        rows.append(",".join([code, "61", *cells]))
    path = tmp_path / "take.csv"
    path.write_text(",".join(header) + "\n" + "\n".join(rows) + "\n")
    take = read_csv(path)
    assert take.values.shape == (3, 61) and take.values.dtype == np.float32
    assert take.values[0, JAW_RIGHT] == np.float32(0.1)
    assert take.values[0, JAW_LEFT] == np.float32(0.2)
    assert take.values[0, MOUTH_RIGHT] == np.float32(0.3)
    assert take.values[0, MOUTH_LEFT] == np.float32(0.4)
    assert list(take.values[:, JAW_OPEN]) == [np.float32(v) for v in (0.5, 0.6, 0.7)]
    assert take.times[0].to_timecode() == "19:16:29:35.273"
    assert take.rate == pytest.approx(60.0)
    assert take.extra == {}


def test_columns_case_insensitive_and_emotions_kept(tmp_path: Path) -> None:
    header = [name.lower() for name in _app_header()[2:]] + list(EMOTIONS)
    path = tmp_path / "shapes.csv"
    row = ["0.5"] * 61 + ["0.1", "0", "0", "0.9", "0", "0", "0"]
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n" + ",".join(row) + "\n")
    take = read_csv(path)
    assert np.all(take.values == 0.5)
    assert list(take.extra) == list(EMOTIONS)
    assert take.extra["Happy"].tolist() == [np.float32(0.9)] * 2
    assert [t.frame for t in take.times] == [0, 1]  # no Timecode column: row index at 60 fps

    out = tmp_path / "out.csv"
    write_csv(out, take.values, 60, extra=take.extra)
    first = out.read_text().splitlines()[0].split(",")
    assert first == _app_header() + list(EMOTIONS)
    assert read_csv(out).extra["Happy"].tolist() == take.extra["Happy"].tolist()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    arrays(np.float32, st.tuples(st.integers(1, 30), st.just(61)),
           elements=st.floats(-1e6, 1e6, width=32)),
    st.sampled_from([24, 25, 30, 60]),
    st.floats(0, 86000),
)  # fmt: skip
def test_round_trip_is_exact(tmp_path: Path, values: np.ndarray, fps: int, start: float) -> None:
    path = tmp_path / "rt.csv"
    write_csv(path, values, fps, start=FrameTime.from_seconds(start, fps))
    take = read_csv(path, timecode_rate=fps)
    assert np.array_equal(take.values, values)
    assert take.times[0].frame == FrameTime.from_seconds(start, fps).frame
    assert [t.frame - take.times[0].frame for t in take.times] == list(range(len(values)))


def _write(tmp_path: Path, header: list[str], row: list[str]) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(",".join(header) + "\n" + ",".join(row) + "\n")
    return path


def test_missing_column_is_named(tmp_path: Path) -> None:
    header = [h for h in _app_header() if h != "JawOpen"]
    path = _write(tmp_path, header, ["00:00:00:00.000", "61"] + ["0"] * 60)
    with pytest.raises(ValueError, match=r"bad\.csv, line 1: missing columns: JawOpen"):
        read_csv(path)


def test_bad_number_names_file_line_and_column(tmp_path: Path) -> None:
    header = _app_header()
    cells = ["00:00:00:00.000", "61"] + ["0"] * 61
    cells[header.index("MouthLeft")] = "abc"
    path = _write(tmp_path, header, cells)
    with pytest.raises(ValueError, match=r"bad\.csv, line 2, column 'MouthLeft': not a number"):
        read_csv(path)


def test_bad_timecode_and_short_row(tmp_path: Path) -> None:
    header = _app_header()
    path = _write(tmp_path, header, ["12:xx", "61"] + ["0"] * 61)
    with pytest.raises(ValueError, match=r"line 2, column 'Timecode'"):
        read_csv(path)
    path = _write(tmp_path, header, ["00:00:00:00.000", "61"] + ["0"] * 10)
    with pytest.raises(ValueError, match=r"line 2: 12 fields, the header has 63"):
        read_csv(path)


def test_write_refuses_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="shape"):
        write_csv(tmp_path / "x.csv", np.zeros((2, 60)), 60)
    with pytest.raises(ValueError, match="rows"):
        write_csv(tmp_path / "x.csv", np.zeros((2, 61)), 60, extra={"Happy": np.zeros(3)})


def neurosync_csv(path: Path, n: int, emotions: bool = True) -> np.ndarray:
    """A shapes.csv laid out as NeuroSync's writer does it (facts from its source): rows at
    60 fps, ``HH:MM:SS:FF.mmm`` with FF the frame in the second and mmm the milliseconds of
    the second (both truncated), BlendshapeCount 61 or 68, the seven emotions after the 61."""
    rng = np.random.default_rng(n)
    values = rng.uniform(0, 1, (n, 68 if emotions else 61))
    names = ["Timecode", "BlendshapeCount", *CSV_ORDER, *(EMOTIONS if emotions else ())]
    lines = [",".join(names)]
    for i in range(n):
        total = i * (1 / 60)
        hours, rest = divmod(total, 3600)
        minutes, seconds = divmod(rest, 60)
        ms = (seconds - int(seconds)) * 1000
        frame = int(ms / (1000 / 60))
        code = f"{int(hours):02}:{int(minutes):02}:{int(seconds):02}:{frame:02}.{int(ms):03}"
        lines.append(",".join([code, str(values.shape[1]), *map(str, values[i])]))
    path.write_text("\n".join(lines) + "\n")
    return values


def test_neurosync_shapes_csv_is_timed_at_60_fps(tmp_path: Path) -> None:
    take = read_csv(
        neurosync_csv(tmp_path / "shapes.csv", 610) is not None and tmp_path / "shapes.csv"
    )
    assert take.rate == 60.0 and take.timecode_rate == 60
    np.testing.assert_allclose(take.seconds, np.arange(610) / 60, atol=1e-9)
    assert list(take.extra) == list(EMOTIONS) and len(take.extra["Happy"]) == 610


@pytest.mark.parametrize("n", [2, 7, 30, 59, 61, 200])
def test_short_neurosync_takes_are_60_fps(tmp_path: Path, n: int) -> None:
    neurosync_csv(tmp_path / "s.csv", n, emotions=False)
    assert read_csv(tmp_path / "s.csv").rate == 60.0


@pytest.mark.parametrize("fps", [24, 25, 30, 50, 60, 120])
@pytest.mark.parametrize("seconds", [1.2, 2.0, 2.9])
def test_short_takes_get_their_rate_from_the_frame_field(tmp_path: Path, fps, seconds) -> None:
    """A take that wraps into the next second once says its rate (f + step - g)."""
    path = tmp_path / "t.csv"
    write_csv(path, np.zeros((round(seconds * fps), 61)), fps, start=FrameTime(fps - 3, 0.5, fps))
    take = read_csv(path)
    assert take.rate == fps and take.timecode_rate == fps
    np.testing.assert_allclose(take.seconds, np.arange(round(seconds * fps)) / fps, atol=1e-9)


def test_every_second_row_and_midnight(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    start = FrameTime.from_seconds(86400 - 0.5, 60)
    write_csv(path, np.zeros((60, 61)), 60, start=start)
    assert read_csv(path).rate == 60.0  # 23:59:59:30 .. 00:00:00:29
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:1] + lines[1::2]) + "\n")
    assert read_csv(path).rate == 30.0  # every second row of a 60 fps timecode


def test_unbalanced_quote_is_one_short_line(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    row = ",".join(["00:00:00:00.000", "61", *["0"] * 61])
    path.write_text(",".join(_app_header()) + "\n" + '"' + (row + "\n") * 3000)
    with pytest.raises(ValueError) as info:
        read_csv(path)
    assert "unbalanced quote" in str(info.value) and len(str(info.value)) < 300


VALID = (
    ",".join([*_app_header(), "Happy"])
    + "\n"
    + "".join(f"00:00:00:{i:02d}.000,61,{','.join(['0.5'] * 61)},0.1\n" for i in range(3))
).encode()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.tuples(st.integers(0, len(VALID)), st.integers(0, 40), st.binary(max_size=8)).map(
            lambda t: VALID[: t[0]] + t[2] + VALID[t[0] + t[1] :]
        ),
    )
)
def test_any_bytes_read_or_give_one_short_value_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.csv"
    path.write_bytes(data)
    try:
        take = read_csv(path)
    except ValueError as exc:
        text = str(exc)
        assert "\n" not in text and len(text) < 260 + len(str(path)), text
    else:
        assert take.values.shape == (len(take.frames), 61) and np.isfinite(take.rate)
