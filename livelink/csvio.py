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
    if len(values):
        base.to_timecode()  # a negative start fails here, before the file is touched
    order = [BLENDSHAPE_NAMES.index(name) for name in CSV_ORDER]
    numbers = [values[:, order]]
    texts: dict[int, list[str]] = {}  # output column (after Timecode) -> quoted cells
    for k, column in enumerate(extra.values(), start=N_VALUES):
        column = np.asarray(column)
        if column.dtype.kind in "fiub":
            numbers.append(column.astype(np.float32)[:, None])
        else:
            texts[k] = [_quote(cell) for cell in column.astype(str).tolist()]
    table = np.hstack(numbers)
    header = _LINE.writerow(["Timecode", "BlendshapeCount", *CSV_ORDER, *extra])
    with Path(path).open("wb") as handle:
        handle.write(header.encode("utf-8"))
        step = max(1, _CHUNK // table.shape[1])
        for first in range(0, len(values), step):
            rows = range(first, min(first + step, len(values)))
            handle.write(_rows(table[rows.start : rows.stop], texts, base, rows))


# --- writing in bulk ---------------------------------------------------------------------------
# A 10-minute take is 2.2 million numbers; numpy's per-value float32 printing (Dragon4) and a
# csv.writer call per row took seconds. Rows are instead laid out as fixed-width byte cells
# with a mask of the bytes that show, then compressed into the file's bytes in one pass.

_CHUNK = 1 << 16  # numbers per block: big enough to amortise numpy calls, small for the cache
_CELL = 21  # bytes per number: sign, 6 integer digits, '.', 12 fraction digits, separator
_POW10 = np.array([float(10**k) for k in range(13)])  # exact in float64
_QUADS = np.frombuffer("".join(f"{i:04d}" for i in range(10000)).encode(), np.uint32)
_INT_PLACES = np.arange(5, -1, -1)  # integer digit cells: 10**5 .. 10**0
_FRAC_PLACES = np.arange(1, 13)  # fraction digit cells: 10**-1 .. 10**-12
_DIGIT_COUNT = _POW10[1:6]  # integer parts at or above these have more digits
# numpy prints float32 positionally for 1e-4 <= |x| < 1e6, compared in float64: as bits,
# the first float32 at or above 1e-4 (float32(1e-4) itself is below) and 1e6
_LOW_BITS = np.nextafter(np.float32(1e-4), np.float32(1)).view(np.uint32)
_HIGH_BITS = np.float32(1e6).view(np.uint32)


class _Echo:
    """A file whose write returns the text: csv.writer then formats a line as a string."""

    def write(self, text: str) -> str:
        return text


_LINE = csv.writer(_Echo(), lineterminator="\n")


def _quote(cell: str) -> str:
    """A text cell exactly as csv.writer writes it inside a row (quoted only if needed)."""
    return _LINE.writerow((cell, ""))[:-2]


def _rows(table: np.ndarray, texts: dict[int, list[str]], base: FrameTime, rows: range) -> bytes:
    """The file's bytes for these rows: timecode and count, numbers and text in column order."""
    cells, shown = _number_cells(table.ravel())
    cells = cells.reshape(len(rows), -1, _CELL)
    shown = shown.reshape(cells.shape)
    parts = [_text_cells(_timecodes(base, rows))]
    done = prev = 0  # numeric columns placed; output column where the current run starts
    for column in [*sorted(texts), table.shape[1] + len(texts)]:
        if column > prev:
            run = slice(done, done + column - prev)
            parts.append(
                (cells[:, run].reshape(len(rows), -1), shown[:, run].reshape(len(rows), -1))
            )
            done += column - prev
        if column in texts:
            parts.append(_text_cells(texts[column][rows.start : rows.stop]))
        prev = column + 1
    data = np.concatenate([part[0] for part in parts], axis=1)
    mask = np.concatenate([part[1] for part in parts], axis=1)
    data[:, -1] = ord("\n")  # the last cell's separator ends the line
    return data[mask].tobytes()


def _timecodes(base: FrameTime, rows: range) -> list[str]:
    """Timecode and blendshape count cells, as FrameTime.to_timecode writes them; the
    "HH:MM:SS:" head is formatted once per second of rows."""
    fps = max(1, round(base.rate))
    millis = min(int(base.subframe * 1000 + 0.5), 999)
    tails = [f"{ff:02d}.{millis:03d},{N_VALUES}" for ff in range(fps)]
    codes: list[str] = []
    frame = base.frame + rows.start
    while len(codes) < len(rows):
        seconds, ff = divmod(frame, fps)
        minutes, ss = divmod(seconds, 60)
        hh, mm = divmod(minutes, 60)
        head = f"{hh:02d}:{mm:02d}:{ss:02d}:"
        count = min(fps - ff, len(rows) - len(codes))
        codes += [head + tail for tail in tails[ff : ff + count]]
        frame += count
    return codes


def _text_cells(cells: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Ready-made cells as (bytes, shown) blocks, one row each, a separator byte after each."""
    encoded = [cell.encode("utf-8") for cell in cells]
    lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
    width = int(lengths.max(initial=0))
    data = np.full((len(cells), width + 1), ord(","), np.uint8)
    if width:
        data[:, :width] = np.array(encoded, f"S{width}").view(np.uint8).reshape(-1, width)
    mask = np.arange(width + 1) < lengths[:, None]
    mask[:, width] = True
    return data, mask


def _number_cells(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float32 values as numpy prints them, one fixed-width cell each, and the bytes shown.

    numpy prints the shortest decimal that reads back as the same float32, positionally for
    1e-4 <= |x| < 1e6 (and 0): that range is laid out here from the digits _shortest finds;
    the rest (tiny, huge, nan, inf) is printed by numpy itself.
    """
    size = x.view(np.uint32) & 0x7FFFFFFF  # |x| as bits: ordered like |x|, nan and inf above
    fast = np.flatnonzero((size >= _LOW_BITS) & (size < _HIGH_BITS))
    digits, places, ok = _shortest(np.abs(x[fast]))
    fast = fast[ok]
    value = np.zeros(len(x))  # zeros stay 0 at place 0: "0.0", "-0.0"
    place = np.zeros(len(x), np.int64)
    value[fast], place[fast] = digits[ok], places[ok]
    cells, shown = _positional(value, place, np.signbit(x))
    slow = size != 0
    slow[fast] = False
    if slow.any():
        text = _numpy_text(x[slow])
        cells[slow, :20] = text
        shown[slow, :20] = text != 0
    return cells, shown


def _positional(
    digits: np.ndarray, place: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cells "-dddddd.dddddddddddd," for |x| = digits * 10**place (place -12..0), with the
    bytes shown: the sign if negative, the integer digits from the first non-zero one (at
    least one), the fraction digits down to place (at least one). Float64 arithmetic on
    integers below 2**53, so exact."""
    scale = _POW10.take(-place)
    whole = np.floor(digits / scale)
    frac = (digits - whole * scale) * _POW10.take(12 + place)  # fraction * 10**12
    groups = np.empty((len(digits), 5))  # 2 + 4 integer digits, 3 * 4 fraction digits
    groups[:, 0] = np.floor(whole / 1e4)
    groups[:, 1] = whole - groups[:, 0] * 1e4
    groups[:, 2] = np.floor(frac / 1e8)
    rest = frac - groups[:, 2] * 1e8
    groups[:, 3] = np.floor(rest / 1e4)
    groups[:, 4] = rest - groups[:, 3] * 1e4
    text = _QUADS.take(groups.astype(np.intp)).view(np.uint8).reshape(len(digits), 20)
    cells = np.empty((len(digits), _CELL), np.uint8)
    cells[:, 0], cells[:, 7], cells[:, 20] = ord("-"), ord("."), ord(",")
    cells[:, 1:7], cells[:, 8:20] = text[:, 2:8], text[:, 8:]
    shown = np.ones((len(digits), _CELL), bool)
    shown[:, 0] = negative
    count = np.searchsorted(_DIGIT_COUNT, whole, side="right") + 1
    shown[:, 1:7] = count[:, None] > _INT_PLACES
    shown[:, 8:20] = np.maximum(-place, 1)[:, None] >= _FRAC_PLACES
    return cells, shown


def _numpy_text(x: np.ndarray) -> np.ndarray:
    """numpy's own text for these float32 values (each distinct one printed once), as
    (n, 20) bytes padded with zeros."""
    bits, index = np.unique(x.view(np.uint32), return_inverse=True)
    text = bits.view(np.float32).astype(str).astype("S20")
    return text[index.ravel()].view(np.uint8).reshape(len(x), 20)


def _shortest(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits d and place j of the decimal d * 10**j that numpy's Dragon4 prints for each
    positive float32 below 1e6: at the coarsest place where a multiple of 10**j lies strictly
    inside the float's rounding interval, the nearer one (the even one on a tie). Places
    stop at 0: integer digits show anyway. Exact in float64 (see _probe); ``ok`` is False
    only if the first place was misjudged, which the interval width rules out."""
    wide = a.astype(np.float64)
    hi = np.spacing(a).astype(np.float64) * 0.5  # half the gap up to the next float32
    lo = np.where(a.view(np.uint32) & 0x7FFFFF, hi, hi * 0.5)  # powers of two: gap down is half
    place = np.floor(np.log10(lo + hi)).astype(np.int64)  # 10**place < the gap: one fits
    ok, digits = _probe(wide, place, lo, hi)
    todo = np.flatnonzero(ok & (place < 0))
    while todo.size:  # one place coarser while a decimal still fits: a few rounds, shrinking
        up = place[todo] + 1
        found, coarser = _probe(wide[todo], up, lo[todo], hi[todo])
        todo, up = todo[found], up[found]
        place[todo], digits[todo] = up, coarser[found]
        todo = todo[up < 0]
    return digits, place, ok


def _probe(
    a: np.ndarray, place: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Is a multiple of 10**place strictly inside (a - lo, a + hi), and which one would
    Dragon4 pick? For places -12..0 every step is exact: a has 24 significant bits and
    10**12 = 5**12 * 2**12 with 5**12 < 2**28, so a * 10**-place fits in 53 bits."""
    scale = _POW10.take(-place)
    y = a * scale
    down = np.floor(y)
    below = y - down  # in units of 10**place, to the multiple below and the one above
    above = 1.0 - below
    take_lo, take_hi = below < lo * scale, above < hi * scale
    keep_lo = (below < above) | ((below == above) & (down % 2 == 0))
    return take_lo | take_hi, down + (take_hi & ~(take_lo & keep_lo))
