"""Audio devices: PortAudio loading, finding a device by index or name, output settings.

Sinks (output) and the microphone input share these; ``nsplayer devices`` lists them.
"""

from __future__ import annotations

import sys

from nsplayer.errors import NsplayerError

WASAPI = "Windows WASAPI"  # shared mode converts rates itself when asked to (auto_convert)


def load_sounddevice():
    """Import sounddevice, turning a missing PortAudio into an NsplayerError."""
    try:
        import sounddevice as sd
    except OSError as exc:
        raise NsplayerError(
            f"PortAudio is not available ({exc}) — install it (Debian/Ubuntu: libportaudio2) "
            "or use --no-audio"
        ) from None
    return sd


_OPTION = {"output": "--device", "input": "--input-device"}


def resolve_device(device: str | int | None, kind: str = "output") -> int | None:
    """A device index from an index, an exact name or a unique part of a name."""
    if device is None or device == "":
        return None
    sd = load_sounddevice()
    devices = sd.query_devices()
    channels = f"max_{kind}_channels"
    if isinstance(device, int) or str(device).isdigit():
        index = int(device)
        if 0 <= index < len(devices) and devices[index][channels] > 0:
            return index
        raise NsplayerError(f"no audio {kind} device #{index} — see `nsplayer devices`")
    matches = [i for i, d in enumerate(devices) if d[channels] > 0 and d["name"] == device]
    if not matches:
        low = str(device).lower()
        matches = [i for i, d in enumerate(devices) if d[channels] > 0 and low in d["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    what = "matches several" if matches else "matches no"
    raise NsplayerError(f"{_OPTION[kind]} {device!r} {what} {kind} device — see `nsplayer devices`")


def device_info(sd, index: int | None, kind: str, fallback: str) -> dict:
    """sounddevice's description of device ``index`` (None: the default ``kind`` device)."""
    try:
        return sd.query_devices(index, kind)
    except (ValueError, sd.PortAudioError) as exc:
        raise NsplayerError(
            f"no audio {kind} device ({exc}) — pick one with {_OPTION[kind]} "
            f"(see `nsplayer devices`){fallback}"
        ) from None


def output_settings(sd, index: int | None, rate: int, channels: int) -> tuple[int, int, object]:
    """The rate, channels and host-API settings to open output ``index`` with: the source
    rate and channels if the device takes them, else what it does take. WASAPI (shared
    mode) is asked to convert the rate itself, so its own resampler does the work."""
    info = device_info(sd, index, "output", " or use --no-audio")
    channels = min(channels, int(info["max_output_channels"])) or 1
    extra = None
    if sys.platform == "win32" and sd.query_hostapis(info["hostapi"])["name"] == WASAPI:
        extra = sd.WasapiSettings(auto_convert=True)
    try:
        sd.check_output_settings(
            index, channels=channels, dtype="float32", samplerate=rate, extra_settings=extra
        )
    except (ValueError, sd.PortAudioError):
        rate = int(info["default_samplerate"])
    return rate, channels, extra


def list_devices() -> list[dict[str, object]]:
    """Every audio device with its index, name, host API, channels and default rate; an
    NsplayerError (exit 1, so a script can tell) when PortAudio finds none."""
    sd = load_sounddevice()
    found = sd.query_devices()
    if not found:
        raise NsplayerError(
            "no audio devices found — connect or enable a sound device, or start the sound "
            "server (Linux: PulseAudio or PipeWire); meanwhile play with --no-audio"
        )
    apis = sd.query_hostapis()
    defaults = sd.default.device
    rows = []
    for i, d in enumerate(found):
        rows.append(
            {
                "index": i,
                "name": d["name"],
                "hostapi": apis[d["hostapi"]]["name"],
                "inputs": d["max_input_channels"],
                "outputs": d["max_output_channels"],
                "rate": d["default_samplerate"],
                "default_input": i == defaults[0],
                "default_output": i == defaults[1],
            }
        )
    return rows
