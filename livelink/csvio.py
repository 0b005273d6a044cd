"""Live Link Face CSV (the app's recordings, NeuroSync's shapes.csv): read by name, write in
the app's column order with ``Timecode`` (HH:MM:SS:FF.fff) and ``BlendshapeCount`` columns."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livelink.frametime import FrameTime
from livelink.names import BLENDSHAPE_NAMES, CSV_ORDER, N_VALUES

_STANDARD_RATES = (24, 25, 30, 48, 50, 60, 120, 240)
_KNOWN = {name.lower() for name in (*BLENDSHAPE_NAMES, "Timecode", "BlendshapeCount")}


@dataclass
class CsvTake:
    """A recorded take: per-row times, values in protocol order, extra columns by name.

    ``rate`` is rows per second (estimated from the timecodes; the timecode rate if there are
    fewer than two rows). ``times`` are FrameTime at the timecode's nominal rate.
    """

    times: list[FrameTime]
    values: np.ndarray  # (n, 61) float32, protocol order
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    rate: float = 60.0

    @property
    def seconds(self) -> np.ndarray:
        """Row times in seconds relative to the first row."""
        absolute = np.array([t.to_seconds() for t in self.times], dtype=np.float64)
        return absolute - absolute[0] if len(absolute) else absolute


def _timecode_rate(codes: list[str]) -> int:
    """Nominal timecode rate: the smallest standard rate above the largest FF field, once a
    whole second has been seen (three distinct seconds); 60, the app's rate, before that."""
    largest, seconds = 0, set()
    for code in codes:
        parts = code.strip().replace(";", ":").split(":")
        if len(parts) == 4 and parts[3].split(".")[0].isdigit():
            largest = max(largest, int(parts[3].split(".")[0]))
            seconds.add(tuple(parts[:3]))
    if len(seconds) < 3:
        return max(60, largest + 1)
    return next((r for r in _STANDARD_RATES if r > largest), largest + 1)


def _number(text: str, where: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}, column {column!r}: not a number: {text!r}") from None


def _columns(path: Path, header: list[str]) -> tuple[list[int], list[int], int | None]:
    """Positions of the 61 names (protocol order), of the extra columns, and of Timecode."""
    lower = [name.lower() for name in header]
    duplicates = sorted({name for name in header if lower.count(name.lower()) > 1})
    if duplicates:
        raise ValueError(f"{path}, line 1: duplicate columns: {', '.join(duplicates)}")
    missing = [name for name in BLENDSHAPE_NAMES if name.lower() not in lower]
    if len(missing) == len(BLENDSHAPE_NAMES):
        raise ValueError(
            f"{path}, line 1: no Live Link Face header (Timecode, BlendshapeCount, ...)"
        )
    if missing:
        raise ValueError(f"{path}, line 1: missing columns: {', '.join(missing)}")
    index = [lower.index(name.lower()) for name in BLENDSHAPE_NAMES]
    extra = [i for i, name in enumerate(lower) if name not in _KNOWN]
    return index, extra, lower.index("timecode") if "timecode" in lower else None


def _values(path: Path, header: list[str], body: list[tuple[int, list[str]]], index: list[int]):
    """(n, 61) float32; on a bad cell, parse cell by cell to name its line and column."""
    for line, row in body:
        if len(row) != len(header):
            raise ValueError(
                f"{path}, line {line}: {len(row)} fields, the header has {len(header)}"
            )
    cells = [[row[i] for i in index] for _, row in body]
    try:
        return np.array(cells, dtype=np.str_).astype(np.float32).reshape(len(body), N_VALUES)
    except ValueError:
        for line, row in body:
            for i in index:
                _number(row[i], f"{path}, line {line}", header[i])
        raise


def _times(path: Path, body: list[tuple[int, list[str]]], col: int | None, rate: int | None):
    """FrameTime per row from the Timecode column (row index at ``rate`` if there is none)."""
    if col is None:
        return [FrameTime(i, 0.0, rate or 60) for i in range(len(body))]
    rate = rate or _timecode_rate([row[col] for _, row in body])
    times = []
    for line, row in body:
        try:
            times.append(FrameTime.from_timecode(row[col], rate))
        except ValueError as exc:
            raise ValueError(f"{path}, line {line}, column 'Timecode': {exc}") from None
    return times


def read_csv(path: str | Path, timecode_rate: int | None = None) -> CsvTake:
    """Read a Live Link Face CSV. Columns are matched by name, case-insensitively; columns
    other than Timecode, BlendshapeCount and the 61 names are returned in ``extra``.
    ``timecode_rate`` overrides the rate guessed from the timecodes (60 for short takes).
    ValueError naming file, line and column for missing columns or bad values."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a Live Link Face CSV header")
    header = [name.strip() for name in rows[0]]
    index, extra_cols, code_col = _columns(path, header)
    body = [(n, row) for n, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    values = _values(path, header, body, index)
    times = _times(path, body, code_col, timecode_rate)
    extra = {header[i]: _column([row[i].strip() for _, row in body]) for i in extra_cols}
    take = CsvTake(times, values, extra, times[0].rate if times else float(timecode_rate or 60))
    steps = np.diff(take.seconds)
    if len(steps) and np.median(steps) > 0:
        take.rate = float(1.0 / np.median(steps))
    return take


def _column(texts: list[str]) -> np.ndarray:
    """Numbers as float32 when every cell parses, else the text as it was."""
    try:
        return np.array([float(t) for t in texts], np.float32)
    except ValueError:
        return np.array(texts, dtype=object)


def write_csv(
    path: str | Path,
    values: np.ndarray,
    fps: int = 60,
    start: FrameTime | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write rows of 61 values (protocol order) at ``fps`` as a Live Link Face CSV.

    Row i is stamped ``start + i / fps`` (start defaults to 00:00:00:00). ``extra`` columns
    (e.g. NeuroSync's emotions) follow the blendshapes, one value per row. Float32 values
    are written in their shortest exact form, so reading the file back gives them exactly.
    """
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != N_VALUES:
        raise ValueError(f"values must have shape (n, {N_VALUES}), got {values.shape}")
    extra = dict(extra or {})
    for name, column in extra.items():
        if len(column) != len(values):
            raise ValueError(f"extra column {name!r} has {len(column)} rows, not {len(values)}")
        if name.lower() in _KNOWN:
            raise ValueError(f"extra column {name!r} clashes with a standard column")
    base = FrameTime(0, 0.0, fps) if start is None else start
    if (base.rate_num, base.rate_den) != (fps, 1):
        base = FrameTime.from_seconds(base.to_seconds(), fps)
    order = [BLENDSHAPE_NAMES.index(name) for name in CSV_ORDER]
    cells = values[:, order].astype(str)
    extra_cells = [
        np.asarray(c).astype(np.float32).astype(str)
        if np.asarray(c).dtype.kind in "fiub"
        else np.asarray(c).astype(str)
        for c in extra.values()
    ]
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["Timecode", "BlendshapeCount", *CSV_ORDER, *extra])
        for i in range(len(values)):
            code = base.advance(i).to_timecode()
            writer.writerow([code, N_VALUES, *cells[i], *(c[i] for c in extra_cells)])
