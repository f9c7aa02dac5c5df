#!/usr/bin/env bash
# The main job: a streamed answer from the local SLM with its timings.
set -euo pipefail
cd "$(dirname "$0")/.."
TRIAGE=target/release/triage
"$TRIAGE" models list
echo
"$TRIAGE" chat --model models/SmolLM2-135M-Instruct.Q4_1.gguf --max-tokens 96 \
  "In two sentences, why would a team send some LLM requests to a small local model?"
