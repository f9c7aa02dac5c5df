#!/usr/bin/env bash
# Instructions per request of `triage serve` on the remote path, by prompt size (issue 18):
# counted by valgrind's callgrind (every thread of the gateway), so the figure does not drift
# with the machine's load the way wall-clock latency does. The upstream is the mock OpenAI
# upstream (a TEST DOUBLE answering a recorded completion at once), the configuration the one
# bench/gateway_overhead.sh uses (a task rule, a budget, the ledger; the PII scan reads every
# request). For each size: 3 warm-up requests, counters zeroed, N requests (sequential, curl),
# counters dumped; the total divided by N.
#
# usage: bench/gateway_callgrind.sh [TRIAGE_BIN...]   (default: target/release/triage)
# env:   KB_SIZES="1 512"  N=10  KEEP=dir (keep each dump there, for callgrind_annotate)
# prints one line per binary and size: `BIN KB instructions-per-request`, then the slope per KB.
set -euo pipefail

KB_SIZES=${KB_SIZES:-"1 512"}
N=${N:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
EX=$TARGET/release/examples
BINS=("$@")
[ ${#BINS[@]} -gt 0 ] || BINS=("$TARGET/release/triage")
WORK=$(mktemp -d)
cleanup() {
    if [ -f "$WORK/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

wait_listening() {
    for _ in $(seq 1 1200); do
        if grep -q "listening on " "$1"; then
            sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$1" | head -1
            return 0
        fi
        sleep 0.1
    done
    echo "server did not start: $(cat "$1")" >&2
    exit 1
}

"$EX/mock_upstream" 127.0.0.1:0 >"$WORK/upstream.log" 2>&1 &
echo $! >>"$WORK/pids"
UPSTREAM=$(wait_listening "$WORK/upstream.log")

for kb in $KB_SIZES; do
    python3 "$ROOT/bench/prompt_body.py" "$WORK/body-$kb.json" "$kb"
done

for bin in "${BINS[@]}"; do
    rm -f "$WORK"/ledger.sqlite* "$WORK"/cg.out*
    cat >"$WORK/triage.yaml" <<YAML
server: { ledger: $WORK/ledger.sqlite }
backends:
  llm: { kind: openai, base_url: "$UPSTREAM/v1", model: mock-model }
pricing:
  llm: { input: 0.15, output: 0.60 }
budgets: { daily_usd: 1000000 }
routes:
  - { name: sentiment, when: { task: [sentiment] }, to: llm }
  - { name: default, to: llm }
YAML
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" \
        "$bin" serve --config "$WORK/triage.yaml" --listen 127.0.0.1:0 >"$WORK/triage.log" 2>&1 &
    pid=$!
    echo $pid >>"$WORK/pids"
    url=$(wait_listening "$WORK/triage.log")
    for kb in $KB_SIZES; do
        post() {
            curl -sf -o /dev/null -H 'content-type: application/json' \
                --data-binary "@$WORK/body-$kb.json" "$url/v1/chat/completions"
        }
        for _ in 1 2 3; do post; done
        callgrind_control -z "$pid" >/dev/null 2>&1
        for _ in $(seq 1 "$N"); do post; done
        rm -f "$WORK"/cg.out.*
        callgrind_control -d "$pid" >/dev/null 2>&1
        dump=$(ls "$WORK"/cg.out.* | head -1)
        if [ -n "${KEEP:-}" ]; then
            mkdir -p "$KEEP" && cp "$dump" "$KEEP/$(basename "$bin").$kb.callgrind"
        fi
        total=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$dump" | head -1 | awk '{print $1}')
        echo "$bin $kb $((total / N))"
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
done | tee "$WORK/out"
python3 - "$WORK/out" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
by = {}
for b, kb, ins in rows:
    by.setdefault(b, []).append((int(kb), int(ins)))
for b, xs in by.items():
    if len(xs) >= 2:
        (k0, i0), (k1, i1) = xs[0], xs[-1]
        print(f"{b}: {(i1 - i0) / (k1 - k0):,.0f} instructions per KB ({k0} -> {k1} KB)")
PY
