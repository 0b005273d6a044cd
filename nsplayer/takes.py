"""Takes for replay: precomputed frames from every format ``export`` writes, at the player's fps.

A Live Link Face CSV (the app's, NeuroSync's shapes.csv, export's, --save-csv's) carries its
timing in the timecodes; export's JSON says its ``fps`` (NeuroSync's API answer has none and is
60 fps); an ``.npy`` array carries no rate, so its rows are taken at the player's fps. The
format is told by the file's first bytes, not its name. Every problem is one short line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livelink import read_csv
from nsplayer.errors import NsplayerError
from nsplayer.framerate import resample_rows
from nsplayer.models.base import EMOTION_NAMES, N_SHAPES, N_WITH_EMOTIONS

MAX_JSON_BYTES = 32 * 1024 * 1024  # ~10 min at 60 fps; longer takes go to CSV or .npy
MAX_ERROR = 200  # characters of an error line
NEUROSYNC_FPS = 60  # NeuroSync's JSON answer has no fps field
MIN_RATE, MAX_RATE = 1, 240  # rows per second of a take: sparser ones would balloon on resampling
_AUDIO_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"FORM", b"\xff\xfb", b"\xff\xf3")
_WHAT = {"csv": "Live Link Face CSV", "json": "JSON take", "npy": ".npy take"}


def load_rows(path: Path, fps: int) -> np.ndarray:
    """Frames (n, 61) or (n, 68) float32 at ``fps``: linear resampling where the take was
    recorded at another rate; with the seven emotion columns in EMOTION_NAMES order if the
    take has them."""
    path = Path(path)
    kind = _kind(path)
    try:
        rows, rate = _READERS[kind](path, fps)
    except (OSError, ValueError) as exc:
        detail = str(exc).removeprefix(str(path)).lstrip(",: ")
        raise _error(f"{path}: not a {_WHAT[kind]} we can read ({detail})") from None
    if len(rows) == 0:
        raise _error(f"{path}: the take has no frames")
    return resample_rows(rows, rate, fps)


def _error(text: str) -> NsplayerError:
    return NsplayerError(text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 3] + "...")


def _kind(path: Path) -> str:
    """csv, json or npy from the first bytes; refuses what is not a take with a hint."""
    if not path.exists():
        raise _error(f"{path}: no such file — give a take (CSV, JSON or .npy, e.g. from export)")
    if path.is_dir():
        raise _error(f"{path} is a directory — give a take (CSV, JSON or .npy, e.g. from export)")
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise _error(f"{path}: cannot open ({exc.strerror or exc})") from None
    if not head:
        raise _error(f"{path}: the file is empty (0 bytes)")
    if head.startswith(_AUDIO_MAGIC):
        raise _error(f"{path} is audio, not a take — arguments swapped? (replay AUDIO SHAPES)")
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    return "json" if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[") else "csv"


def _csv(path: Path, fps: int) -> tuple[np.ndarray, float]:
    take = read_csv(path)
    if not MIN_RATE <= take.rate <= MAX_RATE:
        apart = f"{1 / take.rate:.3g} s"
        raise ValueError(
            f"its rows are {apart} apart; a take has {MIN_RATE}..{MAX_RATE} per second"
        )
    extra = {name.lower(): column for name, column in take.extra.items()}
    emotions = [extra.get(name.lower()) for name in EMOTION_NAMES]
    if not all(e is not None and e.dtype.kind == "f" for e in emotions):
        return take.values, take.rate
    rows = np.empty((len(take.values), N_WITH_EMOTIONS), np.float32)
    rows[:, :N_SHAPES] = take.values
    for j, column in enumerate(emotions, start=N_SHAPES):
        rows[:, j] = column
    return rows, take.rate


def _json(path: Path, fps: int) -> tuple[np.ndarray, float]:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MB; export long takes as CSV or .npy")
    try:
        body = json.loads(path.read_bytes())
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if isinstance(body, list):
        body = {"blendshapes": body}
    if not isinstance(body, dict) or "blendshapes" not in body:
        raise ValueError('expected {"fps": N, "blendshapes": [[61 or 68 numbers], ...]}')
    rate = body.get("fps", NEUROSYNC_FPS)
    is_number = isinstance(rate, int | float) and not isinstance(rate, bool)
    if not is_number or not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"'fps' must be a number in {MIN_RATE}..{MAX_RATE}")
    try:
        rows = np.array(body["blendshapes"], dtype=np.float32)
    except TypeError:
        raise ValueError("'blendshapes' must be rows of numbers") from None
    return _checked(rows, "'blendshapes'"), float(rate)


def _npy(path: Path, fps: int) -> tuple[np.ndarray, float]:
    array = np.load(path, mmap_mode="r", allow_pickle=False)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"the array holds {array.dtype}, not numbers")
    return _checked(np.asarray(array, dtype=np.float32), "the array"), float(fps)


def _checked(rows: np.ndarray, what: str) -> np.ndarray:
    if rows.size == 0:
        return rows.reshape(0, N_SHAPES)
    if rows.ndim != 2 or rows.shape[1] not in (N_SHAPES, N_WITH_EMOTIONS):
        raise ValueError(f"{what} has shape {rows.shape}, not (frames, 61 or 68)")
    return rows


_READERS: dict[str, Callable[[Path, int], tuple[np.ndarray, float]]] = {
    "csv": _csv,
    "json": _json,
    "npy": _npy,
}
