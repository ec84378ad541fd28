#!/usr/bin/env bash
# bench/gsm8k_arith_result.sh: aligners trained on the upstream's OWN sentences labelled by a
# calculator (bench/arith_records.py): the upstream's greedy drafts of GSM8K *train*
# questions are cut by the pipeline (`salign align --mode upstream --trace`); a sentence whose
# written arithmetic is wrong is corrected (the same sentence, the true result); the sentences
# before it are copy records; synthetic errors (a correct result perturbed) add examples of the
# one skill. Then LoRA aligners (Qwen2.5-Coder-0.5B-Instruct and SmolLM2-135M-Instruct), and
# their behaviour on held-out DEV records (other train questions), with the gate's sweep.
# docs/RESULTS.md ("Calculator-labelled records") reports what came out.
#   1. drafts:  train lines [0, N_Q) (ids = line index), greedy, answers up to 512 tokens;
#   2. records: ids [0, SPLIT) for training, [SPLIT, N_Q) for dev (there every sentence with an
#      equation also gets a synthetic error, and a quarter of the other sentences are kept as
#      copies; `eval aligner` reports real fixes, synthetic fixes and copies apart);
#   3. train:   LoRA rank 8 (Qwen) and 16 (SmolLM2), MAX_STEPS steps, lr 2e-4, batch 2, 288 tokens;
#   4. dev:     `salign eval aligner` on the dev records: the trained adapters, with
#      --edit-threshold THRESHOLDS (and the Qwen base without an adapter, for reference);
#   5. pipeline: the stream pipeline on the dev questions with the Qwen adapter gated at GATE
#      (chosen on the dev records: the best Youden's J = kept + fixed - 1), against the drafts
#      (the upstream alone) of the same questions.
# Never a GSM8K test question. Every step is resumable (rerun the script): drafts are
# append-only with resume by id, training continues from its checkpoint, finished outputs are
# kept. STEPS="drafts records train dev pipeline" (default: all).
#   bench/gsm8k_arith_result.sh [WORKDIR]     (default runs/gsm8k_arith)
# Knobs (environment): N_Q (160), SPLIT (80), SYNTH (0.7), PLAIN_COPIES (0.08), PARALLEL (4),
# THREADS (2), THRESHOLDS (-inf,-2,0,1,2,4,8,inf), MAX_STEPS (45 optimizer steps of 2 records),
# GATE (1).
set -eu
cd "$(dirname "$0")/.."
S=${SALIGN:-build/salign}
PY=${SA_PYTHON:-python3}
DATA=${SA_SHARED_DATA:-../shared/data}
W=${1:-runs/gsm8k_arith}
N_Q=${N_Q:-160}
SPLIT=${SPLIT:-80}
SYNTH=${SYNTH:-0.7}
PLAIN_COPIES=${PLAIN_COPIES:-0.08}
PARALLEL=${PARALLEL:-4}
THREADS=${THREADS:-2}
THRESHOLDS=${THRESHOLDS:--inf,-2,0,1,2,4,8,inf}
MAX_STEPS=${MAX_STEPS:-45}
GATE=${GATE:-1}
STEPS=${STEPS:-drafts records train dev pipeline}
UPSTREAM=qwen2.5-coder-0.5b-instruct
mkdir -p "$W"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

if [ ! -s "$W/train_q.jsonl" ]; then
  "$PY" - "$DATA/gsm8k/train.jsonl" "$W/train_q.jsonl" "$N_Q" <<'EOF'
import json, sys
src, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(src) as f, open(out, "w") as o:
    for i, line in enumerate(f):
        if i >= n:
            break
        r = json.loads(line)
        o.write(json.dumps({"id": i, "question": r["question"], "answer": r["answer"]}) + "\n")
EOF
fi

if want drafts; then
  log "drafts: $N_Q train questions"
  "$S" align --upstream "$UPSTREAM" --mode upstream --input "$W/train_q.jsonl" --output "$W/drafts.jsonl" \
    --trace "$W/drafts.trace.jsonl" --max-length 512 --parallel "$PARALLEL" -t "$THREADS"
fi

if want records; then
  log "records: train ids 0-$((SPLIT - 1)), dev ids $SPLIT-$((N_Q - 1))"
  common=(--trace "$W/drafts.trace.jsonl" --answers "$W/drafts.jsonl" --seed 1 --stats)
  "$PY" bench/arith_records.py "${common[@]}" --ids "0-$((SPLIT - 1))" --synth "$SYNTH" \
    --plain-copies "$PLAIN_COPIES" --out "$W/arith_train.jsonl"
  "$PY" bench/arith_records.py "${common[@]}" --ids "$SPLIT-$((N_Q - 1))" --synth 1 --plain-copies 0.25 \
    --out "$W/arith_dev.jsonl"
fi

train() { # DIR BASE RANK
  local out=$W/$1 resume=()
  [ -s "$out/model/adapter.gguf" ] && return 0
  [ -d "$out/checkpoint" ] && resume=(--resume)
  log "train $1"
  "$S" train --base "$2" --data "$W/arith_train.jsonl" --out "$out" --lora "$3" --lr 2e-4 --epochs 1 --max-steps "$MAX_STEPS" \
    --batch 2 --max-length 288 -t "$THREADS" --eval-fraction 0 --save-every 10 --adapter-only --seed 1 \
    --log-every 5 "${resume[@]}"
}
if want train; then
  train arith_qwen_r8 "$UPSTREAM" 8
  train arith_smol_r16 smollm2-135m-instruct 16
fi

dev() { # NAME BASE [ADAPTER]
  local out=$W/dev_$1.json
  [ -s "$out" ] && return 0
  log "dev $1"
  "$S" eval aligner --aligner "$2" ${3:+--aligner-lora "$3"} --records "$W/arith_dev.jsonl" \
    --edit-threshold "$THRESHOLDS" --details "$W/dev_$1.details.jsonl" -t "$THREADS" --json > "$out.tmp"
  mv "$out.tmp" "$out"
}
if want dev; then
  dev qwen_lora "$UPSTREAM" "$W/arith_qwen_r8/model/adapter.gguf"
  dev smol_lora smollm2-135m-instruct "$W/arith_smol_r16/model/adapter.gguf"
  dev qwen_base "$UPSTREAM"
fi

if want pipeline; then
  "$PY" -c 'import json, sys
with open(sys.argv[1]) as f, open(sys.argv[2], "w") as o:
    o.writelines(l for l in f if json.loads(l)["id"] >= int(sys.argv[3]))' "$W/train_q.jsonl" "$W/dev_q.jsonl" "$SPLIT"
  log "pipeline: dev questions, gate $GATE"
  "$S" align --upstream "$UPSTREAM" --aligner "$UPSTREAM" --aligner-lora "$W/arith_qwen_r8/model/adapter.gguf" \
    --edit-threshold "$GATE" --input "$W/dev_q.jsonl" --output "$W/dev_stream.jsonl" \
    --trace "$W/dev_stream.trace.jsonl" --max-length 512 --parallel "$PARALLEL" -t "$THREADS"
  for f in drafts dev_stream; do
    "$S" eval math --data gsm8k --gold "$W/train_q.jsonl" --answers "$W/$f.jsonl" --details "$W/$f.details.jsonl"
  done
fi
log "done"
