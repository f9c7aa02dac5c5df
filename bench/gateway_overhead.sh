#!/usr/bin/env bash
# Gateway overhead on the remote path: a fast mock OpenAI upstream driven (1) directly,
# (2) through a minimal axum + reqwest pass-through and (3) through `triage serve`, each at a
# fixed open-loop rate, in interleaved rounds (the order rotates every round), then one round
# through triage at a higher rate to check it holds without errors.
#
# usage: bench/gateway_overhead.sh [RATE] [ROUNDS] [SECONDS] [HIGH_RATE]
#   defaults: 1000 req/s, 3 rounds, 3 s per target per round, 2000 req/s for the high round.
# env: TRIAGE_BIN=path/to/triage  use this binary's `serve` (default: target/release/triage if it
#      has a `serve` subcommand, else the `router` example `serve`, the same entry point);
#      CARGO_TARGET_DIR as usual; OUT=file.jsonl keeps the raw per-round results.
#
# Everything runs on this machine: the numbers include the client, upstream and gateway sharing
# the same cores. Added latency = gateway p50/p99 minus the direct p50/p99 of the same round.
set -euo pipefail

RATE=${1:-1000}
ROUNDS=${2:-3}
SECONDS_PER=${3:-3}
HIGH_RATE=${4:-2000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
# Servers are started inside command substitutions (subshells), so their pids go to a file.
cleanup() {
    if [ -f "$WORK/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (release)…" >&2
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release -q -p router \
    --example mock_upstream --example passthrough --example openloop --example serve)
EX=$TARGET/release/examples

# Start a server command in the background and echo its address from "listening on http://…".
start() {
    local log=$WORK/$1.log
    shift
    "$@" >"$log" 2>&1 &
    echo $! >>"$WORK/pids"
    for _ in $(seq 1 200); do
        if grep -q "listening on " "$log"; then
            sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$log" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "server $1 did not start:" >&2
    cat "$log" >&2
    exit 1
}

UPSTREAM=$(start upstream "$EX/mock_upstream" 127.0.0.1:0)
PASS=$(start passthrough "$EX/passthrough" "$UPSTREAM/v1" 127.0.0.1:0)

cat >"$WORK/triage.yaml" <<YAML
server: { ledger: $WORK/ledger.sqlite }
backends:
  llm: { kind: openai, base_url: "$UPSTREAM/v1", model: mock-model }
pricing:
  llm: { input: 0.15, output: 0.60 }
routes:
  - { name: sentiment, when: { task: [sentiment] }, to: llm }
  - { name: default, to: llm }
YAML

TRIAGE_BIN=${TRIAGE_BIN:-$TARGET/release/triage}
if [ -x "$TRIAGE_BIN" ] && "$TRIAGE_BIN" serve --help >/dev/null 2>&1; then
    GATEWAY_KIND="triage serve ($TRIAGE_BIN)"
    TRIAGE=$(start triage "$TRIAGE_BIN" serve --config "$WORK/triage.yaml" --listen 127.0.0.1:0)
else
    GATEWAY_KIND="router example serve (same entry point as triage serve; binary not built/wired)"
    TRIAGE=$(start triage "$EX/serve" "$WORK/triage.yaml" 127.0.0.1:0)
fi
echo "upstream $UPSTREAM, pass-through $PASS, gateway $TRIAGE [$GATEWAY_KIND]" >&2

cat >"$WORK/body.json" <<'JSON'
{"model":"auto","messages":[{"role":"system","content":"You are a sentiment classifier."},{"role":"user","content":"Classify the sentiment of this review as positive or negative. Review: I loved every minute of this film, the cast was wonderful."}],"max_tokens":8}
JSON

RESULTS=${OUT:-$WORK/results.jsonl}
: >"$RESULTS"
targets=("direct $UPSTREAM/v1/chat/completions" "passthrough $PASS/v1/chat/completions" "triage $TRIAGE/v1/chat/completions")
for round in $(seq 1 "$ROUNDS"); do
    for i in 0 1 2; do
        t=${targets[$(((i + round - 1) % 3))]}
        label=${t%% *}
        url=${t#* }
        line=$("$EX/openloop" "$url" "$RATE" "$SECONDS_PER" "$WORK/body.json" "$label")
        echo "{\"round\":$round,${line#\{}" >>"$RESULTS"
        echo "round $round $label: $line" >&2
    done
done
line=$("$EX/openloop" "$TRIAGE/v1/chat/completions" "$HIGH_RATE" "$SECONDS_PER" "$WORK/body.json" triage-high)
echo "{\"round\":0,${line#\{}" >>"$RESULTS"
echo "high rate: $line" >&2

python3 - "$RESULTS" "$RATE" "$HIGH_RATE" "$GATEWAY_KIND" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rate, high, kind = sys.argv[2], sys.argv[3], sys.argv[4]
by = {}
for r in rows:
    by.setdefault(r["label"], []).append(r)
med = lambda label, k: statistics.median(r[k] for r in by[label])
print(f"gateway: {kind}")
print(f"open loop at {rate} req/s, {len(by['direct'])} interleaved rounds; medians over rounds:")
print(f"{'target':<12} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'errors':>7}")
for label in ["direct", "passthrough", "triage"]:
    print(f"{label:<12} {med(label,'p50_ms'):8.3f} {med(label,'p99_ms'):8.3f} {med(label,'p999_ms'):9.3f} {sum(r['errors'] for r in by[label]):7d}")
added = lambda label, k: statistics.median(
    r[k] - d[k] for r, d in zip(sorted(by[label], key=lambda r: r["round"]), sorted(by["direct"], key=lambda r: r["round"])))
for label in ["passthrough", "triage"]:
    print(f"added by {label:<12} p50 {added(label,'p50_ms'):+.3f} ms   p99 {added(label,'p99_ms'):+.3f} ms")
ratio = med("triage", "p99_ms") / med("passthrough", "p99_ms")
print(f"triage p99 / pass-through p99 = {ratio:.2f} (goal <= 1.5); triage p50 added goal <= 0.3 ms")
h = by["triage-high"][0]
print(f"triage at {high} req/s: achieved {h['achieved_rps']:.0f} req/s, {h['errors']} errors of {h['sent']}, p50 {h['p50_ms']:.3f} ms, p99 {h['p99_ms']:.3f} ms")
PY
