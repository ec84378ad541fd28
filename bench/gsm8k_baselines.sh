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
#   sft-whole: the same objective on whole answers: one record per question of the Aligner
#        baseline's data (bench/gsm8k_aligner_baseline.sh's whole_train.jsonl, WHOLE): the
#        corrected answer (the calculator pipeline's) or the draft itself, 1024 tokens. Why: a
#        sentence record's target starts after the line break its prompt ends with, so `sft`
#        never trains the breaks between sentences, and the adapted upstream stops writing them
#        (docs/RESULTS.md, session 13: 63 -> 34 of 204);
# Steps (STEPS, default "train test"), each resumable (rerun the script):
#   train: W/ARM/model/adapter.gguf (salign train --resume picks up a stopped run);
#   test:  ARM=upstream-lora bench/gsm8k_check_result.sh W/test_ARM on test lines
#          [TEST_FROM, N_TEST): the adapted upstream alone, the plain upstream alone, scored
#          and paired. ALONE_FROM=DIR seeds the plain upstream-alone answers from another run's
#          test_alone.jsonl; only valid when DIR was made by the same binary with the same
#          settings (then they are byte-identical; the pairing never mixes binaries otherwise).
#   bench/gsm8k_baselines.sh [WORKDIR]      (default runs/gsm8k_baselines)
# Knobs: ARMS ("sft dpo"; also sft-whole), DATA (the records), WHOLE (runs/gsm8k_aligner_baseline/
# whole_train.jsonl), STEPS, TEST_FROM (296), N_TEST (500), THREADS (2),
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
PY=${SA_PYTHON:-python3}
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

for arm in $ARMS; do
  ARM_DATA=$DATA MAXLEN=288
  case "$arm" in
    sft) OBJ=(--objective sft-upstream --lr 2e-4 --epochs 1) ;;
    dpo) OBJ=(--objective dpo --beta 0.1 --lr 5e-5 --epochs 2) ;;
    sft-whole) OBJ=(--objective sft-upstream --lr 2e-4 --epochs 2)
      WHOLE=${WHOLE:-runs/gsm8k_aligner_baseline/whole_train.jsonl} ARM_DATA=$W/sft_whole_data.jsonl MAXLEN=1024
      [ -s "$WHOLE" ] || { echo "no $WHOLE: run bench/gsm8k_aligner_baseline.sh (STEPS=\"drafts records\") first" >&2; exit 1; }
      # one record per question: its corrected answer (the synthetic corruptions add nothing here)
      "$PY" - "$WHOLE" "$ARM_DATA" <<'EOF'
import json, os, sys
with open(sys.argv[2] + ".tmp", "w") as o:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r.get("source") != "whole:synth":
            o.write(json.dumps({"question": r["question"], "answer": r["answer"], "correction": r["correction"],
                                "id": r["id"], "source": r["source"]}) + "\n")
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
      ;;
    *) echo "ARMS: sft, dpo and/or sft-whole" >&2; exit 2 ;;
  esac
  adapter="$W/$arm/model/adapter.gguf"
  if want train && [ ! -s "$adapter" ]; then
    RESUME=()
    [ -d "$W/$arm" ] && RESUME=(--resume)
    log "train $arm on $ARM_DATA"
    "$S" train --base "$UPSTREAM" --data "$ARM_DATA" --out "$W/$arm" "${OBJ[@]}" \
      --lora 8 --max-steps "$MAX_STEPS" --batch 2 --max-length "$MAXLEN" -t "$THREADS" --eval-fraction 0 \
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
