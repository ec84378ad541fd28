#!/usr/bin/env bash
# bench/gsm8k_aligner_baseline.sh: the Aligner baseline (one rewrite of the whole answer) trained
# on the data of the shipped Stream Aligner (models/gsm8k-arith-qwen0.5b: calculator-labelled
# records from the upstream's own drafts of GSM8K train ids 0-79, bench/gsm8k_arith_result.sh),
# then run on GSM8K test lines over the upstream's answers and paired against them (issues 13
# and 15). Steps (STEPS, default all), each resumable (rerun the script):
#   drafts:  the upstream's greedy drafts of train ids TRAIN_IDS (0-79), `salign align --mode
#            upstream --trace`, 512 tokens, --batch-invariant;
#   records: 1. the sentence records of those drafts by the shipped aligner's recipe
#            (bench/arith_records.py --synth 0.7 --plain-copies 0.08 --seed 1), or DATA=FILE to
#            use given ones (their drafts must then be these, byte for byte: the session-8 drafts
#            behind docs/results/arith/arith_train.jsonl were lost, and today's build writes 34
#            of those 57 questions differently, docs/RESULTS.md);
#            2. the calculator pipeline (`--copy-aligner --calculator`) on the questions with a
#            real fix: the corrected sentence and the upstream's own completion after it;
#            3. bench/whole_answer_records.py: per question a copy (draft -> draft) or a fix
#            (draft -> the calculator pipeline's answer), and per synthetic sentence record the
#            same corruption in the whole draft (-> the draft);
#   train:   the aligner's recipe (Qwen2.5-Coder-0.5B-Instruct, LoRA r8, 45 steps of 2 records,
#            lr 2e-4, seed 1), MAX_LENGTH tokens (whole answers are long);
#   test:    the upstream alone on test lines [TEST_FROM, N_TEST) (ALONE_FROM=DIR seeds its
#            answers from another run's test_alone.jsonl made by the same binary), then
#            `salign align --mode aligner --answers` over those answers with the adapter and
#            --edit-check all (as the Stream Aligner arm), then bench/gsm8k_check_summary.py.
#   bench/gsm8k_aligner_baseline.sh [WORKDIR]     (default runs/gsm8k_aligner_baseline)
# Knobs: TRAIN_IDS (0-79), DATA (given sentence records), STEPS, TEST_FROM (296), N_TEST (500), THREADS (2),
# PARALLEL (4), MAX_STEPS (45), MAX_LENGTH (1024), ALONE_FROM, UPSTREAM (the test step's upstream,
# qwen2.5-coder-0.5b-instruct; issue 15 also runs qwen2.5-coder-1.5b-instruct: the aligner stays
# the 0.5B trained on the 0.5B's drafts, and the test directory is then test_UPSTREAM);
# SALIGN (build/salign).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
GSM=${SA_SHARED_DATA:-../shared/data}/gsm8k
W=${1:-runs/gsm8k_aligner_baseline}
TRAIN_IDS=${TRAIN_IDS:-0-79}
DATA=${DATA:-$W/sentence_train.jsonl}
STEPS=${STEPS:-drafts records train test}
THREADS=${THREADS:-2}
PARALLEL=${PARALLEL:-4}
MAX_STEPS=${MAX_STEPS:-45}
MAX_LENGTH=${MAX_LENGTH:-1024}
TEST_FROM=${TEST_FROM:-296}
N_TEST=${N_TEST:-500}
BASE=qwen2.5-coder-0.5b-instruct  # the upstream of the records' drafts, and the aligner's base
UPSTREAM=${UPSTREAM:-$BASE}
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
run() { # UPSTREAM INPUT OUTPUT ARGS...: a resumable batch run of the pipeline, traced
  local in=$2 out=$3 up=()
  [ -n "$1" ] && up=(--upstream "$1")  # none with --answers: the answers replace the upstream
  shift 3
  "$S" align ${up[@]+"${up[@]}"} "$@" --input "$in" --output "$out.jsonl" --trace "$out.trace.jsonl" \
    --max-length 512 --parallel "$PARALLEL" -t "$THREADS" --batch-invariant
}
# questions {"id", "question", "answer"} of SRC's lines: IDS = "fix" (the ids of DATA's real
# fixes) or "A-B" (lines A..B)
questions() { # SRC IDS OUT
  if [ "$2" = fix ]; then "$PY" bench/gsm8k_questions.py "$1" "$3" --fix-ids "$DATA"
  else "$PY" bench/gsm8k_questions.py "$1" "$3" --lines "$2"; fi
}

if want drafts; then
  questions "$GSM/train.jsonl" "$TRAIN_IDS" "$W/train_q.jsonl"
  log "drafts: train ids $TRAIN_IDS"
  run "$BASE" "$W/train_q.jsonl" "$W/drafts" --mode upstream
fi
if want records; then
  if [ "$DATA" = "$W/sentence_train.jsonl" ]; then
    log "records: the sentence records of the drafts (the shipped aligner's recipe)"
    "$PY" bench/arith_records.py --trace "$W/drafts.trace.jsonl" --answers "$W/drafts.jsonl" --seed 1 --stats \
      --ids "$TRAIN_IDS" --synth 0.7 --plain-copies 0.08 --out "$DATA"
  fi
  questions "$GSM/train.jsonl" fix "$W/fix_q.jsonl"
  log "records: the calculator pipeline on $(wc -l < "$W/fix_q.jsonl") train questions with a real fix"
  run "$BASE" "$W/fix_q.jsonl" "$W/calc" --copy-aligner --calculator
  log "records: whole answers from $DATA"
  "$PY" bench/whole_answer_records.py --records "$DATA" --drafts "$W/drafts.jsonl" --trace "$W/drafts.trace.jsonl" \
    --fixed "$W/calc.jsonl" --out "$W/whole_train.jsonl" --stats
fi
adapter="$W/aligner/model/adapter.gguf"
if want train && [ ! -s "$adapter" ]; then
  RESUME=()
  [ -d "$W/aligner" ] && RESUME=(--resume)
  log "train the Aligner baseline on $W/whole_train.jsonl"
  "$S" train --base "$BASE" --data "$W/whole_train.jsonl" --out "$W/aligner" --lr 2e-4 --epochs 1 \
    --lora 8 --max-steps "$MAX_STEPS" --batch 2 --max-length "$MAX_LENGTH" -t "$THREADS" --eval-fraction 0 \
    --save-every 10 --adapter-only --seed 1 --log-every 5 ${RESUME[@]+"${RESUME[@]}"}
fi
if want test; then
  [ -s "$adapter" ] || { echo "no $adapter: run STEPS=train first" >&2; exit 1; }
  T="$W/test"
  [ "$UPSTREAM" = "$BASE" ] || T="$W/test_$UPSTREAM"
  mkdir -p "$T"
  questions "$GSM/test.jsonl" "$TEST_FROM-$((N_TEST - 1))" "$T/test_q.jsonl"
  if [ -n "${ALONE_FROM:-}" ] && [ ! -s "$T/test_alone.jsonl" ]; then
    cp "$ALONE_FROM/test_alone.jsonl" "$T/test_alone.jsonl"
    [ -s "$ALONE_FROM/test_alone.trace.jsonl" ] && cp "$ALONE_FROM/test_alone.trace.jsonl" "$T/"
  fi
  log "test: the upstream alone on test lines $TEST_FROM-$((N_TEST - 1))"
  run "$UPSTREAM" "$T/test_q.jsonl" "$T/test_alone" --mode upstream
  log "test: the Aligner baseline over those answers"
  run "" "$T/test_q.jsonl" "$T/test_stream" --mode aligner --answers "$T/test_alone.jsonl" \
    --aligner "$BASE" --aligner-lora "$adapter" --edit-check all
  "$PY" bench/gsm8k_check_summary.py "$T" --salign "$S" --arm "Aligner baseline ($adapter), upstream $UPSTREAM"
fi
log "done"
