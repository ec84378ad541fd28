#!/usr/bin/env bash
# recipe.sh: rebuilds models/gsm8k-gold-qwen1.5b/adapter.gguf from scratch (issue 13, sessions 20
# and 21; docs/results/s20_aligner_1.5b, docs/results/s21_warm_start). Every input is committed:
# the records are remade from the upstream's committed greedy drafts of GSM8K *train* questions
# (never a test question) and their sha256 checked against the ones trained on.
#   models/gsm8k-gold-qwen1.5b/recipe.sh [WORKDIR]      (default runs/gsm8k-gold-qwen1.5b)
#   STEPS="data" ...                                    only remake and check the records (a minute)
# 1. Session 20: session 18's 378 records (session 16's `swap` gold-step records: the upstream's
#    first sentence off the reference's path, its equation swapped for the reference's next
#    step, with copies of the sentences before it; plus the records of the upstream continuing
#    after 102 such fixes, session 18), LoRA r8 on Qwen2.5-Coder-1.5B-Instruct, edited tokens
#    weighted 4 in the loss, 189 steps of 2 records, lr 2e-4 (3,078 s at 38 tok/s on 2 cores).
# 2. Session 21: a warm start from step 1's weights (`salign train --init-from`) on 840 new
#    records, 420 `gold:step` fixes and 420 copies sampled (seed 1) from the drafts of train ids
#    240-1319, 420 steps (7,408 s). Its log is train-log.csv.
# Training is deterministic for a given build, seed and thread count (-t 2 here); the shipped file
# was made by main's build at bbf8e2b (session 21) on a 2-core AVX-512 machine: another build or
# kernel path may differ in the last bits of the weights, so the last line compares the sha256.
set -eu
cd "$(dirname "$0")/../.."
W=${1:-runs/gsm8k-gold-qwen1.5b}
STEPS=${STEPS:-data train}
PY=${SA_PYTHON:-python3}
export SA_SHARED_DATA=${SA_SHARED_DATA:-../shared/data}
export SALIGN=${SALIGN:-build/salign}
mkdir -p "$W/s20/c/cont" "$W/s21" "$W/rec"
check() { # FILE SHA256
  echo "$2  $1" | sha256sum -c - || { echo "recipe: $1 is not the file trained on" >&2; exit 1; }
}
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
if want data; then
  zcat docs/results/s16_gold_step/swap/train.jsonl.gz > "$W/s20/c/train.jsonl"
  zcat docs/results/s18_continue/cont/records.jsonl.gz > "$W/s20/c/cont/records.jsonl"
  rm -f "$W/s20/train.jsonl"
  "$PY" bench/mix_records.py "$W/s20/train.jsonl" all "$W/s20/c/train.jsonl" "$W/s20/c/cont/records.jsonl"
  check "$W/s20/train.jsonl" 4d32e00dbe7ae52974bd7e45c21786daed7423799b403abf0bbfd9650d73cbd4
  G="--gold $SA_SHARED_DATA/gsm8k/train.jsonl --style swap --final-check --plain-copies 0.1 --seed 1"
  for b in s19_drafts/drafts_240-599 s20_drafts/drafts_600-959 s20_drafts/drafts_960-1319; do
    n=$(basename $b)
    zcat docs/results/$b.trace.jsonl.gz > "$W/rec/$n.trace.jsonl"
    zcat docs/results/$b.jsonl.gz > "$W/rec/$n.jsonl"
    # shellcheck disable=SC2086
    "$PY" bench/gold_step_records.py $G --trace "$W/rec/$n.trace.jsonl" --details docs/results/${b}_details.jsonl \
      --answers "$W/rec/$n.jsonl" --out "$W/rec/$n.fc.jsonl"
  done
  rm -f "$W/s21/train.jsonl"
  "$PY" bench/mix_records.py --fixes 420 --copies 420 --sources gold:step "$W/s21/train.jsonl" x \
    "$W/rec/drafts_240-599.fc.jsonl" "$W/rec/drafts_600-959.fc.jsonl" "$W/rec/drafts_960-1319.fc.jsonl"
  check "$W/s21/train.jsonl" ec67e38eb6668b004791725ff3c6b9abfbb034250d6a8d42d6c1f3492c11b4d8
fi
if want train; then
  ALIGNER_BASE=qwen2.5-coder-1.5b-instruct STEPS=train EDIT_WEIGHT=4 MAX_STEPS=189 STYLE=swap \
    bench/gsm8k_gold_step_result.sh "$W/s20"
  ALIGNER_BASE=qwen2.5-coder-1.5b-instruct STEPS=train INIT_FROM="$W/s20/aligner" EDIT_WEIGHT=4 MAX_STEPS=420 \
    STYLE=swap bench/gsm8k_gold_step_result.sh "$W/s21"
  sha256sum "$W/s20/aligner/model/adapter.gguf" "$W/s21/aligner/model/adapter.gguf" models/gsm8k-gold-qwen1.5b/adapter.gguf
  echo "session 20's adapter was 42d3ebd78a8e8aa27ad7b89e371e2be1ba261bac6eca0714b2caff1789b1e21d"
fi
