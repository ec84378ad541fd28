#!/usr/bin/env bash
# bench/gsm8k_result.sh: the measured result of docs/RESULTS.md, end to end, on the CPU.
#   1. records from GSM8K *train* problems (no annotator: `salign data from-gsm8k`): sentence
#      records for the Stream Aligner, whole-answer records with the same corruptions for the
#      Aligner baseline;
#   2. two aligners fine-tuned from SmolLM2-135M-Instruct (`salign train`), same recipe;
#   3. GSM8K *test* questions answered by the upstream alone, with the Stream Aligner and with
#      the Aligner (on the upstream's own answers, `--answers`), scored by `salign eval math`,
#      accuracy by round from the stream trace, and a report with plots.
# Every step is resumable: run the script again after an interruption and it goes on where it
# stopped (finished steps are skipped, `salign align --output` skips answered questions,
# `salign train --resume` continues a training run).
#   bench/gsm8k_result.sh [WORKDIR]        (default runs/gsm8k)
# Knobs (environment): N_TEST (300), N_TRAIN (280 problems), UPSTREAM (qwen2.5-coder-0.5b-instruct),
# BASE (smollm2-135m-instruct), JOBS (2 processes of 1 thread for the evaluations), EPOCHS (1),
# LR (5e-5), MAX_LEN (answer tokens, 512).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
DATA=${SA_SHARED_DATA:-../shared/data}
W=${1:-runs/gsm8k}
N_TEST=${N_TEST:-300}
N_TRAIN=${N_TRAIN:-280}
UPSTREAM=${UPSTREAM:-qwen2.5-coder-0.5b-instruct}
BASE=${BASE:-smollm2-135m-instruct}
JOBS=${JOBS:-2}
EPOCHS=${EPOCHS:-1}
LR=${LR:-5e-5}
MAX_LEN=${MAX_LEN:-512}
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# ---- 1. data ----
if [ ! -s "$W/stream_records.jsonl" ]; then
  head -n "$N_TRAIN" "$DATA/gsm8k/train.jsonl" > "$W/train_problems.jsonl"
  "$S" data from-gsm8k --input "$W/train_problems.jsonl" --out "$W/stream_records.jsonl" --seed 1
  "$S" data from-gsm8k --input "$W/train_problems.jsonl" --out "$W/answer_records.jsonl" --seed 1 --whole-answer
fi
# test questions with their 0-based line index in test.jsonl as id (the gold's index), cut in
# JOBS parts for parallel processes
if [ ! -s "$W/test.jsonl" ]; then
  "$PY" - "$DATA/gsm8k/test.jsonl" "$N_TEST" "$JOBS" "$W" <<'EOF'
import json, sys
src, n, jobs, w = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = [json.loads(l) for l in open(src)][:n]
parts = [open("%s/test.part%d.jsonl" % (w, j), "w") for j in range(jobs)]
with open(w + "/test.jsonl", "w") as f:
    for i, r in enumerate(rows):
        line = json.dumps({"id": i, "question": r["question"]}) + "\n"
        f.write(line)
        parts[i * jobs // len(rows)].write(line)
EOF
fi

# ---- 2. training (one thread each; the records are short) ----
train() { # name records max-length
  local out="$W/$1_run"
  if [ -s "$out/model/model-f16.gguf" ]; then return; fi
  local resume=""
  [ -d "$out/checkpoint" ] && resume="--resume"
  log "training $1"
  "$S" train --base "$BASE" --data "$2" --out "$out" --epochs "$EPOCHS" --lr "$LR" --batch 4 --max-length "$3" \
    -t 1 --save-every 25 --eval-fraction 0.05 --gguf-type f16 --log-every 5 $resume
}
train stream "$W/stream_records.jsonl" 256   # long prefixes lose their first sentences
train answer "$W/answer_records.jsonl" 512   # whole answers cannot be cut: 256 would drop most

# ---- 3. evaluation ----
align_parts() { # name [align options...]: JOBS processes, then the parts joined in id order
  local name=$1; shift
  local pids=() j
  for ((j = 0; j < JOBS; j++)); do
    "$S" align "$@" --input "$W/test.part$j.jsonl" --output "$W/$name.part$j.jsonl" \
      --trace "$W/$name.trace.part$j.jsonl" --max-length "$MAX_LEN" -t 1 2> "$W/$name.part$j.log" &
    pids+=($!)
  done
  for j in "${pids[@]}"; do wait "$j"; done
  cat "$W/$name".part*.jsonl > "$W/$name.jsonl"
  cat "$W/$name".trace.part*.jsonl > "$W/$name.trace.jsonl"
}
log "upstream alone"
align_parts upstream --upstream "$UPSTREAM" --mode upstream
log "upstream + Stream Aligner"
align_parts stream --upstream "$UPSTREAM" --aligner "$W/stream_run/model/model-f16.gguf"
log "upstream + Aligner (on the upstream's answers)"
align_parts aligner --answers "$W/upstream.jsonl" --aligner "$W/answer_run/model/model-f16.gguf" --mode aligner

# ---- 4. scores and report ----
mkdir -p "$W/results"
for name in upstream stream aligner; do
  "$S" eval math --data gsm8k --answers "$W/$name.jsonl" --details "$W/$name.details.jsonl" --json \
    > "$W/results/$name.math.json"
done
"$S" eval math --data gsm8k --per-round "$W/stream.trace.jsonl" --json > "$W/results/stream.rounds.json"
cp "$W/stream.trace.jsonl" "$W/results/stream.trace.jsonl"
"$S" eval report --out "$W/report.md" --title "GSM8K: $UPSTREAM with SmolLM2-135M aligners" --results "$W/results"
for name in upstream stream aligner; do
  printf '%-9s ' "$name"; cat "$W/results/$name.math.json"; echo
done
"$PY" bench/gsm8k_summary.py "$W"
