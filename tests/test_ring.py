"""Ring: a bounded FIFO of samples, checked against a plain list."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from nsplayer.audio.ring import Ring


def samples(start: int, n: int, channels: int = 2) -> np.ndarray:
    values = np.arange(start * channels, (start + n) * channels, dtype=np.float32)
    return values.reshape(-1, channels)


@given(
    capacity=st.integers(1, 64),
    steps=st.lists(st.tuples(st.booleans(), st.integers(0, 80)), max_size=60),
)
def test_puts_and_takes_come_out_in_order_with_the_counts_right(capacity, steps):
    ring, queue, put = Ring(capacity, 2), [], 0
    for putting, n in steps:
        if putting:
            n = min(n, capacity - ring.count)  # what the sink would put
            block = samples(put, n)
            ring.put(block)
            queue.extend(block)
            put += n
        else:
            n = min(n, ring.count)
            out = np.full((n + 3, 2), -1.0, np.float32)
            ring.take(out, n)
            assert np.array_equal(out[:n], np.array(queue[:n]).reshape(n, 2))
            assert (out[n:] == -1.0).all()  # nothing written past what was taken
            del queue[:n]
        assert ring.count == len(queue) and ring.written == put
        assert ring.taken == put - len(queue)


def test_room_is_all_or_nothing_until_a_batch_fits():
    ring = Ring(100, 1)  # batches of 25
    assert ring.room(500) == 100
    ring.put(samples(0, 90, 1))
    assert ring.room(500) == 0  # 10 free: wait for a batch rather than put a sliver
    assert ring.room(8) == 8  # a small block that fits goes in at once
    ring.put(samples(90, 8, 1))
    out = np.zeros((30, 1), np.float32)
    assert not ring.take(out, 10)  # 12 free: still no batch
    assert ring.take(out, 20)  # 32 free: a writer's batch fits now, wake it
    assert ring.room(500) == 32
    assert not ring.take(out, 1)  # already had room: no second wake-up


def test_a_take_across_the_end_of_the_buffer_wraps():
    ring = Ring(10, 2)
    ring.put(samples(0, 8))
    out = np.zeros((8, 2), np.float32)
    ring.take(out, 6)
    ring.put(samples(8, 7))  # 2 at the end, 5 at the start
    out = np.zeros((9, 2), np.float32)
    ring.take(out, 9)
    assert np.array_equal(out, samples(6, 9))
