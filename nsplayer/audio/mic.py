"""Live audio input: the microphone, or a file played as if it were one.

Both deliver mono float32 blocks into a bounded queue, each stamped with the time
(time.monotonic()) its first sample was captured. When the reader falls behind, the
oldest block is dropped (counted), so latency cannot creep up over a long run. The file
input runs everywhere (no sound card, CI) and paces itself on the monotonic clock, so the
whole `live` path can be tried and tested without a microphone.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nsplayer.audio.devices import device_info, load_sounddevice, resolve_device
from nsplayer.audio.sources import open_source, to_mono
from nsplayer.errors import NsplayerError

QUEUE_S = 0.5  # input buffered at most; older blocks are dropped when the consumer lags


@dataclass(frozen=True)
class Block:
    pcm: np.ndarray  # float32 mono
    adc: float  # time.monotonic() when its first sample was captured
    arrival: float  # time.monotonic() when it was handed over


class _Queue:
    """The bounded block queue both inputs feed (drop-oldest when full)."""

    def __init__(self, rate: int, block: int) -> None:
        self.overflows = 0  # the device reported lost input
        self.dropped = 0  # blocks dropped because the reader fell behind
        self.finished = False  # the input ended (device gone, end of file)
        self._queue: queue.Queue[Block] = queue.Queue(
            maxsize=max(2, math.ceil(QUEUE_S * rate / block))
        )

    def _put(self, block: Block) -> None:
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.dropped += 1
            self._queue.put_nowait(block)

    def read(self, timeout: float) -> Block | None:
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None


class MicInput(_Queue):
    """A sounddevice input stream. PortAudio's callback times are on their own clock; each
    block's capture time is converted to time.monotonic() from the age PortAudio reports."""

    def __init__(self, device: str | int | None, rate: int | None, block_ms: float) -> None:
        sd = load_sounddevice()
        index = resolve_device(device, "input")
        info = device_info(sd, index, "input", "")
        self.rate = int(rate or info["default_samplerate"] or 16000)
        self.block = max(1, round(self.rate * block_ms / 1000.0))
        self.device_name = str(info["name"])
        super().__init__(self.rate, self.block)
        try:
            self._stream = sd.InputStream(
                samplerate=self.rate,
                blocksize=self.block,
                channels=1,
                dtype="float32",
                device=index,
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
            self.latency = float(self._stream.latency)
        except (ValueError, sd.PortAudioError) as exc:
            raise NsplayerError(
                f"cannot record from {self.device_name!r} at {self.rate} Hz ({exc}) — try "
                "another --rate or --input-device (see `nsplayer devices`)"
            ) from None

    def start(self) -> None:
        """Start recording (after the model is built, so no stale audio queues up)."""
        self._stream.start()

    def close(self) -> None:
        try:
            self._stream.abort()
            self._stream.close()
        except Exception:  # the device may be gone already; closing is best-effort
            pass

    def _callback(self, indata: np.ndarray, frames: int, timing, status) -> None:
        now = time.monotonic()
        adc, current = float(timing.inputBufferAdcTime), float(timing.currentTime)
        age = current - adc if 0 < adc <= current else self.latency + frames / self.rate
        if status.input_overflow:
            self.overflows += 1
        self._put(Block(indata[:, 0].copy(), now - age, now))

    def _finished(self) -> None:
        self.finished = True


class FileInput(_Queue):
    """A sound file delivered block by block in real time, as a microphone would."""

    latency = 0.0

    def __init__(self, path: Path, rate: int | None, block_ms: float) -> None:
        self._source = open_source(str(path), False, None, None, None)
        if rate not in (None, self._source.sample_rate):
            self._source.close()
            raise NsplayerError(
                f"{path} is {self._source.sample_rate} Hz; --rate applies to microphones only"
            )
        self.rate = self._source.sample_rate
        self.block = max(1, round(self.rate * block_ms / 1000.0))
        self.device_name = Path(path).name
        super().__init__(self.rate, self.block)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nsplayer-file-input", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(1.0)
        self._source.close()

    def _run(self) -> None:
        start, samples = time.monotonic(), 0
        try:
            for pcm in self._source.blocks(self.block):
                captured = start + samples / self.rate
                samples += len(pcm)
                ready = start + samples / self.rate  # the block is complete only then
                if self._stop.wait(max(0.0, ready - time.monotonic())):
                    return
                self._put(Block(to_mono(pcm), captured, time.monotonic()))
        finally:
            self.finished = True
