#!/usr/bin/env bash
# Gateway overhead on the remote path, at every load (issue 18). One fast mock OpenAI upstream
# (a TEST DOUBLE answering a recorded completion at once) is driven by an open-loop client
# (latency from each request's scheduled send time, so a stall cannot hide) four ways:
#   direct        the upstream itself (the baseline every "added" figure subtracts);
#   passthrough   a minimal axum + reqwest pass-through (router/examples/passthrough.rs);
#   triage        `triage serve` with a policy (task rules), a budget (every request reserved
#                 and settled) and its SQLite ledger (one row per request); the PII scan runs
#                 on every request's text whether or not a privacy rule exists (a privacy rule
#                 must route to a local model, which this benchmark has none of);
#   litellm       LiteLLM's proxy with one worker, when installed (see README, "Gateway
#                 overhead"), else left out.
# Phases, each in interleaved rounds (the order rotates every round; this VM drifts 10-15 %
# between minutes, so only figures from the same round are compared):
#   1. light and medium load: RATES (default "20 1000") req/s, ROUNDS rounds;
#   2. prompt size: sequential requests with prompts of KB_SIZES kilobytes; the slope of the
#      added p50 per KB;
#   3. memory: triage's resident set after RSS_REQUESTS requests (default 100,000), before any
#      overload;
#   4. the highest rate: a ladder of rates (LADDER) for pass-through and triage, alternating;
#      a rate is sustained when every request succeeded and p99 <= 5 ms (beyond its limits
#      triage sheds load with 429s from the transport, which never reach a handler);
# then the ledger: exactly one row per request a handler received (`triage_requests_total`).
#
# usage: bench/gateway_overhead.sh [ROUNDS] [SECONDS]      (defaults: 5 rounds, 10 s at 20 req/s;
#        runs at higher rates last SECONDS/3, at least 3 s)
# env:   RATES="20 1000"  LADDER="2000 4000 6000 8000 10000 12000"  KB_SIZES="1 16 64 256 512"
#        RSS_REQUESTS=100000  LITELLM=path/to/litellm (default: `litellm` on PATH)
#        LITELLM_MAX_RATE=100 (LiteLLM saturates below 100 req/s with one worker: above this
#        rate it is left out)  TRIAGE_BIN=path  OUT=results.jsonl (raw per-run results)
#        PHASES="load kb rss ladder" (which phases run)  KB_ROUNDS=3
#        BASELINE_BIN=path (a second triage binary, e.g. an older build, started the same way
#        and labelled `baseline`: it runs in the prompt-size phase's rounds next to `triage`,
#        and the report gives both slopes and their ratio)
set -euo pipefail

ROUNDS=${1:-5}
SECONDS_PER=${2:-10}
RATES=${RATES:-"20 1000"}
LADDER=${LADDER:-"2000 4000 6000 8000 10000 12000"}
KB_SIZES=${KB_SIZES:-"1 16 64 256 512"}
RSS_REQUESTS=${RSS_REQUESTS:-100000}
PHASES=${PHASES:-"load kb rss ladder"}
KB_ROUNDS=${KB_ROUNDS:-3}
BASELINE_BIN=${BASELINE_BIN:-}
phase_on() { [[ " $PHASES " == *" $1 "* ]]; }
LITELLM_MAX_RATE=${LITELLM_MAX_RATE:-100}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
cleanup() {
    if [ -f "$WORK/pids" ]; then
        while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$WORK/pids"
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "building (release)…" >&2
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET cargo build --release --locked -q -p router \
    --example mock_upstream --example passthrough --example openloop \
    && CARGO_TARGET_DIR=$TARGET cargo build --release --locked -q --bin triage)
EX=$TARGET/release/examples
TRIAGE_BIN=${TRIAGE_BIN:-$TARGET/release/triage}

# Start a server in the background; echo its address once its log says "listening on
# http://…" (or, with a third argument, once that URL answers).
start() {
    local name=$1 log=$WORK/$1.log
    shift
    "$@" >"$log" 2>&1 &
    echo $! >>"$WORK/pids"
    echo $! >"$WORK/$name.pid"
    for _ in $(seq 1 400); do
        if grep -q "listening on " "$log"; then
            sed -n 's/.*listening on \(http:\/\/[^ ]*\).*/\1/p' "$log" | head -1
            return 0
        fi
        sleep 0.05
    done
    echo "server $name did not start:" >&2
    cat "$log" >&2
    exit 1
}

UPSTREAM=$(start upstream "$EX/mock_upstream" 127.0.0.1:0)
PASS=$(start passthrough "$EX/passthrough" "$UPSTREAM/v1" 127.0.0.1:0)

cat >"$WORK/triage.yaml" <<YAML
server: { ledger: LEDGER }
backends:
  llm: { kind: openai, base_url: "$UPSTREAM/v1", model: mock-model }
pricing:
  llm: { input: 0.15, output: 0.60 }
budgets: { daily_usd: 1000000 }
routes:
  - { name: sentiment, when: { task: [sentiment] }, to: llm }
  - { name: default, to: llm }
YAML
sed "s|LEDGER|$WORK/ledger.sqlite|" "$WORK/triage.yaml" >"$WORK/triage-new.yaml"
TRIAGE=$(start triage "$TRIAGE_BIN" serve --config "$WORK/triage-new.yaml" --listen 127.0.0.1:0)
TRIAGE_PID=$(cat "$WORK/triage.pid")
KB_LABELS="direct passthrough triage"
if [ -n "$BASELINE_BIN" ]; then
    sed "s|LEDGER|$WORK/ledger-baseline.sqlite|" "$WORK/triage.yaml" >"$WORK/triage-baseline.yaml"
    BASELINE=$(start baseline "$BASELINE_BIN" serve --config "$WORK/triage-baseline.yaml" \
        --listen 127.0.0.1:0)
    KB_LABELS="direct passthrough triage baseline"
fi

targets=(direct passthrough triage)
declare -A URL=([direct]=$UPSTREAM [passthrough]=$PASS [triage]=$TRIAGE [baseline]=${BASELINE:-})
LITELLM=${LITELLM:-$(command -v litellm || true)}
if [ -n "$LITELLM" ] && [ -x "$LITELLM" ]; then
    LITE_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: auto
    litellm_params: { model: openai/mock-model, api_base: "$UPSTREAM/v1", api_key: "none" }
YAML
    "$LITELLM" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LITE_PORT" --num_workers 1 \
        >"$WORK/litellm.log" 2>&1 &
    echo $! >>"$WORK/pids"
    for _ in $(seq 1 600); do
        curl -s -o /dev/null "http://127.0.0.1:$LITE_PORT/health/liveliness" && break
        sleep 0.1
    done
    if curl -s -o /dev/null "http://127.0.0.1:$LITE_PORT/health/liveliness"; then
        URL[litellm]=http://127.0.0.1:$LITE_PORT
        targets+=(litellm)
        echo "litellm: $("$LITELLM" --version 2>/dev/null | tail -1) at ${URL[litellm]}" >&2
    else
        echo "litellm did not start (see below); left out" >&2
        tail -5 "$WORK/litellm.log" >&2
    fi
else
    echo "litellm not installed: left out (README, \"Gateway overhead\", says how to add it)" >&2
fi
echo "upstream $UPSTREAM, pass-through $PASS, triage $TRIAGE" >&2

python3 - "$WORK/body-0.json" 0 <<'PY'
import json, sys
body = {"model": "auto", "max_tokens": 8, "messages": [
    {"role": "system", "content": "You are a sentiment classifier."},
    {"role": "user", "content": "Classify the sentiment of this review as positive or negative. "
     "Review: I loved every minute of this film, the cast was wonderful."}]}
open(sys.argv[1], "w").write(json.dumps(body))
PY
for kb in $KB_SIZES; do
    python3 "$ROOT/bench/prompt_body.py" "$WORK/body-$kb.json" "$kb"
done

RESULTS=${OUT:-$WORK/results.jsonl}
: >"$RESULTS"
TRIAGE_SENT=0
# run PHASE LABEL RATE SECONDS BODY [ROUND]: one open-loop run, its JSON line kept.
run() {
    local phase=$1 label=$2 rate=$3 secs=$4 body=$5 round=${6:-0} line
    line=$("$EX/openloop" "${URL[$label]}/v1/chat/completions" "$rate" "$secs" "$body" "$label")
    echo "{\"phase\":\"$phase\",\"round\":$round,${line#\{}" >>"$RESULTS"
    if [ "$label" = triage ]; then
        TRIAGE_SENT=$((TRIAGE_SENT + $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["sent"]+r["warmup"])' "$line")))
    fi
    echo "  $phase r$round $label @$rate: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print("p50 %.3f ms  p99 %.3f ms  errors %d  %.0f req/s" % (r["p50_ms"], r["p99_ms"], r["errors"], r["achieved_rps"]))' "$line")" >&2
}

phase_on load && echo "phase 1: light and medium load" >&2
phase_on load && for rate in $RATES; do
    secs=$SECONDS_PER
    if [ "$rate" -gt 100 ]; then secs=$(( SECONDS_PER / 3 > 3 ? SECONDS_PER / 3 : 3 )); fi
    for round in $(seq 1 "$ROUNDS"); do
        n=${#targets[@]}
        for i in $(seq 0 $((n - 1))); do
            label=${targets[$(((i + round - 1) % n))]}
            if [ "$label" = litellm ] && [ "$rate" -gt "$LITELLM_MAX_RATE" ]; then continue; fi
            run load "$label" "$rate" "$secs" "$WORK/body-0.json" "$round"
        done
    done
done

phase_on kb && echo "phase 2: prompt size (sequential requests, 20 req/s)" >&2
phase_on kb && for round in $(seq 1 "$KB_ROUNDS"); do
    labels=($KB_LABELS)
    n=${#labels[@]}
    for kb in $KB_SIZES; do
        # The order rotates every round, as in phase 1.
        for i in $(seq 0 $((n - 1))); do
            run "kb$kb" "${labels[$(((i + round - 1) % n))]}" 20 2 "$WORK/body-$kb.json" "$round"
        done
    done
done

RSS_KB=0
HWM_KB=0
if phase_on rss; then
    echo "phase 3: $RSS_REQUESTS requests at 5,000 req/s, then triage's resident memory" >&2
    run rss triage 5000 "$(python3 -c "print($RSS_REQUESTS / 5000)")" "$WORK/body-0.json"
    RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$TRIAGE_PID/status")
    HWM_KB=$(awk '/VmHWM/ {print $2}' "/proc/$TRIAGE_PID/status")
fi

phase_on ladder && echo "phase 4: the highest rate with every request answered and p99 <= 5 ms" >&2
phase_on ladder && for rate in $LADDER; do
    for label in passthrough triage; do
        run ladder "$label" "$rate" 3 "$WORK/body-0.json"
    done
done


# The ledger: wait for the writer (it writes what queued since it last woke), then count.
# Requests the transport shed (429 beyond max_connections / in-flight limits) never reached a
# handler and have no row by design; every other request must have exactly one.
METRICS=$(curl -s "$TRIAGE/metrics")
HANDLED=$(echo "$METRICS" | awk '/^triage_requests_total\{/ {s += $2} END {printf "%d", s}')
SHED=$(echo "$METRICS" | awk '/^triage_transport_rejections_total\{/ {s += $2} END {printf "%d", s}')
ROWS=0
for _ in $(seq 1 50); do
    ROWS=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from ledger").fetchone()[0])' "$WORK/ledger.sqlite")
    [ "$ROWS" -ge "$HANDLED" ] && break
    sleep 0.1
done

python3 - "$RESULTS" "$RSS_KB" "$HWM_KB" "$ROWS" "$TRIAGE_SENT" "$HANDLED" "$SHED" "$RATES" "$KB_SIZES" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rss_kb, hwm_kb, ledger_rows, sent, handled, shed = (int(x) for x in sys.argv[2:8])
rates = [float(r) for r in sys.argv[8].split()]
kbs = [int(k) for k in sys.argv[9].split()]
med = st.median

def runs(phase, label, rate=None):
    return sorted((r for r in rows if r["phase"] == phase and r["label"] == label
                   and (rate is None or r["rate"] == rate)), key=lambda r: r["round"])

def added(phase, label, key, rate=None):
    """Median over rounds of (label - direct) in the same round."""
    d = {r["round"]: r for r in runs(phase, "direct", rate)}
    xs = [r[key] - d[r["round"]][key] for r in runs(phase, label, rate) if r["round"] in d]
    return med(xs) if xs else float("nan")

print("Gateway overhead (bench/gateway_overhead.sh), medians over interleaved rounds")
for rate in (rates if runs("load", "triage") else []):
    print(f"\n{rate:g} req/s:")
    print(f"{'target':<12} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'added p99':>10} {'errors':>7}")
    for label in ["direct", "passthrough", "triage", "litellm"]:
        rs = runs("load", label, rate)
        if not rs:
            continue
        a50 = added("load", label, "p50_ms", rate) if label != "direct" else 0.0
        a99 = added("load", label, "p99_ms", rate) if label != "direct" else 0.0
        print(f"{label:<12} {med(r['p50_ms'] for r in rs):8.3f} {med(r['p99_ms'] for r in rs):8.3f} "
              f"{a50:+10.3f} {a99:+10.3f} {sum(r['errors'] for r in rs):7d}")
    t50, p50 = added("load", "triage", "p50_ms", rate), added("load", "passthrough", "p50_ms", rate)
    t99 = med(r["p99_ms"] for r in runs("load", "triage", rate))
    p99 = med(r["p99_ms"] for r in runs("load", "passthrough", rate))
    print(f"triage added p50 - pass-through added p50 = {t50 - p50:+.3f} ms (goal <= +0.1)")
    print(f"triage p99 / pass-through p99 = {t99 / p99:.2f} (goal <= 1.2)")
    lr = runs("load", "litellm", rate)
    if lr:
        l50 = added("load", "litellm", "p50_ms", rate)
        print(f"litellm added p50 / triage added p50 = {l50 / t50:.0f}x (goal >= 50 at 20 req/s)")
    stages = {}
    for r in runs("load", "triage", rate):
        for k, v in r.get("stages_us", {}).items():
            stages.setdefault(k, []).append(v)
    if stages:
        order = ["body_read", "parse", "decide", "admit", "upstream_send", "upstream_first_byte",
                 "upstream_body", "respond", "record"]
        print("triage stages (Server-Timing, mean us per request, median over rounds): " +
              ", ".join(f"{k} {med(stages[k]):.1f}" for k in order if k in stages))

def sustained(label):
    best = None
    for r in sorted(runs("ladder", label), key=lambda r: r["rate"]):
        if r["errors"] == 0 and r["p99_ms"] <= 5.0 and r["achieved_rps"] >= 0.95 * r["rate"]:
            best = r
    return best

if runs("ladder", "triage"):
    print("\nhighest rate with every request answered and p99 <= 5 ms:")
for label in ["passthrough", "triage"]:
    for r in sorted(runs("ladder", label), key=lambda r: r["rate"]):
        print(f"  {label:<12} @{r['rate']:>6.0f}: achieved {r['achieved_rps']:7.0f} req/s, "
              f"p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, errors {r['errors']}")
bp, bt = sustained("passthrough"), sustained("triage")
if not runs("ladder", "triage"):
    pass
elif bp and bt:
    print(f"pass-through sustains {bp['rate']:.0f} req/s, triage {bt['rate']:.0f} req/s: "
          f"{bt['rate'] / bp['rate']:.2f}x (goal >= 0.8)")
else:
    print(f"pass-through sustains {bp and bp['rate']}, triage {bt and bt['rate']} (of the ladder)")

kb_rounds = len(runs(f"kb{kbs[0]}", "triage")) if kbs else 0
if kb_rounds:
    print(f"\nprompt size (sequential requests; added p50 over direct, median of {kb_rounds} rounds):")
xs, ys, ps, bs = [], [], [], []
for kb in (kbs if kb_rounds else []):
    t = added(f"kb{kb}", "triage", "p50_ms")
    p = added(f"kb{kb}", "passthrough", "p50_ms")
    b = added(f"kb{kb}", "baseline", "p50_ms")
    base = f", baseline {b:+.3f} ms" if runs(f"kb{kb}", "baseline") else ""
    print(f"  {kb:>4} KB: triage {t:+.3f} ms, pass-through {p:+.3f} ms{base}")
    xs.append(kb); ys.append(t); ps.append(p); bs.append(b)
    for label in ["triage", "baseline"]:
        stages = {}
        for r in runs(f"kb{kb}", label):
            for k, v in r.get("stages_us", {}).items():
                stages.setdefault(k, []).append(v)
        if stages:
            print(f"        {label} stages (mean us, median over rounds): " +
                  ", ".join(f"{k} {med(v):.0f}" for k, v in stages.items()))
def slope(xs, ys):
    mx, my = st.mean(xs), st.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
if len(xs) > 1:
    print(f"triage added latency grows {slope(xs, ys) * 1e3:.2f} us per KB "
          f"(pass-through {slope(xs, ps) * 1e3:.2f} us per KB; goal <= 2 us per KB)")
    if runs(f"kb{kbs[0]}", "baseline"):
        print(f"baseline grows {slope(xs, bs) * 1e3:.2f} us per KB; triage / baseline "
              f"{slope(xs, ys) / slope(xs, bs):.2f}, triage / pass-through "
              f"{slope(xs, ys) / slope(xs, ps):.2f}, baseline / pass-through "
              f"{slope(xs, bs) / slope(xs, ps):.2f}")

if not runs("rss", "triage"):
    sys.exit(0)
rss = runs("rss", "triage")[0]
before = sum(r["sent"] + r["warmup"] for r in rows if r["label"] == "triage" and r["phase"] != "ladder")
print(f"\nafter {before} requests to triage ({rss['sent']} at {rss['rate']:.0f} req/s last: "
      f"p99 {rss['p99_ms']:.3f} ms, errors {rss['errors']}), before the ladder: resident "
      f"{rss_kb / 1024:.1f} MB (peak {hwm_kb / 1024:.1f} MB; goal <= 30 MB)")
print(f"{sent} requests sent to triage in all: {handled} reached a handler, {shed} shed by the "
      f"transport (429); ledger rows {ledger_rows} "
      f"({'one per handled request' if ledger_rows == handled else 'MISMATCH'})")
PY
