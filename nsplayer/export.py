"""Offline export: audio file -> blendshape frames -> Live Link Face CSV, JSON or .npy.

The audio is streamed through the model in blocks, so long files need little memory and
the caller can show progress. The model runs in offline mode (more look-ahead) unless the
caller asks for the causal output that ``nsplayer live`` would produce.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from livelink import write_csv
from nsplayer.audio.sources import AudioSource, open_source, to_mono
from nsplayer.errors import NsplayerError
from nsplayer.models import create_model

FORMATS = ("csv", "json", "npy")
BLOCK_S = 1.0


def compute_frames(
    source: AudioSource,
    fps: int = 60,
    *,
    causal: bool = False,
    model: str = "embedded",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """All frames (n, 61 or 68) for ``source``; ``progress(samples)`` after each block."""
    face = create_model(model, source.sample_rate, fps, causal=causal)
    rows: list[np.ndarray] = []
    try:
        for block in source.blocks(max(1, round(BLOCK_S * source.sample_rate))):
            rows.append(face.feed(to_mono(block)))
            if progress is not None:
                progress(len(block))
        rows.append(face.flush())
    finally:
        face.close()
    frames = np.concatenate(rows)
    if len(frames) == 0:
        raise NsplayerError(f"{source.name}: no audio samples — nothing to export")
    return frames


def output_format(out: Path, fmt: str | None) -> str:
    """The format asked for, else the one the output's extension names, else CSV."""
    if fmt is not None:
        return fmt
    ext = out.suffix.lower().lstrip(".")
    return ext if ext in FORMATS else "csv"


def write_frames(frames: np.ndarray, out: Path, fps: int, fmt: str) -> None:
    """Write frames as Live Link Face CSV, NeuroSync-style JSON, or a float32 .npy array."""
    try:
        if fmt == "csv":
            write_csv(out, frames[:, :61], fps)
        elif fmt == "json":
            body = {"fps": fps, "blendshapes": np.asarray(frames, np.float64).tolist()}
            out.write_text(json.dumps(body), encoding="utf-8")
        elif fmt == "npy":
            with out.open("wb") as fh:
                np.save(fh, frames.astype(np.float32))
        else:
            raise NsplayerError(f"unknown format {fmt!r} — choose one of {', '.join(FORMATS)}")
    except OSError as exc:
        raise NsplayerError(f"{out}: cannot write ({exc.strerror or exc})") from None


def export(
    audio: str,
    out: Path,
    fps: int = 60,
    fmt: str = "csv",
    *,
    causal: bool = False,
    progress_factory: Callable[[int | None], Callable[[int], None]] | None = None,
) -> int:
    """Export ``audio`` (a path or ``-``) to ``out``; returns the number of frames written.

    ``progress_factory(total_samples or None)`` gives the per-block progress callback.
    """
    source = open_source(audio)
    try:
        progress = progress_factory(source.frames) if progress_factory else None
        frames = compute_frames(source, fps, causal=causal, progress=progress)
    finally:
        source.close()
    write_frames(frames, out, fps, fmt)
    return len(frames)
