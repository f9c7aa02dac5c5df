#!/usr/bin/env bash
# Engine vs llama.cpp's own tools, same model file, threads and context, same session.
#
# Builds llama-bench and llama-batched-bench from the llama.cpp source vendored in the
# llama-cpp-python sdist on PyPI (Release, GGML_NATIVE=ON, AMX off exactly as for the engine: see
# .cargo/config.toml), then runs ROUNDS rounds of back-to-back pairs
#   llama-bench -p 512 -n 128 -t THREADS        vs  triage hw -p 512 -n 128 -t THREADS
#   llama-batched-bench -npp 128 -ntg 128 -npl P  vs  triage hw -c P (128 + 128 tokens), P in STREAMS
# and prints medians and paired per-round ratios (triage ÷ llama.cpp) as a Markdown table.
#
# Usage: bench/llama_cpp_baseline.sh [MODEL]
#   env: ROUNDS=3 THREADS=2 FA=auto STREAMS="1 2 4 8" OUT=target/baseline/MODEL
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
STREAMS=${STREAMS:-1 2 4 8}
FA=${FA:-auto}   # flash attention on both sides: auto (the engine's default), on or off
OUT=${OUT:-target/baseline/$(basename "$MODEL" .gguf)}
LCP_VERSION=0.3.36
TOOLS=target/llama.cpp-tools
TRIAGE=target/release/triage
mkdir -p "$OUT"

if [ ! -x "$TOOLS/build/bin/llama-bench" ] || [ ! -x "$TOOLS/build/bin/llama-batched-bench" ]; then
  echo "building llama.cpp tools from llama-cpp-python==$LCP_VERSION (sdist) …" >&2
  mkdir -p "$TOOLS/src"
  [ -f "$TOOLS/src/llama_cpp_python-$LCP_VERSION.tar.gz" ] ||
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python \
      "llama-cpp-python==$LCP_VERSION" -d "$TOOLS/src"
  tar xzf "$TOOLS/src/llama_cpp_python-$LCP_VERSION.tar.gz" -C "$TOOLS/src"
  cmake -S "$TOOLS/src/llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" -B "$TOOLS/build" \
    -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \
    -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" >/dev/null
  cmake --build "$TOOLS/build" --target llama-bench llama-batched-bench -j "$(nproc)" >/dev/null
fi
[ -x "$TRIAGE" ] || cargo build --release --locked

# One pair per test and round: the single-stream pair (llama-bench vs triage hw -p/-n) and one pair
# per concurrency level (llama-batched-bench -npl P vs triage hw -c P, each with P sequences of a
# 264-token context: the same KV-cache stream per sequence on both sides). Within a pair the two
# run back to back, and the order flips every round, so a slow drift of the VM's speed favours
# neither side.
run_llama_bench() {
  "$TOOLS/build/bin/llama-bench" -m "$MODEL" -p 512 -n 128 -t "$THREADS" -fa "$FA" -r 3 -o json \
    >"$OUT/llama-bench.$1.json" 2>/dev/null
}
run_triage_speed() {
  "$TRIAGE" hw --model "$MODEL" -t "$THREADS" --flash-attn "$FA" -p 512 -n 128 -c "" -r 3 \
    --bandwidth-mib 0 --json "$OUT/triage-speed.$1.json" >/dev/null
}
run_batched() { # round streams
  "$TOOLS/build/bin/llama-batched-bench" -m "$MODEL" -c $((264 * $2)) -b 512 -ub 512 -npp 128 \
    -ntg 128 -npl "$2" -t "$THREADS" -fa "$FA" --output-format jsonl 2>&1 |
    grep '^{' >"$OUT/batched.$1.$2.jsonl"
}
run_triage_streams() { # round streams
  "$TRIAGE" hw --model "$MODEL" -t "$THREADS" --flash-attn "$FA" -p "" -n "" -c "$2" -r 1 \
    --bandwidth-mib 0 --json "$OUT/triage-c.$1.$2.json" >/dev/null
}
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  if [ $((round % 2)) -eq 1 ]; then
    run_llama_bench "$round"; run_triage_speed "$round"
  else
    run_triage_speed "$round"; run_llama_bench "$round"
  fi
  for streams in $STREAMS; do
    if [ $((round % 2)) -eq 0 ]; then
      run_batched "$round" "$streams"; run_triage_streams "$round" "$streams"
    else
      run_triage_streams "$round" "$streams"; run_batched "$round" "$streams"
    fi
  done
done

python3 - "$OUT" "$ROUNDS" "$MODEL" "$THREADS" "$STREAMS" <<'PY'
# Each round runs both tools back to back, so the ratio is taken per round (paired) and the
# median of the per-round ratios is reported: this VM's speed drifts by 10-15% between rounds,
# which a ratio of medians would mix into the comparison.
import json, statistics, sys
out, rounds, model, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
levels = [int(p) for p in sys.argv[5].split()]
rows = {}  # label -> list of (llama.cpp, triage) per round
host = {}  # label -> the engine's own share of its busy time (%) per round
for r in range(1, rounds + 1):
    lb, tr, bb, ta, th = {}, {}, {}, {}, {}
    for row in json.load(open(f"{out}/llama-bench.{r}.json")):
        test = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
        lb[test] = row["avg_ts"]
    for row in json.load(open(f"{out}/triage-speed.{r}.json"))["speed"]:
        tr[row["test"]] = row["tokens_per_sec_mean"]
    for pl in levels:
        for row in json.load(open(f"{out}/triage-c.{r}.{pl}.json"))["concurrency"]:
            ta[row["streams"]] = row["aggregate_tps"]
            th[row["streams"]] = row.get("engine_host_pct")
        for line in open(f"{out}/batched.{r}.{pl}.jsonl"):
            row = json.loads(line)
            bb[row["pl"]] = row["speed_tg"]
    for test in ("pp512", "tg128"):
        rows.setdefault(f"{test} (llama-bench)", []).append((lb[test], tr[test]))
    for pl in levels:
        label = f"aggregate tg, {pl} streams (llama-batched-bench)"
        rows.setdefault(label, []).append((bb[pl], ta[pl]))
        if th.get(pl) is not None:
            host.setdefault(label, []).append(th[pl])
med = statistics.median
print(f"model `{model}`, {threads} threads, {rounds} rounds of back-to-back pairs (order flipped "
      "every round); t/s are medians over rounds, the ratio is the median of the per-round ratios "
      "(range in brackets; 'above 1' counts the rounds where triage was faster)\n")
print("| test | llama.cpp t/s | triage t/s | triage ÷ llama.cpp | above 1 | engine host % |\n"
      "| --- | ---: | ---: | ---: | ---: | ---: |")
for label, pairs in rows.items():
    ratios = [b / a for a, b in pairs]
    share = f"{med(host[label]):.2f}" if label in host else ""
    print(f"| {label} | {med(a for a, _ in pairs):.1f} | {med(b for _, b in pairs):.1f} | "
          f"{med(ratios):.3f} [{min(ratios):.3f}–{max(ratios):.3f}] | "
          f"{sum(r > 1 for r in ratios)}/{len(ratios)} | {share} |")
print("\nengine host %: share of the engine thread's busy time outside llama_decode (sampling, "
      "detokenizing, streaming, batch building), median over rounds")
PY
