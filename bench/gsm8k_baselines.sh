#!/usr/bin/env bash
# bench/gsm8k_baselines.sh: the paper's baselines on the shipped aligner's own data (issues 13
# and 15): the upstream Qwen2.5-Coder-0.5B-Instruct fine-tuned on the same records that trained
# models/gsm8k-arith-qwen0.5b (docs/results/arith/arith_train.jsonl: 174 records from the
# upstream's own answers to GSM8K train ids 0-79, calculator-labelled), then run alone on GSM8K
# test lines and paired against the plain upstream alone, as the pipeline's arms are.
#   sft: `salign train --objective sft-upstream` (the corrected answers, sentence by sentence),
#        the aligner's own recipe (LoRA r8, 45 steps of 2 records, lr 2e-4, 288 tokens, seed 1);
#   dpo: `salign train --objective dpo` (chosen = the correction, rejected = the sentence as
#        written; copy records carry no preference and are skipped: 51 pairs), LoRA r8, beta 0.1,
#        lr 5e-5, 45 steps of 2 pairs (2 epochs, cut at 45 steps), 288 tokens, seed 1.
# Steps (STEPS, default "train test"), each resumable (rerun the script):
#   train: W/ARM/model/adapter.gguf (salign train --resume picks up a stopped run);
#   test:  ARM=upstream-lora bench/gsm8k_check_result.sh W/test_ARM on test lines
#          [TEST_FROM, N_TEST): the adapted upstream alone, the plain upstream alone, scored
#          and paired. ALONE_FROM=DIR seeds the plain upstream-alone answers from another run's
#          test_alone.jsonl; only valid when DIR was made by the same binary with the same
#          settings (then they are byte-identical; the pairing never mixes binaries otherwise).
#   bench/gsm8k_baselines.sh [WORKDIR]      (default runs/gsm8k_baselines)
# Knobs: ARMS ("sft dpo"), DATA (the records), STEPS, TEST_FROM (296), N_TEST (500), THREADS (2),
# PARALLEL (4), MAX_STEPS (45), ALONE_FROM; SALIGN (build/salign).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
W=${1:-runs/gsm8k_baselines}
ARMS=${ARMS:-sft dpo}
DATA=${DATA:-docs/results/arith/arith_train.jsonl}
STEPS=${STEPS:-train test}
THREADS=${THREADS:-2}
MAX_STEPS=${MAX_STEPS:-45}
UPSTREAM=qwen2.5-coder-0.5b-instruct
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

for arm in $ARMS; do
  case "$arm" in
    sft) OBJ=(--objective sft-upstream --lr 2e-4 --epochs 1) ;;
    dpo) OBJ=(--objective dpo --beta 0.1 --lr 5e-5 --epochs 2) ;;
    *) echo "ARMS: sft and/or dpo" >&2; exit 2 ;;
  esac
  adapter="$W/$arm/model/adapter.gguf"
  if want train && [ ! -s "$adapter" ]; then
    RESUME=()
    [ -d "$W/$arm" ] && RESUME=(--resume)
    log "train $arm on $DATA"
    "$S" train --base "$UPSTREAM" --data "$DATA" --out "$W/$arm" "${OBJ[@]}" \
      --lora 8 --max-steps "$MAX_STEPS" --batch 2 --max-length 288 -t "$THREADS" --eval-fraction 0 \
      --save-every 10 --adapter-only --seed 1 --log-every 5 ${RESUME[@]+"${RESUME[@]}"}
  fi
  if want test; then
    [ -s "$adapter" ] || { echo "no $adapter: run STEPS=train first" >&2; exit 1; }
    T="$W/test_$arm"
    mkdir -p "$T"
    if [ -n "${ALONE_FROM:-}" ] && [ ! -s "$T/test_alone.jsonl" ]; then
      cp "$ALONE_FROM/test_alone.jsonl" "$T/test_alone.jsonl"
      [ -s "$ALONE_FROM/test_alone.trace.jsonl" ] && cp "$ALONE_FROM/test_alone.trace.jsonl" "$T/"
    fi
    log "test $arm: the adapted upstream alone on test lines ${TEST_FROM:-296}-$((${N_TEST:-500} - 1))"
    ARM=upstream-lora UPSTREAM_LORA="$adapter" TEST_FROM=${TEST_FROM:-296} N_TEST=${N_TEST:-500} \
      BATCH_INVARIANT=1 THREADS="$THREADS" STEPS="test upstream score" SALIGN="$S" \
      bench/gsm8k_check_result.sh "$T"
  fi
done
log "done"
