"""The pacer process and its fallback, with real processes and real UDP on loopback.

Timing is not asserted (benchmarks/sync.py measures it): these tests check what is sent,
in what order, with which frame numbers, and what happens when the pacer is late or gone.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from livelink import FrameTime, LiveLinkReceiver, LiveLinkSender
from nsplayer.outlet import Handed, InlineOutlet, ProcessOutlet
from nsplayer.pacer import release_time

FPS = 60
P = 1.0 / FPS


@pytest.fixture
def link():
    with (
        LiveLinkReceiver(port=0, timeout=0.5) as rx,
        LiveLinkSender([f"127.0.0.1:{rx.port}"]) as tx,
    ):
        yield rx, tx


def packet(sender: LiveLinkSender, frame: int, jaw: float = 0.0) -> bytes:
    values = np.zeros(61, np.float32)
    values[17] = jaw  # any channel: marks which packet arrived
    return sender.packet(values, FrameTime(frame, 0.0, FPS, 1))


def received(rx: LiveLinkReceiver) -> list:
    return [frame for frame, _, _ in rx]


def test_process_pacer_sends_every_packet_in_order_never_early(link):
    rx, tx = link
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    start = time.monotonic() + 0.1
    for i in range(30):
        pacer.send(packet(tx, 500 + i, i / 30), Handed(0, i, i * P, start + i * P, 0))
    pacer.close()
    frames = received(rx)
    assert [f.time.frame for f in frames] == list(range(500, 500 + len(frames)))
    assert len(frames) + len(pacer.lost(0)) == 30
    sent, due = np.asarray(pacer.stats(0).sent), np.asarray(pacer.stats(0).due)
    assert np.all(sent >= due)  # released at the due time, not before
    assert list(pacer.stats(0).index) == sorted(pacer.stats(0).index)
    assert pacer.cpu_seconds > 0  # the child reported its own CPU use


def test_a_packet_more_than_a_period_late_is_dropped_and_the_timecode_stays_consecutive(link):
    rx, tx = link
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    now = time.monotonic()
    pacer.send(packet(tx, 10, 0.1), Handed(0, 0, 0.0, now + 0.05, 0))
    pacer.send(packet(tx, 11, 0.2), Handed(0, 1, P, now - 1.0, 0))  # a second late: dropped
    pacer.send(packet(tx, 12, 0.3), Handed(0, 2, 2 * P, now + 0.1, 0))
    pacer.close()
    frames = received(rx)
    assert [f.time.frame for f in frames] == [10, 11]
    assert [round(float(f.values[17]), 3) for f in frames] == [0.1, 0.3]
    assert pacer.lost(0) == [1] and len(pacer.lost(0)) == 1
    assert list(pacer.stats(0).index) == [0, 2]


def test_sink_clock_times_are_converted_both_ways(link):
    """Due times on another clock (a sound card's) go out at the right moment and come back
    on that clock."""
    rx, tx = link
    shift = 12345.0
    pacer = ProcessOutlet(tx, FPS, lambda: time.monotonic() + shift)
    pacer.wait_ready()
    due = time.monotonic() + shift + 0.05
    pacer.send(packet(tx, 1), Handed(0, 0, 0.0, due, 0))
    pacer.close()
    assert len(received(rx)) == 1
    assert 0 <= pacer.stats(0).sent[0] - due < 1.0  # on the sink clock, not monotonic


def test_a_dead_pacer_process_falls_back_to_sending_from_this_thread(link):
    rx, tx = link
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    pacer.send(packet(tx, 1), Handed(0, 0, 0.0, time.monotonic() + 0.02, 0))
    time.sleep(0.1)
    pacer._proc.kill()  # the process dies under the player
    pacer._proc.wait()
    for i in range(1, 4):
        pacer.send(packet(tx, 1 + i), Handed(0, i, i * P, time.monotonic() + 0.01, 0))
    pacer.close()
    assert [f.time.frame for f in received(rx)] == [1, 2, 3, 4]
    assert pacer.lead == 0.0  # from now on the scheduler hands packets over at their time
    assert list(pacer.stats(0).index)[-3:] == [1, 2, 3]  # packet 0's record died with it


def _realtime_allowed() -> bool:
    """Whether this OS lets a process of this user take SCHED_FIFO (asked in a throwaway
    process, so this one keeps its scheduling)."""
    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def test_the_pacer_process_runs_real_time_where_allowed_and_says_which(link):
    rx, tx = link
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    allowed = _realtime_allowed()
    assert pacer.mode == ("process (real-time)" if allowed else "process")
    if hasattr(os, "sched_getscheduler"):
        policy = os.sched_getscheduler(pacer._proc.pid)
        assert policy == (os.SCHED_FIFO if allowed else os.SCHED_OTHER)
    pacer.send(packet(tx, 3), Handed(0, 0, 0.0, time.monotonic() + 0.01, 0))
    pacer.close()
    assert [f.time.frame for f in received(rx)] == [3]


@pytest.mark.parametrize("interpreter", ["/nonexistent/python", shutil.which("false")])
def test_a_pacer_that_cannot_start_means_inline_sending(link, monkeypatch, interpreter):
    """No interpreter to run, or one that exits at once: sending goes on from this thread."""
    rx, tx = link
    monkeypatch.setattr(sys, "executable", interpreter)
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    assert pacer.lead == 0.0 and pacer.mode == "inline"
    pacer.send(packet(tx, 7), Handed(0, None, 0.0, time.monotonic() + 0.01, 0))
    pacer.close()
    assert [f.time.frame for f in received(rx)] == [7]


def test_inline_pacer_drops_late_packets_and_renumbers(link):
    rx, tx = link
    pacer = InlineOutlet(tx, time.monotonic, FPS)
    now = time.monotonic()
    pacer.send(packet(tx, 100), Handed(0, 0, 0.0, now - 0.5, 0))  # late: dropped
    pacer.send(packet(tx, 101), Handed(0, 1, P, now + 0.01, 0))
    assert [f.time.frame for f in received(rx)] == [100]
    assert pacer.lost(0) == [0]


@given(
    due=st.floats(-10, 10),
    last=st.floats(-10, 10) | st.just(-math.inf),
    now=st.floats(-10, 10),
)
def test_release_time_never_bursts_and_drops_only_what_is_more_than_a_period_late(due, last, now):
    at = release_time(due, last, P, now)
    bound = max(due, last + 0.5 * P)
    if at is None:
        assert max(bound, now) - due > P
    else:
        assert at == bound and max(at, now) - due <= P


def test_streams_keep_their_own_spacing_and_frame_numbers(link):
    """Two subjects due at the same moments both go out on time; a drop in one stream
    renumbers only that stream."""
    rx, tx = link
    pacer = ProcessOutlet(tx, FPS)
    pacer.wait_ready()
    start = time.monotonic() + 0.05
    for i in range(6):
        late = -1.0 if i == 2 else 0.0  # stream 1's third packet is a second late: dropped
        pacer.send(packet(tx, 100 + i), Handed(0, i, i * P, start + i * P, 0))
        pacer.send(packet(tx, 200 + i), Handed(1, i, i * P, start + i * P + late, 0))
    pacer.close()
    frames = sorted(f.time.frame for f in received(rx))
    assert frames == [100, 101, 102, 103, 104, 105, 200, 201, 202, 203, 204]
    assert pacer.lost(0) == [] and pacer.lost(1) == [2]
    for stream in (0, 1):
        stats = pacer.stats(stream)
        assert np.all(np.asarray(stats.sent) - np.asarray(stats.due) < P)
