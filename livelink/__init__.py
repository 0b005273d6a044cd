"""Live Link Face protocol for Python: ARKit names, packets, UDP and CSV. No audio, no models.

Unreal Engine's Live Link (Apple ARKit face source) receives these UDP packets from the
Live Link Face iPhone app; anything that sends the same bytes drives a MetaHuman face.

Encode and decode one packet::

    import numpy as np
    from livelink import FaceFrame, FrameTime, decode, encode
    from livelink.names import JAW_OPEN

    values = np.zeros(61, np.float32)
    values[JAW_OPEN] = 0.6
    frame = FaceFrame(values, subject="nsplayer", device_id="any-non-empty-id",
                      time=FrameTime.now())          # timecode of day at 60 fps
    data = encode(frame)                             # bytes; ValueError for NaN/bad names
    assert decode(data) == frame                     # PacketError for any bad bytes

Stream to UE (default port 11111) and listen elsewhere::

    with LiveLinkSender(["127.0.0.1:11111", "[::1]:11112"], subject="nsplayer") as sender:
        t = FrameTime.now()
        sender.send(values, t)                       # never raises for unreachable targets
        sender.send(values, t, subject="second")     # more subjects, own stable device ids
    with LiveLinkReceiver(port=11112, host="::1", timeout=1.0) as receiver:
        for frame, arrival, addr in receiver:        # malformed datagrams are skipped
            ...

Live Link Face / NeuroSync CSV::

    take = read_csv("shapes.csv")    # CsvTake: values (n, 61) float32, times, extra, rate
    write_csv("out.csv", take.values, fps=60, extra=take.extra)
    with open("long.csv", "w", newline="") as f:   # or row blocks as they are made
        writer = CsvWriter(f, fps=60)
        writer.write(block)                          # (n, 61) float32
"""

from livelink.codec import PacketError, decode, encode
from livelink.csvio import CsvError, CsvTake, CsvWriter, read_csv, write_csv
from livelink.frame import FaceFrame
from livelink.frametime import FrameTime
from livelink.names import BLENDSHAPE_NAMES, CSV_ORDER, REGIONS
from livelink.udp import LiveLinkReceiver, LiveLinkSender, device_id_for

__all__ = [
    "BLENDSHAPE_NAMES",
    "CSV_ORDER",
    "REGIONS",
    "CsvError",
    "CsvTake",
    "CsvWriter",
    "FaceFrame",
    "FrameTime",
    "LiveLinkReceiver",
    "LiveLinkSender",
    "PacketError",
    "decode",
    "device_id_for",
    "encode",
    "read_csv",
    "write_csv",
]
