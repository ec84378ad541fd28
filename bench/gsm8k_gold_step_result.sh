#!/usr/bin/env bash
# bench/gsm8k_gold_step_result.sh: an aligner trained to correct the plan (issue 13, session 16).
# The first error of the upstream's own draft is located by the gold path (the rule of
# `salign data rollout --locate gold-path`), and its correction is the reference solution's next
# step written in the upstream's notation (bench/gold_step_records.py); with the shipped
# aligner's calculator records (docs/results/arith/arith_train.jsonl) it trains a 0.5B LoRA
# aligner by the shipped recipe, measured on the dev questions (GSM8K train ids 80-119) only.
# Every step is resumable (rerun the script); nothing here reads a test question.
#   drafts:  the upstream's greedy drafts of train ids DRAFT_IDS (120-239; ids 0-79 are
#            session 13's, docs/results/s15_teacher_pilot), `salign align --mode upstream
#            --trace`, 512 tokens, --batch-invariant; then `salign eval math --details`;
#   records: bench/gold_step_records.py over both sets of drafts (copies of sentences without an
#            equation kept with PLAIN_COPIES), plus arith_train.jsonl's fixes (real and synthetic);
#            the copies are sampled down to COPY_SHARE of the records (seed 1);
#   train:   Qwen2.5-Coder-0.5B-Instruct, LoRA r8, MAX_STEPS steps of 2 records, lr LR (2e-4),
#            max length 384, seed 1 (the shipped recipe: bench/gsm8k_arith_result.sh), the edited
#            tokens of each fix weighted by EDIT_WEIGHT (1: plain SFT; `salign train --edit-weight`);
#   devrec:  `salign eval aligner --edit-check all --edit-threshold=GATES` on DEV_RECORDS (gold-step records of the upstream alone's dev
#            answers, docs/results/s14_dev_check) with the new adapter, then bench/gold_step_eval.py;
#   dev:     the pipeline on the dev questions with the new adapter, `--edit-check all`,
#            EDIT_THRESHOLD (none), paired against the upstream alone (bench/gsm8k_check_result.sh;
#            its dev_alone is seeded from DEV_ALONE, the same binary's answers).
#   policy:  on-policy data (session 17): the pipeline with the new adapter on train ids POLICY_IDS
#            (120-399; never the dev ids), `--edit-check all`, EDIT_THRESHOLD, into WORKDIR/policy,
#            then bench/gold_step_records.py --after-fixes over its traces (policy/records.jsonl):
#            the upstream's errors after a kept fix get their fixes too. Not in the default STEPS.
#   continue: teacher-forced continuations (session 18): each gold-step fix of CONT_RECORDS
#            (WORKDIR/train.jsonl) forced in its sentence's place and the upstream going on from it
#            (`salign data continue`, 512 tokens, --batch-invariant) into WORKDIR/cont, graded, then
#            bench/gold_step_records.py --continuations (cont/records.jsonl): the upstream's next
#            error after a right fix gets its fix. CONT_SOURCES (gold:step; comma-separated) picks the
#            fixes continued (gold:final: the --final-check fixes, session 19). Not in the default STEPS.
#   mix:     WORKDIR/train.jsonl = all the records of the files in MIX, shuffled (bench/mix_records.py): to train on
#            a set made elsewhere plus continuation records. Not in the default STEPS.
#   bench/gsm8k_gold_step_result.sh [WORKDIR]      (default runs/gsm8k_gold_step)
# Knobs: STEPS ("drafts records train devrec dev"), LR, STYLE (line: the reference's next line, rendered;
# swap: the sentence with its off-path equation replaced: bench/gold_step_records.py), DRAFT_IDS, MAX_STEPS (50), COPY_SHARE (0.5),
# PLAIN_COPIES (0.1), EDIT_WEIGHT (1), GATES (-inf,0,2,4,8), DEV_RECORDS, DEV_ALONE (a dir with dev_alone.jsonl and its trace),
# POLICY_IDS (120-399), CONT_RECORDS, MIX, THREADS (2), PARALLEL (4), SALIGN (build/salign),
# EDIT_JUDGE, EDIT_JUDGE_THRESHOLD (dev: the edit judge, bench/gsm8k_check_result.sh; its own
# WORKDIR/dev_tT_jJ), INIT_FROM (train: start from the weights of another training run's directory, `salign train --init-from`),
# ALIGNER_BASE (the aligner's base model for train, devrec, dev and policy; default the upstream,
# qwen2.5-coder-0.5b-instruct; session 19 trains qwen2.5-coder-1.5b-instruct).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
export SA_SHARED_DATA=${SA_SHARED_DATA:-../shared/data}
GSM=$SA_SHARED_DATA/gsm8k
W=${1:-runs/gsm8k_gold_step}
STEPS=${STEPS:-drafts records train devrec dev}
DRAFT_IDS=${DRAFT_IDS:-120-239}
MAX_STEPS=${MAX_STEPS:-50}
LR=${LR:-2e-4}
COPY_SHARE=${COPY_SHARE:-0.5}
STYLE=${STYLE:-line}
PLAIN_COPIES=${PLAIN_COPIES:-0.1}
EDIT_WEIGHT=${EDIT_WEIGHT:-1}
THREADS=${THREADS:-2}
GATES=${GATES:--inf,0,2,4,8}
PARALLEL=${PARALLEL:-4}
POLICY_IDS=${POLICY_IDS:-120-399}
CONT_SOURCES=${CONT_SOURCES:-gold:step}
OLD=docs/results/s15_teacher_pilot  # session 13's drafts of train ids 0-79
BASE=qwen2.5-coder-0.5b-instruct  # the upstream
ALIGNER_BASE=${ALIGNER_BASE:-$BASE}
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

if want drafts; then
  [ -s "$W/train_q.jsonl" ] || "$PY" bench/gsm8k_questions.py "$GSM/train.jsonl" "$W/train_q.jsonl" --lines "$DRAFT_IDS"
  log "drafts: train ids $DRAFT_IDS"
  "$S" align --upstream "$BASE" --mode upstream --input "$W/train_q.jsonl" --output "$W/drafts.jsonl" \
    --trace "$W/drafts.trace.jsonl" --max-length 512 --parallel "$PARALLEL" -t "$THREADS" --batch-invariant
fi
if want records; then
  # the drafts finished so far (a stopped drafts step leaves a partial trace: --answers filters)
  "$S" eval math --data gsm8k --answers "$W/drafts.jsonl" --gold "$GSM/train.jsonl" --details "$W/drafts_details.jsonl" >&2
  zcat "$OLD/drafts.trace.jsonl.gz" > "$W/old.trace.jsonl"
  "$PY" bench/gold_step_records.py --trace "$W/old.trace.jsonl" --details "$OLD/drafts_details.jsonl" \
    --style "$STYLE" --out "$W/gold_old.jsonl" --plain-copies "$PLAIN_COPIES" --seed 1 --stats
  "$PY" bench/gold_step_records.py --trace "$W/drafts.trace.jsonl" --details "$W/drafts_details.jsonl" \
    --answers "$W/drafts.jsonl" --style "$STYLE" --out "$W/gold_new.jsonl" --plain-copies "$PLAIN_COPIES" --seed 1 --stats
  "$PY" bench/mix_records.py "$W/train.jsonl" "$COPY_SHARE" "$W/gold_old.jsonl" "$W/gold_new.jsonl" \
    docs/results/arith/arith_train.jsonl
fi
if want mix; then
  : "${MIX:?MIX=the record files to put together}"
  [ -s "$W/train.jsonl" ] && { echo "$W/train.jsonl exists: the mix step makes it" >&2; exit 1; }
  # shellcheck disable=SC2086
  "$PY" bench/mix_records.py "$W/train.jsonl" all $MIX
fi
adapter="$W/aligner/model/adapter.gguf"
if want train && [ ! -s "$adapter" ]; then
  RESUME=()
  [ -d "$W/aligner/checkpoint" ] && RESUME=(--resume)
  [ -n "${INIT_FROM:-}" ] && RESUME+=(--init-from "$INIT_FROM")
  log "train on $W/train.jsonl"
  "$S" train --base "$ALIGNER_BASE" --data "$W/train.jsonl" --out "$W/aligner" --lora 8 --lr "$LR" --epochs 1 \
    --max-steps "$MAX_STEPS" --batch 2 --max-length 384 -t "$THREADS" --eval-fraction 0 --save-every 5 \
    --adapter-only --seed 1 --log-every 5 --edit-weight "$EDIT_WEIGHT" ${RESUME[@]+"${RESUME[@]}"}
fi
if want devrec; then
  [ -s "$adapter" ] || { echo "no $adapter: run STEPS=train first" >&2; exit 1; }
  : "${DEV_RECORDS:?DEV_RECORDS=gold-step records of the dev questions}"
  [ -s "$W/devrec.details.jsonl" ] || "$S" eval aligner --aligner "$ALIGNER_BASE" --aligner-lora "$adapter" \
    --records "$DEV_RECORDS" --details "$W/devrec.details.jsonl" --edit-check all --edit-threshold="$GATES" \
    --json -t "$THREADS" > "$W/devrec.json"
  "$PY" bench/gold_step_eval.py --records "$DEV_RECORDS" --details "$W/devrec.details.jsonl" --thresholds="$GATES" \
    | tee "$W/devrec.txt"
fi
if want dev; then
  [ -s "$adapter" ] || { echo "no $adapter: run STEPS=train first" >&2; exit 1; }
  D="$W/dev${EDIT_THRESHOLD:+_t$EDIT_THRESHOLD}${EDIT_JUDGE:+_j${EDIT_JUDGE_THRESHOLD:-0}}"
  mkdir -p "$D"
  if [ -n "${DEV_ALONE:-}" ] && [ ! -s "$D/dev_alone.jsonl" ]; then
    cp "$DEV_ALONE/dev_alone.jsonl" "$D/"
    if [ -s "$DEV_ALONE/dev_alone.trace.jsonl.gz" ]; then zcat "$DEV_ALONE/dev_alone.trace.jsonl.gz" > "$D/dev_alone.trace.jsonl"
    else cp "$DEV_ALONE/dev_alone.trace.jsonl" "$D/"; fi
  fi
  SALIGN="$S" ADAPTER="$adapter" ALIGNER_BASE="$ALIGNER_BASE" BATCH_INVARIANT=1 ARM=aligner EDIT_CHECK=all STEPS="dev score" \
    bench/gsm8k_check_result.sh "$D"
fi
if want policy; then
  [ -s "$adapter" ] || { echo "no $adapter: run STEPS=train first" >&2; exit 1; }
  P="$W/policy"
  mkdir -p "$P"
  lo=${POLICY_IDS%-*} hi=${POLICY_IDS#*-}
  if [ "$lo" -le 119 ] && [ "$hi" -ge 80 ]; then echo "POLICY_IDS $POLICY_IDS overlaps the dev ids 80-119" >&2; exit 1; fi
  [ -s "$P/train_q.jsonl" ] || "$PY" bench/gsm8k_questions.py "$GSM/train.jsonl" "$P/train_q.jsonl" --lines "$POLICY_IDS"
  log "policy: the pipeline on train ids $POLICY_IDS"
  "$S" align --upstream "$BASE" --aligner "$ALIGNER_BASE" --aligner-lora "$adapter" --edit-check all \
    ${EDIT_THRESHOLD:+--edit-threshold "$EDIT_THRESHOLD"} --input "$P/train_q.jsonl" --output "$P/stream.jsonl" \
    --trace "$P/stream.trace.jsonl" --max-length 512 --parallel "$PARALLEL" -t "$THREADS" --batch-invariant
  "$S" eval math --data gsm8k --answers "$P/stream.jsonl" --gold "$GSM/train.jsonl" --details "$P/details.jsonl" >&2
  "$PY" bench/gold_step_records.py --trace "$P/stream.trace.jsonl" --details "$P/details.jsonl" \
    --answers "$P/stream.jsonl" --style "$STYLE" --after-fixes --out "$P/records.jsonl" \
    --plain-copies "$PLAIN_COPIES" --seed 1 --stats
fi
if want continue; then
  C="$W/cont"
  CONT_RECORDS=${CONT_RECORDS:-$W/train.jsonl}
  mkdir -p "$C"
  [ -s "$C/fixes.jsonl" ] || "$PY" - "$CONT_RECORDS" "$C/fixes.jsonl" "$CONT_SOURCES" <<'EOF'
import json, sys
sources = set(sys.argv[3].split(","))
with open(sys.argv[2], "w") as f:
    for line in open(sys.argv[1]):
        r = json.loads(line)
        if r["kind"] == "fix" and r["source"] in sources:
            f.write(json.dumps(r) + "\n")
EOF
  log "continue: the upstream after each of the $(wc -l < "$C/fixes.jsonl") $CONT_SOURCES fixes of $CONT_RECORDS"
  "$S" data continue --upstream "$BASE" --input "$C/fixes.jsonl" --out "$C/answers.jsonl" --trace "$C/trace.jsonl" \
    --max-length 512 -t "$THREADS" --batch-invariant
  "$S" eval math --data gsm8k --answers "$C/answers.jsonl" --gold "$GSM/train.jsonl" --details "$C/details.jsonl" >&2
  "$PY" bench/gold_step_records.py --trace "$C/trace.jsonl" --details "$C/details.jsonl" \
    --continuations "$C/answers.jsonl" --style "$STYLE" --out "$C/records.jsonl" \
    --plain-copies "$PLAIN_COPIES" --seed 1 --stats
fi
log "done"
