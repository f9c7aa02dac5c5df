#!/usr/bin/env bash
# The main job, the routing loop on real models:
#   1. measure: the quickstart suite against the local SLM and the LLM (answers, quality, cost and
#      the SLM's confidence signals, item by item); and an encoder classifier (all-MiniLM-L6-v2 +
#      a logistic head per `choices` task) trained on the calibration half only, cross-fitted
#      there (each calibration item answered by a head trained without it);
#   2. calibrate: per task, on one seeded half of the items, choose always-SLM, always-encoder,
#      always-LLM or a cascade from either on one signal at one threshold: the cheapest that reaches
#      95% of the best single target's quality with 95% confidence (optionally within a budget over
#      all tasks, BUDGET_SHARE), and write those routes into the router's config;
#   3. evaluate: start the router with that config and run the other half of the items against
#      slm, llm and router;
#   4. the comparison (the dashboard on a terminal, a printed table otherwise).
#
# LLM: OpenAI (gpt-4o-mini) when OPENAI_API_KEY is set; otherwise Gemma-3-270M served by a second
# `triage serve` (gateway B) that this script starts and stops, so the remote path is real HTTP.
# Router: gateway A (`triage serve`) routing between its local SmolLM2 and that LLM.
set -euo pipefail
cd "$(dirname "$0")/.."
# Overridable for the test that runs this script (tests/demo_quickstart.rs): the binary, the run
# directory, and a per-scenario item limit (the suite's own limits otherwise). RUN holds the
# evaluation run; RUN/measure the measuring run and RUN/router.yaml the calibrated config.
TRIAGE=${TRIAGE:-$PWD/target/release/triage}
SUITE=${SUITE:-scenarios/quickstart.yaml}   # SUITE=scenarios/full.yaml: every item (BENCHMARKS.md)
SLM=models/SmolLM2-135M-Instruct.Q4_1.gguf
RUN=${RUN:-runs/quickstart-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p runs "$RUN"
: >"$RUN/servers.pid"
# Every server this script starts is stopped when it ends: normally, by an error or by Ctrl-C.
# (`serve` runs in this shell, never in a command substitution, so its pid reaches this list.)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start `triage serve --config $1` on a free port; sets URL to its base URL.
serve() {
  local config=$1 log=$2 url
  "$TRIAGE" serve --config "$config" --listen 127.0.0.1:0 >"$log" 2>&1 &
  pids+=($!)
  echo $! >>"$RUN/servers.pid"
  for _ in $(seq 1 600); do
    if url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -n1) && [ -n "$url" ]; then
      # Wait until its models are loaded.
      for _ in $(seq 1 600); do
        curl -fsS "$url/readyz" >/dev/null 2>&1 && { URL=$url; return 0; }
        sleep 0.2
      done
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "gateway from $config did not start; see $log" >&2
  return 1
}

if [ -n "${OPENAI_API_KEY:-}" ]; then
  LLM_SPEC="openai:https://api.openai.com/v1#gpt-4o-mini;key_env=OPENAI_API_KEY"
  LLM_BASE=https://api.openai.com/v1; LLM_MODEL=gpt-4o-mini; LLM_KEY_ENV=OPENAI_API_KEY; LLM_EXT=none
  echo "LLM: OpenAI gpt-4o-mini"
else
  serve examples/standin-llm.yaml "$RUN/gateway-b.log"; B=$URL
  # Gateway B is another triage: `choices` reach it as the extension field (`triage=on`,
  # `extensions: triage`), so its engine scores them as the SLM's does.
  LLM_SPEC="openai:$B/v1#gemma;triage=on"
  LLM_BASE=$B/v1; LLM_MODEL=gemma; LLM_KEY_ENV=; LLM_EXT=triage
  echo "LLM: no OPENAI_API_KEY, so Gemma-3-270M behind a second triage serve at $B"
fi

# Gateway A's config before calibration: privacy first, everything else to the LLM. Calibration
# inserts one route per task above the catch-all.
cat >"$RUN/router.yaml" <<YAML
server: { listen: 127.0.0.1:0, ledger: gateway-a.sqlite }
backends:
  slm: { kind: llama, model: $PWD/$SLM, slots: 2, threads: 2, score_lanes: 8, prompt_cache: true }
  llm: { kind: openai, base_url: "$LLM_BASE", model: $LLM_MODEL, extensions: $LLM_EXT${LLM_KEY_ENV:+, api_key_env: $LLM_KEY_ENV} }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - { name: default, to: llm, fallback: [slm] }
classifier: { model: $PWD/models/task-classifier.json }
YAML

LIMIT=(); [ -n "${QUICKSTART_LIMIT:-}" ] && LIMIT=(--limit "$QUICKSTART_LIMIT")
# Scenarios without examples of their own show K items of their task's calibration half as
# examples (chat turns for the SLM, completion-text blocks for a base model such as Gemma), the
# same on every target; those items are not measured.
LIMIT+=(--few-shot-from-items "${FEW_SHOT:-3}")
# The router has no price of its own: gateway A's accounting (SLM engine time, LLM tokens, both
# calls of an escalation) is what it costs.
PRICES=(--price slm=hour:0.05 --price llm=0.15,0.60)

SLM_SPEC="slm=llama:$SLM;lanes=8;cache=on"
echo "== 1/4 measure: every item against slm and llm, then the encoder classifier"
"$TRIAGE" bench run --suite "$SUITE" \
  --target "$SLM_SPEC" --target "llm=$LLM_SPEC" "${PRICES[@]}" \
  --out "$RUN/measure" "${LIMIT[@]}"

# The encoder classifier answers `choices` tasks only. Its heads learn from the calibration half,
# so there it answers by cross-fitting: FOLDS heads, each trained without one fold and answering
# only that fold; the evaluation half is answered by the head trained on the whole calibration
# half (the one gateway A serves). Items of tasks without `choices` are answered with an error
# (no head), which the fit counts as wrong. Any failure (a half too small to hold two labels of a
# task) leaves the encoder out of the loop, said here.
FOLDS=${FOLDS:-5}
ENC_MODEL=models/all-MiniLM-L6-v2.gguf
encoder() {
  local k
  "$TRIAGE" route train --head embedding --scenario "$SUITE" --half calibration \
    --out "$RUN/heads" "${LIMIT[@]}" >"$RUN/heads.log" 2>&1 || return 1
  for k in $(seq 1 "$FOLDS"); do
    "$TRIAGE" route train --head embedding --scenario "$SUITE" --half calibration \
      --leave-out-fold "$k/$FOLDS" --out "$RUN/heads-fold$k" "${LIMIT[@]}" >>"$RUN/heads.log" 2>&1 || return 1
    "$TRIAGE" bench run --suite "$SUITE" --half calibration --fold "$k/$FOLDS" --quiet \
      --target "enc=classifier:$RUN/heads-fold$k;model=$ENC_MODEL" --price enc=hour:0.05 \
      --out "$RUN/measure-enc-fold$k" "${LIMIT[@]}" >>"$RUN/heads.log" 2>&1 || return 1
    WITH+=(--with "$RUN/measure-enc-fold$k")
  done
  "$TRIAGE" bench run --suite "$SUITE" --half evaluation --quiet \
    --target "enc=classifier:$RUN/heads;model=$ENC_MODEL" --price enc=hour:0.05 \
    --out "$RUN/measure-enc-eval" "${LIMIT[@]}" >>"$RUN/heads.log" 2>&1 || return 1
  WITH+=(--with "$RUN/measure-enc-eval")
}
WITH=(); SMALL=(--small slm)
if encoder; then
  SMALL+=(--small enc)
  heads=$(for f in "$RUN"/heads/*.json; do printf '%s: %s, ' "$(basename "$f" .json)" "$PWD/$f"; done)
  # Gateway A gets the encoder as a backend of its own, with the heads of the whole half.
  sed -i "s|^backends:$|backends:\n  enc: { kind: classifier, model: $PWD/$ENC_MODEL, threads: 1, heads: { ${heads%, } } }|; s|^pricing:$|pricing:\n  enc: { machine_usd_per_hour: 0.05 }|" "$RUN/router.yaml"
  echo "encoder classifier: heads in $RUN/heads, cross-fitted over $FOLDS folds (log: $RUN/heads.log)"
else
  WITH=()
  echo "encoder classifier left out: $(tail -n 1 "$RUN/heads.log")"
fi

# Optional, a budget over all tasks: BUDGET_SHARE=0.5 spends at most half of what sending every
# item to the LLM costs, held with 95% confidence on new items of the same mix; the tasks that
# lose least quality for the saving give way when the per-task choices cost more.
BUDGET=(); [ -n "${BUDGET_SHARE-}" ] && BUDGET=(--budget-share "$BUDGET_SHARE")
echo "== 2/4 calibrate per task on the calibration half, write $RUN/router.yaml"
"$TRIAGE" bench calibrate "$RUN/measure" "${WITH[@]}" --per-task "${SMALL[@]}" "${BUDGET[@]}" --write "$RUN/router.yaml"

echo "== 3/4 evaluate: the evaluation half against slm, llm and the calibrated router"
serve "$RUN/router.yaml" "$RUN/gateway-a.log"; A=$URL
echo "router: triage serve at $A"
"$TRIAGE" bench run --suite "$SUITE" --half evaluation \
  --target "$SLM_SPEC" --target "llm=$LLM_SPEC" --target "router=openai:$A/v1#auto;triage=on" \
  "${PRICES[@]}" --out "$RUN" "${LIMIT[@]}"

echo
echo "== 4/4 compare (run directory: $RUN)"
"$TRIAGE" dash "$RUN"
