#!/usr/bin/env bash
# Pipe text-to-speech into nsplayer: the face starts moving as soon as the first audio
# arrives, and goes back to idle in the gaps while the engine synthesizes the next line.
#
#   examples/tts_pipe.sh "Hello there." "How are you today?"
#
# espeak-ng writes a WAV stream to stdout; `nsplayer play -` plays it while it is written.
# Other engines work the same way. Piper writes raw 16-bit mono PCM at its model's rate
# (22050 Hz for most voices), so say what it is:
#
#   echo "Hello there." | piper --model en_US-lessac-medium.onnx --output-raw \
#     | nsplayer play - --raw --rate 22050 --channels 1 --sample-format s16le
#
# Extra nsplayer options go in NSPLAYER_ARGS, e.g. NSPLAYER_ARGS="--target 192.168.1.20:11111".
set -euo pipefail

if [ "$#" -eq 0 ]; then
  set -- "Hello! I am speaking through espeak-ng, piped straight into nsplayer." \
         "Each sentence is synthesized while the previous one plays."
fi

# One espeak-ng process for all lines: one WAV stream, written sentence by sentence.
# shellcheck disable=SC2086  # NSPLAYER_ARGS is split into words on purpose
printf '%s\n' "$@" | espeak-ng --stdout | nsplayer play - ${NSPLAYER_ARGS:-}
