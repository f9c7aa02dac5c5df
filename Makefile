# triage — the two commands a newcomer needs:
#   make demo   set up (system packages, models) and run the main job
#   make test   set up and run the whole test suite (what CI runs)
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
TRIAGE := target/release/triage
SMOLLM2 := models/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: setup build demo test lint fmt

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked
	@bash scripts/setup.sh classifier

demo: build
	@bash scripts/demo.sh

# Everything runs in the release profile: llama.cpp is built once (7–10 minutes on 2 cores) and
# shared by clippy, the tests and the binaries.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --workspace --all-targets -- -D warnings

test: build lint
	$(CARGO) test --release --locked --workspace --no-fail-fast

fmt:
	$(CARGO) fmt --all
