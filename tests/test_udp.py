"""LiveLinkSender / LiveLinkReceiver over real loopback sockets."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

from livelink import FaceFrame, FrameTime, LiveLinkReceiver, LiveLinkSender, device_id_for, encode
from livelink.udp import parse_target


def _values(i: int) -> np.ndarray:
    return np.linspace(0, 1, 61, dtype=np.float32) * (i % 7) / 7


def _closed_port() -> int:
    with LiveLinkReceiver(0) as probe:
        return probe.port


def test_one_sender_several_receivers_and_an_unreachable_target() -> None:
    receivers = [LiveLinkReceiver(0, timeout=2.0) for _ in range(3)]
    targets = [f"127.0.0.1:{r.port}" for r in receivers]
    targets.insert(1, f"127.0.0.1:{_closed_port()}")
    n = 20
    with LiveLinkSender(targets, subject="multi") as sender:
        for i in range(n):
            sender.send(_values(i), FrameTime(1000 + i, 0.25))
            time.sleep(0.002)  # let the ICMP "port unreachable" come back between sends
        assert sender.errors > 0
        assert sender.sent + sender.errors == 4 * n
    for receiver in receivers:
        got = [receiver.receive(2.0) for _ in range(n)]
        receiver.close()
        assert [item[0].time.frame for item in got] == list(range(1000, 1000 + n))
        for i, (frame, arrival, addr) in enumerate(got):
            assert frame.subject == "multi" and frame.device_id == device_id_for("multi")
            assert np.array_equal(frame.values, _values(i))
            assert arrival > 0 and addr[0] == "127.0.0.1"


def test_many_subjects_get_distinct_stable_device_ids() -> None:
    with LiveLinkReceiver(0, timeout=2.0) as receiver:
        with LiveLinkSender([f"localhost:{receiver.port}"], device_id="fixed-id") as sender:
            sender.send(_values(1), FrameTime(1))
            sender.send(_values(2), FrameTime(1), subject="second")
        got = [receiver.receive(2.0)[0] for _ in range(2)]
    assert [(f.subject, f.device_id) for f in got] == [
        ("nsplayer", "fixed-id"),
        ("second", device_id_for("second")),
    ]
    assert device_id_for("second") == device_id_for("second") != device_id_for("third")
    assert len(device_id_for("x")) == 36


def test_receiver_skips_and_counts_malformed_then_times_out() -> None:
    with LiveLinkReceiver(0, timeout=0.3) as receiver:
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.sendto(b"\x06garbage", ("127.0.0.1", receiver.port))
        with LiveLinkSender([f"127.0.0.1:{receiver.port}"]) as sender:
            sender.send(_values(3), FrameTime(7))
        raw.sendto(b"", ("127.0.0.1", receiver.port))
        raw.close()
        frames = [f for f, _, _ in receiver]
        assert [f.time.frame for f in frames] == [7]
        assert receiver.malformed == 2 and receiver.received == 1


def test_port_in_use_is_a_clear_oserror() -> None:
    with LiveLinkReceiver(0) as first, pytest.raises(OSError, match="another listener"):
        LiveLinkReceiver(first.port)


def test_send_matches_encode() -> None:
    """The sender's in-place buffer is byte-identical to encode(), packet after packet."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.bind(("127.0.0.1", 0))
        raw.settimeout(2.0)
        with LiveLinkSender([f"127.0.0.1:{raw.getsockname()[1]}"]) as sender:
            for i in range(3):
                sender.send(_values(i), FrameTime(3 + i, 0.5))
                expected = FaceFrame(
                    _values(i), "nsplayer", device_id_for("nsplayer"), FrameTime(3 + i, 0.5)
                )
                assert raw.recv(2048) == encode(expected)


def test_send_refuses_non_finite_and_wrong_count() -> None:
    with LiveLinkSender([f"127.0.0.1:{_closed_port()}"]) as sender:
        with pytest.raises(ValueError, match="NaN"):
            sender.send(np.full(61, np.nan), FrameTime(0))
        with pytest.raises(ValueError):
            sender.send(np.zeros(60), FrameTime(0))


@pytest.mark.parametrize(
    "target",
    ["host:notaport", "127.0.0.1:0", "127.0.0.1:70000", ":11111", "[::1", "no.such.host.invalid:1"],
)
def test_bad_targets(target: str) -> None:
    with pytest.raises(ValueError, match="bad target"):
        LiveLinkSender([target])


def test_parse_target_forms() -> None:
    assert parse_target("[::1]:11112") == ("::1", 11112)
    assert parse_target("::1") == ("::1", 11111)
    assert parse_target("example.org") == ("example.org", 11111)


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_and_ipv4_targets_together() -> None:
    with LiveLinkReceiver(0, host="::1") as r6, LiveLinkReceiver(0) as r4:
        with LiveLinkSender([f"[::1]:{r6.port}", f"127.0.0.1:{r4.port}"]) as sender:
            sender.send(_values(4), FrameTime(42))
        assert r6.receive(2.0)[0].time.frame == 42
        assert r4.receive(2.0)[0].time.frame == 42
