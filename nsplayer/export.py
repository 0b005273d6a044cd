"""Offline export: audio -> blendshape frames -> Live Link Face CSV, JSON or .npy.

The audio is streamed through the model in blocks and CSV and JSON rows are written as the
blocks come, so memory does not grow with the length of the audio (an .npy needs its row
count up front: its float32 rows are gathered, ~1 MB per audio minute). A file is written
under a temporary name and renamed at the end, so an interrupted export never leaves half a
take under the real name; ``-`` writes to stdout. The model runs in offline mode (more
look-ahead) unless the caller asks for the causal output that ``nsplayer live`` would produce.
BLAS is held to one thread: the model's matrices are small, and numpy's default of one thread
per core made export 2-3x slower.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TextIO

import numpy as np
from threadpoolctl import threadpool_limits

from livelink import CsvWriter
from nsplayer.audio.sources import AudioSource, open_source, to_mono
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model
from nsplayer.models.base import EMOTION_NAMES, N_SHAPES

if TYPE_CHECKING:
    from nsplayer.config import NeuroSyncSettings

FORMATS = ("csv", "json", "npy")
BLOCK_S = 1.0
STDOUT = "-"


def frame_blocks(
    source: AudioSource,
    fps: int = 60,
    *,
    causal: bool = False,
    model: str = "embedded",
    settings: NeuroSyncSettings | None = None,
    report: Callable[[str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[np.ndarray]:
    """Frames (n, 61 or 68) for ``source`` block by block; ``progress(samples)`` after each.
    ``model``, ``settings``, ``report``: as ``create_model`` takes them."""
    face = create_model(
        model, source.sample_rate, fps, causal=causal, settings=settings, report=report
    )
    try:
        for block in source.blocks(max(1, round(BLOCK_S * source.sample_rate))):
            frames = face.feed(to_mono(block))
            if progress is not None:
                progress(len(block))
            if len(frames):
                yield frames
        frames = face.flush()
        if len(frames):
            yield frames
    finally:
        face.close()


def output_format(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the output's extension names, else CSV."""
    if fmt is not None:
        return fmt
    ext = out.suffix.lower().lstrip(".")
    return ext if ext in FORMATS else "csv"


def _write_csv(blocks: Iterator[np.ndarray], handle: TextIO, fps: int) -> int:
    writer, count = None, 0
    for frames in blocks:
        if writer is None:
            emotions = EMOTION_NAMES if frames.shape[1] > N_SHAPES else ()
            writer = CsvWriter(handle, fps, extra=emotions)
        writer.write(frames[:, :N_SHAPES], list(frames[:, N_SHAPES:].T))
        count += len(frames)
    return count


def _write_json(blocks: Iterator[np.ndarray], handle: TextIO, fps: int) -> int:
    """{"fps": N, "blendshapes": [[...], ...]}, one row per line, float32 in shortest form."""
    handle.write(f'{{"fps": {fps}, "blendshapes": [\n')
    count = 0
    for frames in blocks:
        finite = np.nan_to_num(frames.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
        for row in finite.astype(str):
            handle.write((",\n" if count else "") + "[" + ", ".join(row) + "]")
            count += 1
    handle.write("\n]}\n")
    return count


def _write_npy(blocks: Iterator[np.ndarray], handle: BinaryIO, fps: int) -> int:
    frames = np.concatenate([b.astype(np.float32) for b in blocks])
    np.save(handle, frames)
    return len(frames)


_WRITERS = {"csv": (_write_csv, False), "json": (_write_json, False), "npy": (_write_npy, True)}


@contextlib.contextmanager
def _opened(out: Path, binary: bool) -> Iterator[TextIO | BinaryIO]:
    """stdout for ``-``, else a temporary file renamed to ``out`` only when all went well."""
    if str(out) == STDOUT:
        yield from _stdout(binary)
        return
    part = out.with_name(f".{out.name}.part")
    try:
        handle = part.open("wb") if binary else part.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise NsplayerError(f"{out}: cannot write ({exc.strerror or exc})") from None
    try:
        with handle:
            yield handle
        os.replace(part, out)
    except OSError as exc:
        raise NsplayerError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        part.unlink(missing_ok=True)


def _stdout(binary: bool) -> Iterator[TextIO | BinaryIO]:
    if sys.stdout is None:
        raise NsplayerError("stdout is closed — give -o FILE, or redirect stdout to a file")
    if binary and sys.stdout.isatty():
        raise NsplayerError("an .npy is binary: redirect stdout to a file, or use -o FILE")
    stream = sys.stdout.buffer if binary else sys.stdout
    try:
        yield stream
        stream.flush()
    except BrokenPipeError:  # the reader stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        raise NsplayerError("stdout was closed before the export finished") from None


def write_frames(blocks: Iterator[np.ndarray], out: Path, fps: int, fmt: str) -> int:
    """Write frame blocks (at least one) as Live Link Face CSV (with the emotion columns when
    the model gives them), NeuroSync-style JSON, or a float32 .npy; returns the frame count.
    ``out`` may be ``-`` for stdout."""
    if fmt not in _WRITERS:
        raise NsplayerError(f"unknown format {fmt!r} — choose one of {', '.join(FORMATS)}")
    write, binary = _WRITERS[fmt]
    with _opened(out, binary) as handle:
        return write(iter(blocks), handle, fps)


def export(
    audio: str,
    out: Path,
    fps: int = 60,
    fmt: str = "csv",
    *,
    causal: bool = False,
    model: str = "embedded",
    settings: NeuroSyncSettings | None = None,
    report: Callable[[str], None] | None = None,
    progress_factory: Callable[[int | None], Callable[[int], None]] | None = None,
    raw: bool = False,
    rate: int | None = None,
    channels: int | None = None,
    sample_format: str | None = None,
) -> int:
    """Export ``audio`` (a path, or ``-`` for stdin as WAV or with ``raw`` as raw PCM) to
    ``out`` (a path, or ``-`` for stdout) through ``model``; returns the number of frames
    written.

    ``progress_factory(total_samples or None)`` gives the per-block progress callback.
    """
    source = open_source(audio, raw, rate, channels, sample_format)
    try:
        progress = progress_factory(source.frames) if progress_factory else None
        with threadpool_limits(1):
            blocks = frame_blocks(
                source, fps, causal=causal, model=model, settings=settings, report=report,
                progress=progress,
            )  # fmt: skip
            first = next(blocks, None)  # the output is opened once there is something to write
            if first is None:
                raise NsplayerError(f"{source.name}: no audio samples — nothing to export")
            return write_frames(itertools.chain([first], blocks), out, fps, fmt)
    finally:
        source.close()
