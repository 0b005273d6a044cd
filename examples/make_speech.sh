#!/usr/bin/env bash
# Makes examples/speech.wav (22050 Hz mono 16-bit, ~9 s) with espeak-ng: English with pauses,
# bilabials (p/b/m), labiodentals (f/v), rounded (oo), spread (ee) and open (ah) vowels,
# so every mouth shape the models produce shows up. Needs espeak-ng (apt install espeak-ng).
set -euo pipefail
cd "$(dirname "$0")"

TEXT='<speak><break time="300ms"/>Bob made a map for Pam.<break time="500ms"/>
Five fine vans move over.<break time="500ms"/>
Who knew the blue moon?<break time="400ms"/>
We see three green trees.<break time="400ms"/>
Ah, father, calm down.<break time="300ms"/></speak>'

espeak-ng -v en-us -s 165 -m -w speech.wav "$TEXT"
python3 - <<'PY'
import wave
with wave.open("speech.wav") as w:
    print(f"speech.wav: {w.getnframes() / w.getframerate():.2f} s, {w.getframerate()} Hz, "
          f"{w.getnchannels()} ch, {8 * w.getsampwidth()}-bit")
PY
