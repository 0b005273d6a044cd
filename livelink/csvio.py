"""Live Link Face CSV (the app's recordings, NeuroSync's shapes.csv): read by name, write in
the app's column order with ``Timecode`` (HH:MM:SS:FF.fff) and ``BlendshapeCount`` columns.

Both directions stream: reading parses rows in batches into arrays sized by a first pass that
counts lines, writing formats a batch of rows at a time, so memory does not grow with the
length of a take beyond its float32 values.

Two conventions share the timecode's ``.fff``: the app writes the fraction of a frame
(``19:16:29:35.273``), NeuroSync writes milliseconds of the second (``00:00:00:01.016``).
``read_csv`` tells them apart from the data, and finds the frame rate from the frame field
where it wraps into the next second, so short takes at any rate are timed right.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from livelink.frametime import FrameTime
from livelink.names import BLENDSHAPE_NAMES, CSV_ORDER, N_VALUES

_STANDARD_RATES = (24, 25, 30, 48, 50, 60, 120, 240)
_KNOWN = {name.lower() for name in (*BLENDSHAPE_NAMES, "Timecode", "BlendshapeCount")}
_TIMECODE = re.compile(r"^\s*(\d{1,4}):(\d{1,2}):(\d{1,2})[:;](\d{1,3})(?:\.(\d{1,9}))?\s*$")
_DAY_S = 86400
_BATCH = 4096  # rows parsed or formatted at once
_SHOW = 40  # characters of a bad cell quoted in an error
_MAX_COLUMNS = 512  # 63 standard columns and room for extras; bounds a batch's memory


class CsvError(ValueError):
    """The file is not a Live Link Face CSV we can read; the text names file, line, column."""


@dataclass
class CsvTake:
    """A recorded take: values in protocol order, per-row times, extra columns by name.

    ``frames`` and ``subframes`` are each row's time of day in frames at ``timecode_rate``;
    ``rate`` is rows per second (the timecode rate divided by the usual step between rows).
    """

    values: np.ndarray  # (n, 61) float32, protocol order
    frames: np.ndarray  # (n,) int64
    subframes: np.ndarray  # (n,) float64 in [0, 1)
    timecode_rate: int = 60
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    rate: float = 60.0

    @property
    def seconds(self) -> np.ndarray:
        """Row times in seconds relative to the first row."""
        absolute = (self.frames + self.subframes) / self.timecode_rate
        return absolute - absolute[0] if len(absolute) else absolute

    @property
    def times(self) -> list[FrameTime]:
        """Each row's FrameTime (built on demand: a long take need not hold one per row)."""
        rate = self.timecode_rate
        return [
            FrameTime(int(f), float(s), rate)
            for f, s in zip(self.frames, self.subframes, strict=True)
        ]


def _short(text: str) -> str:
    return repr(text if len(text) <= _SHOW else text[: _SHOW - 3] + "...")


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_short(n)[1:-1] for n in names[:5])
    return shown if len(names) <= 5 else f"{shown}, ... ({len(names)} in all)"


def _columns(path: Path, header: list[str]) -> tuple[list[int], list[int], int | None]:
    """Positions of the 61 names (protocol order), of the extra columns, and of Timecode."""
    if len(header) > _MAX_COLUMNS:
        raise CsvError(f"{path}, line 1: {len(header)} columns; a Live Link Face CSV has 63")
    lower = [name.lower() for name in header]
    counts = Counter(lower)
    duplicates = sorted({name for name in header if counts[name.lower()] > 1})
    if duplicates:
        raise CsvError(f"{path}, line 1: duplicate columns: {_names(duplicates)}")
    missing = [name for name in BLENDSHAPE_NAMES if name.lower() not in counts]
    if len(missing) == len(BLENDSHAPE_NAMES):
        raise CsvError(f"{path}, line 1: no Live Link Face header (Timecode, BlendshapeCount, ...)")
    if missing:
        raise CsvError(f"{path}, line 1: missing columns: {_names(missing)}")
    where = {name: i for i, name in enumerate(lower)}
    index = [where[name.lower()] for name in BLENDSHAPE_NAMES]
    extra = [i for i, name in enumerate(lower) if name not in _KNOWN]
    return index, extra, where.get("timecode")


def _count_lines(path: Path) -> int:
    """Upper bound of the rows (line breaks + 1), read in blocks without keeping them."""
    count = 1
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            count += max(block.count(b"\n"), block.count(b"\r"))
    return count


def _rows(path: Path, handle: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each non-blank row; csv and decoding errors become one CsvError."""
    reader = csv.reader(handle)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as exc:
        hint = ' — an unbalanced quote (")?' if "field limit" in str(exc) else ""
        raise CsvError(f"{path}, line {reader.line_num}: {exc}{hint}") from None
    except UnicodeDecodeError as exc:
        raise CsvError(
            f"{path}, near line {reader.line_num + 1}: not UTF-8 text "
            f"(byte 0x{exc.object[exc.start]:02x}) — is it a Live Link Face CSV?"
        ) from None


class _Parsed:
    """Arrays sized by a line count and filled batch by batch from the rows of one CSV."""

    def __init__(self, path: Path, header: list[str], size: int) -> None:
        self.path, self.header = path, header
        self.index, self.extra_cols, self.code_col = _columns(path, header)
        self.values = np.empty((size, N_VALUES), np.float32)
        self.extra = np.empty((size, len(self.extra_cols)), np.float32)
        self.text: dict[int, list[str]] = {}  # extra columns that are not all numbers
        # Timecode fields: second of day, frame, the digits after the dot and their count.
        self.codes = np.zeros((size, 4), np.int64)
        self.n = 0

    def add(self, batch: list[tuple[int, list[str]]]) -> None:
        lo, hi = self.n, self.n + len(batch)
        width = len(self.header)
        for line, row in batch:
            if len(row) != width:
                raise CsvError(
                    f"{self.path}, line {line}: {len(row)} fields, the header has {width}"
                )
        try:
            self.values[lo:hi] = np.array(
                [[row[i] for i in self.index] for _, row in batch], np.float32
            )
        except ValueError:
            self._name_bad_cell(batch)
            raise
        for j, i in enumerate(self.extra_cols):
            self._add_extra(j, [row[i].strip() for _, row in batch])
        if self.code_col is not None:
            for k, (line, row) in enumerate(batch):
                self.codes[lo + k] = self._timecode(line, row[self.code_col])
        self.n = hi

    def _add_extra(self, j: int, cells: list[str]) -> None:
        if j not in self.text:
            try:
                self.extra[self.n : self.n + len(cells), j] = np.array(cells, np.float32)
                return
            except ValueError:
                self.text[j] = self.extra[: self.n, j].astype(str).tolist()
        self.text[j].extend(cells)

    def extra_columns(self) -> dict[str, np.ndarray]:
        """Numbers as float32 when every cell parses, else the text."""
        return {
            self.header[i]: np.array(self.text[j], dtype=object)
            if j in self.text
            else self.extra[: self.n, j]
            for j, i in enumerate(self.extra_cols)
        }

    def _name_bad_cell(self, batch: list[tuple[int, list[str]]]) -> None:
        for line, row in batch:
            for i in self.index:
                try:
                    float(row[i])
                except ValueError:
                    raise CsvError(
                        f"{self.path}, line {line}, column {_short(self.header[i])}: "
                        f"not a number: {_short(row[i])}"
                    ) from None

    def _timecode(self, line: int, text: str) -> tuple[int, int, int, int]:
        match = _TIMECODE.match(text)
        if not match or int(match[2]) >= 60 or int(match[3]) >= 60:
            raise CsvError(
                f"{self.path}, line {line}, column 'Timecode': not a timecode "
                f"HH:MM:SS:FF.fff: {_short(text)}"
            )
        hh, mm, ss, ff = (int(g) for g in match.groups()[:4])
        digits = match[5] or ""
        return (hh * 60 + mm) * 60 + ss, ff, int(digits or 0), len(digits)


def _millis_rate(ff: np.ndarray, digits: np.ndarray, count: np.ndarray) -> int | None:
    """The rate at which ``.fff`` is NeuroSync's milliseconds of the second (the frame field
    is the frame within that second), or None if the fractions are the app's subframes."""
    if len(ff) < 2 or np.any(count != 3) or np.all(digits == digits[0]):
        return None
    for rate in _STANDARD_RATES:
        low, high = ff * 1000 / rate - 1.5, (ff + 1) * 1000 / rate + 1.5
        if ff.max() < rate and np.all((digits >= low) & (digits < high)):
            return rate
    return None


def _frame_rate(seconds: np.ndarray, ff: np.ndarray) -> int:
    """The timecode rate: where the frame field wraps into the next second (``f`` then ``g``
    with a usual step ``s`` between rows, rate = f + s - g); before a take has wrapped at
    least once, the smallest standard rate above the largest frame field once three seconds
    were seen, else 60 (the app's rate)."""
    largest = int(ff.max()) if len(ff) else 0
    same = np.diff(seconds) == 0
    steps = np.diff(ff)[same]
    steps = steps[steps > 0]
    wraps = (np.diff(seconds) % _DAY_S) == 1
    if len(steps) and wraps.any():
        step = int(np.median(steps))
        guesses = ff[:-1][wraps] + step - ff[1:][wraps]
        guesses = guesses[guesses > largest]
        if len(guesses):
            return int(Counter(guesses.tolist()).most_common(1)[0][0])
    if len(np.unique(seconds)) < 3:
        return max(60, largest + 1)
    return next((r for r in _STANDARD_RATES if r > largest), largest + 1)


def _times(parsed: _Parsed, forced: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Frames and subframes of day for each row, and the timecode rate."""
    n = parsed.n
    if parsed.code_col is None:
        return np.arange(n, dtype=np.int64), np.zeros(n), forced or 60
    seconds, ff, digits, count = parsed.codes[:n].T
    millis = None if forced else _millis_rate(ff, digits, count)
    if millis is not None:
        return (
            seconds * millis + np.round(digits * millis / 1000).astype(np.int64),
            np.zeros(n),
            millis,
        )
    rate = forced or _frame_rate(seconds, ff)
    if len(ff) and ff.max() >= rate:
        k = int(np.argmax(ff))
        raise CsvError(
            f"{parsed.path}, row {k + 1}, column 'Timecode': frame {ff[k]} at {rate} fps"
        )
    return seconds * rate + ff, digits / 10.0**count, rate


def _row_rate(frames: np.ndarray, timecode_rate: int) -> float:
    steps = np.diff(frames)
    steps = steps[steps > 0]
    return timecode_rate / float(np.median(steps)) if len(steps) else float(timecode_rate)


def read_csv(path: str | Path, timecode_rate: int | None = None) -> CsvTake:
    """Read a Live Link Face CSV. Columns are matched by name, case-insensitively; columns
    other than Timecode, BlendshapeCount and the 61 names are returned in ``extra``.
    ``timecode_rate`` overrides the rate found from the timecodes. CsvError (a ValueError)
    naming file, line and column for anything it cannot read; OSError if it cannot open."""
    path = Path(path)
    size = _count_lines(path)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = _rows(path, handle)
        first = next(rows, None)
        if first is None:
            raise CsvError(f"{path}: empty file, expected a Live Link Face CSV header")
        parsed = _Parsed(path, [name.strip() for name in first[1]], size)
        batch: list[tuple[int, list[str]]] = []
        for item in rows:
            batch.append(item)
            if len(batch) == _BATCH:
                parsed.add(batch)
                batch = []
        parsed.add(batch)
    frames, subframes, rate = _times(parsed, timecode_rate)
    values, extra = parsed.values[: parsed.n], parsed.extra_columns()
    return CsvTake(values, frames, subframes, rate, extra, _row_rate(frames, rate))


class CsvWriter:
    """Writes rows of 61 values (protocol order) as they come, stamped ``start + i / fps``.

    ``extra`` names columns after the blendshapes (e.g. NeuroSync's emotions); each
    ``write`` then gives one value per row for each. Float32 values are written in their
    shortest exact form, so reading the file back gives them exactly.
    """

    def __init__(
        self,
        handle: TextIO,
        fps: int = 60,
        start: FrameTime | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        for name in extra:
            if name.lower() in _KNOWN:
                raise ValueError(f"extra column {name!r} clashes with a standard column")
        base = FrameTime(0, 0.0, fps) if start is None else start
        if (base.rate_num, base.rate_den) != (fps, 1):
            base = FrameTime.from_seconds(base.to_seconds(), fps)
        self._next = base
        self._extra = tuple(extra)
        self._order = [BLENDSHAPE_NAMES.index(name) for name in CSV_ORDER]
        self._writer = csv.writer(handle, lineterminator="\n")
        self._writer.writerow(["Timecode", "BlendshapeCount", *CSV_ORDER, *self._extra])

    def write(self, values: np.ndarray, extra: Sequence[np.ndarray] = ()) -> None:
        """Append rows: ``values`` (n, 61) and one length-n column per extra name."""
        values = _checked(values, self._extra, extra)
        for lo in range(0, len(values), _BATCH):
            hi = min(lo + _BATCH, len(values))
            cells = values[lo:hi, self._order].astype(str)
            extra_cells = [_cells(np.asarray(column[lo:hi])) for column in extra]
            for i in range(hi - lo):
                code = self._next.to_timecode()
                self._next = self._next.advance()
                self._writer.writerow([code, N_VALUES, *cells[i], *(c[i] for c in extra_cells)])


def _checked(values: np.ndarray, names: Sequence[str], extra: Sequence[np.ndarray]) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != N_VALUES:
        raise ValueError(f"values must have shape (n, {N_VALUES}), got {values.shape}")
    if len(extra) != len(names):
        raise ValueError(f"{len(extra)} extra columns given, the header has {len(names)}")
    for name, column in zip(names, extra, strict=True):
        if len(column) != len(values):
            raise ValueError(f"extra column {name!r} has {len(column)} rows, not {len(values)}")
    return values


def _cells(column: np.ndarray) -> np.ndarray:
    return (
        column.astype(np.float32).astype(str) if column.dtype.kind in "fiub" else column.astype(str)
    )


def write_csv(
    path: str | Path,
    values: np.ndarray,
    fps: int = 60,
    start: FrameTime | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write rows of 61 values (protocol order) at ``fps`` as a Live Link Face CSV.

    Row i is stamped ``start + i / fps`` (start defaults to 00:00:00:00). ``extra`` columns
    (e.g. NeuroSync's emotions) follow the blendshapes, one value per row. Nothing is
    written if the values or columns do not fit.
    """
    extra = dict(extra or {})
    values = _checked(values, list(extra), list(extra.values()))
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        CsvWriter(handle, fps, start, list(extra)).write(values, list(extra.values()))
