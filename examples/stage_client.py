"""Stream a WAV to two `nsplayer stage` subjects in 40 ms chunks, interrupt one, print events.

    nsplayer stage --subject anna --subject bob        # in another terminal (--audio none:
    python examples/stage_client.py examples/speech.wav  # the client would play the sound)

Each character gets its own WebSocket, as an NPC loop would: `session.update` says the PCM
format, `utterance.start` opens a line, binary frames carry the audio as a TTS engine would
stream it (in real time here), `utterance.end` closes it. Bob is interrupted after 1.5 s;
his `utterance.interrupted` event says how much of the line was heard (`played_ms`), which
is what an LLM's context should be cut to.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect

CHUNK_S = 0.04


async def speak(url: str, subject: str, pcm: np.ndarray, rate: int, stop_after: float | None,
                headers: dict[str, str]) -> None:  # fmt: skip
    uid = f"{subject}-1"
    async with connect(url, additional_headers=headers) as ws:
        print(subject, json.loads(await ws.recv()))  # session.created
        await ws.send(json.dumps({"type": "session.update", "sample_rate": rate,
                                  "encoding": "pcm_s16le", "channels": 1}))  # fmt: skip
        await ws.send(json.dumps({"type": "utterance.start", "subject": subject,
                                  "utterance_id": uid, "mode": "enqueue"}))  # fmt: skip
        events = asyncio.create_task(show(ws))
        step, start = round(CHUNK_S * rate), time.monotonic()
        for k, first in enumerate(range(0, len(pcm), step)):
            await ws.send(pcm[first : first + step].tobytes())
            if stop_after is not None and time.monotonic() - start > stop_after:
                await ws.send(json.dumps({"type": "interrupt", "subject": subject, "fade_ms": 150}))
                break
            await asyncio.sleep(max(0.0, start + (k + 1) * CHUNK_S - time.monotonic()))
        else:
            await ws.send(json.dumps({"type": "utterance.end", "utterance_id": uid}))
        await events


async def show(ws) -> None:
    """Print events until the line is finished or interrupted."""
    while True:
        event = json.loads(await ws.recv())
        print(f"{time.strftime('%X')} {event}")
        if event["type"] in ("utterance.finished", "utterance.interrupted"):
            return


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wav", help="a WAV file (mono or stereo; any rate 8-96 kHz)")
    parser.add_argument("--url", default="ws://127.0.0.1:8765/v1/stream")
    parser.add_argument("--token", help="if the service was started with --token")
    args = parser.parse_args()
    pcm, rate = sf.read(args.wav, dtype="int16", always_2d=True)
    mono = pcm.mean(axis=1).astype("<i2")
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    await asyncio.gather(
        speak(args.url, "anna", mono, rate, None, headers),
        speak(args.url, "bob", mono, rate, 1.5, headers),
    )


if __name__ == "__main__":
    asyncio.run(main())
