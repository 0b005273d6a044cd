#!/usr/bin/env bash
# Pipe text-to-speech into nsplayer: the face starts moving as soon as the first audio
# arrives, and goes back to idle in the gaps while the engine synthesizes the next line.
#
#   examples/tts_pipe.sh                                   # speaks a demo text
#   echo "Hello there." | examples/tts_pipe.sh --target 192.168.1.20:11111
#
# Text comes from stdin (one sentence per line), arguments go to `nsplayer play`.
# espeak-ng writes a WAV stream to stdout; `nsplayer play -` plays it while it is written.
# Other engines work the same way. Piper writes raw 16-bit mono PCM at its voice's rate
# (22050 Hz for most voices), so say what it is:
#
#   echo "Hello there." | piper --model en_US-lessac-medium.onnx --output-raw \
#     | nsplayer play - --raw --rate 22050 --channels 1 --sample-format s16le
set -euo pipefail

text() {
  if [ -t 0 ]; then
    printf '%s\n' "Hello! I am speaking through espeak-ng, piped straight into nsplayer." \
                  "Each sentence is synthesized while the previous one plays."
  else
    cat
  fi
}

# One espeak-ng process for all lines: one WAV stream, written sentence by sentence.
text | espeak-ng --stdout | nsplayer play - --rate 22050 "$@"  # espeak-ng: 22050 Hz mono
