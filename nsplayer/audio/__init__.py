"""Audio in and out: sources, the microphone, sinks, the mixer, devices, resampling.

The limits every part shares live here, once.
"""

MIN_RATE, MAX_RATE = 8000, 384000  # sample rates a speech model and a sound card can use
SILENT_S = 2.0  # a device (output or input) without a callback this long has stopped
