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
