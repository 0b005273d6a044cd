"""The bounded queue of samples between a sink's writer and its audio callback."""

from __future__ import annotations

import numpy as np


class Ring:
    """A fixed-size FIFO of (n, channels) float32 samples, counted from the first one.

    Not locked: the sink holds its lock around every call. Writers refill it in batches of
    a quarter of its size rather than a sliver per callback, so a writer thread wakes a few
    times per ring, not once per callback: ``room`` says how much of a block to put now,
    ``take`` whether it just made room for a waiting batch.
    """

    def __init__(self, capacity: int, channels: int) -> None:
        self._buf = np.zeros((capacity, channels), np.float32)
        self._size = capacity
        self._batch = capacity // 4
        self._read = 0  # buffer position of the next sample to take
        self.count = 0  # samples queued
        self.written = 0  # samples put so far: the index of the next one put
        self.taken = 0  # samples taken so far: the index of the next one taken

    def room(self, wanted: int) -> int:
        """How many of ``wanted`` samples to put now: 0 (wait) until a batch fits."""
        space = self._size - self.count
        return 0 if space < min(wanted, self._batch) else min(space, wanted)

    def put(self, block: np.ndarray) -> None:
        """Queue ``block`` (at most ``room`` samples)."""
        n = len(block)
        start = (self._read + self.count) % self._size
        first = min(n, self._size - start)
        self._buf[start : start + first] = block[:first]
        if first < n:
            self._buf[: n - first] = block[first:]
        self.count += n
        self.written += n

    def take(self, out: np.ndarray, n: int) -> bool:
        """Move the next ``n`` (at most ``count``) samples into ``out[:n]``; True if that
        made room for a writer's batch."""
        first = min(n, self._size - self._read)
        out[:first] = self._buf[self._read : self._read + first]
        if first < n:
            out[first:n] = self._buf[: n - first]
        self._read = (self._read + n) % self._size
        self.count -= n
        self.taken += n
        free = self._size - self.count
        return free >= self._batch > free - n
