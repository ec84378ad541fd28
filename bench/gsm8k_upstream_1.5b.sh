#!/usr/bin/env bash
# bench/gsm8k_upstream_1.5b.sh: issue 15's second comparison, the paper's "additional model of
# the same size": the upstream Qwen2.5-Coder-1.5B-Instruct, and three ways of spending one 0.5B
# model (Qwen2.5-Coder-0.5B-Instruct) trained on the same records, on GSM8K test lines
# [TEST_FROM, N_TEST), each paired against the 1.5B upstream alone (generated once, shared):
#   proxy:   proxy-tuning (docs/PROXY.md): expert = the 0.5B + the sft-whole adapter of
#            bench/gsm8k_baselines.sh (SFT_ADAPTER), anti-expert = the 0.5B, alpha PROXY_ALPHA (1);
#   stream:  the Stream Aligner, the shipped 0.5B aligner (models/gsm8k-arith-qwen0.5b) with
#            --edit-check all (bench/gsm8k_check_result.sh ARM=aligner);
#   aligner: the Aligner baseline of bench/gsm8k_aligner_baseline.sh (its workdir ALB, adapter
#            trained there) over the 1.5B's answers.
# All greedy, 512-token answers, --batch-invariant, --parallel PARALLEL -t THREADS. Every step
# resumes by id (rerun the script; grow N_TEST in steps). Scored by bench/gsm8k_check_summary.py;
# pool with bench/gsm8k_pool.py.
#   bench/gsm8k_upstream_1.5b.sh [WORKDIR]      (default runs/gsm8k_1.5b)
# Knobs: ARMS ("proxy stream aligner"), TEST_FROM (296), N_TEST (500), SFT_ADAPTER
# (runs/gsm8k_baselines/sft-whole/model/adapter.gguf; the sentence-record sft adapter writes
# answers without line breaks, docs/RESULTS.md session 13), ALB (runs/gsm8k_aligner_baseline),
# PROXY_ALPHA (1), PARALLEL (4), THREADS (2), SALIGN (build/salign).
# Cost (2 cores): the 1.5B decodes about a third as fast as the 0.5B, and proxy-tuning runs the
# 1.5B and two 0.5B models on every token: plan hours for 200 questions per arm.
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
export SA_SHARED_DATA=${SA_SHARED_DATA:-../shared/data}
W=${1:-runs/gsm8k_1.5b}
ARMS=${ARMS:-proxy stream aligner}
TEST_FROM=${TEST_FROM:-296}
N_TEST=${N_TEST:-500}
SFT_ADAPTER=${SFT_ADAPTER:-runs/gsm8k_baselines/sft-whole/model/adapter.gguf}
ALB=${ALB:-runs/gsm8k_aligner_baseline}
PARALLEL=${PARALLEL:-4}
THREADS=${THREADS:-2}
UP=qwen2.5-coder-1.5b-instruct
mkdir -p "$W/alone"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

"$PY" bench/gsm8k_questions.py "$SA_SHARED_DATA/gsm8k/test.jsonl" "$W/alone/test_q.jsonl" --lines "$TEST_FROM-$((N_TEST - 1))"
log "the 1.5B upstream alone on test lines $TEST_FROM-$((N_TEST - 1))"
"$S" align --upstream "$UP" --mode upstream --input "$W/alone/test_q.jsonl" --output "$W/alone/test_alone.jsonl" \
  --trace "$W/alone/test_alone.trace.jsonl" --max-length 512 --parallel "$PARALLEL" -t "$THREADS" --batch-invariant

seed_alone() { # DIR: the shared upstream alone, complete for the range (so no arm makes its own)
  mkdir -p "$1"
  cp "$W/alone/test_alone.jsonl" "$1/test_alone.jsonl"
  cp "$W/alone/test_alone.trace.jsonl" "$1/test_alone.trace.jsonl"
}
check() { # DIR ARM ENV...: one arm through bench/gsm8k_check_result.sh
  local d=$1 arm=$2
  shift 2
  seed_alone "$d"
  env "$@" ARM="$arm" UPSTREAM="$UP" TEST_FROM="$TEST_FROM" N_TEST="$N_TEST" BATCH_INVARIANT=1 \
    PARALLEL="$PARALLEL" THREADS="$THREADS" SALIGN="$S" STEPS="test upstream score" \
    bench/gsm8k_check_result.sh "$d"
}
for arm in $ARMS; do
  case "$arm" in
    proxy) [ -s "$SFT_ADAPTER" ] || { echo "no $SFT_ADAPTER: run bench/gsm8k_baselines.sh (ARMS=sft-whole STEPS=train) first" >&2; exit 1; }
      log "proxy-tuning"
      check "$W/proxy" proxy PROXY_LORA="$SFT_ADAPTER" PROXY_ALPHA="${PROXY_ALPHA:-1}" ;;
    stream) log "the Stream Aligner (the shipped 0.5B aligner)"
      check "$W/stream" aligner ;;
    aligner) log "the Aligner baseline"
      seed_alone "$ALB/test_$UP"
      STEPS=test UPSTREAM="$UP" TEST_FROM="$TEST_FROM" N_TEST="$N_TEST" PARALLEL="$PARALLEL" THREADS="$THREADS" \
        SALIGN="$S" bench/gsm8k_aligner_baseline.sh "$ALB" ;;
    *) echo "ARMS: proxy, stream and/or aligner" >&2; exit 2 ;;
  esac
done
log "done"
